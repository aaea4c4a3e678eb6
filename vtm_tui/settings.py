"""One Settings object: environment variables, a `.env` file in the working directory, defaults.

Precedence: real environment > `.env` > defaults. The `.env` file is read, never written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from vtm_tui.errors import UserError

DEFAULT_MLFLOW_PORT = 5001
DEFAULT_MLFLOW_WORKERS = 2  # requests served in parallel: a TUI, a training run and an import at once
MAX_MLFLOW_WORKERS = 32
DEFAULT_WEB_PORT = 5173  # `vtm web`: the port the original web UI used, so existing tunnels keep working
PACKAGED_CATALOG = Path(__file__).with_name("catalog.yaml")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (optional `export`, quotes, # comments). Missing file -> {}."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Settings:
    home: Path
    catalog_path: Path
    tracking_uri: str | None  # None: use (and start) the embedded tracking server
    mlflow_port: int = DEFAULT_MLFLOW_PORT
    mlflow_workers: int = DEFAULT_MLFLOW_WORKERS
    web_port: int = DEFAULT_WEB_PORT
    registry_url: str | None = None
    experiment_name: str = "void-train-manager"
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: Path = field(default_factory=Path.cwd)  # where runs start unless the task says otherwise

    @classmethod
    def load(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> "Settings":
        cwd = Path(cwd or Path.cwd())
        merged = {**read_dotenv(cwd / ".env"), **(os.environ if environ is None else environ)}

        def path_of(key: str, default: str) -> Path:
            value = Path(merged.get(key) or default).expanduser()
            return value if value.is_absolute() else cwd / value

        catalog = path_of("TRAINING_CATALOG_PATH", "catalog.yaml")
        if "TRAINING_CATALOG_PATH" not in merged and not catalog.exists():
            catalog = PACKAGED_CATALOG  # run from anywhere: fall back to the shipped catalog
        port_text = merged.get("VTM_MLFLOW_PORT") or str(DEFAULT_MLFLOW_PORT)
        if not port_text.isdigit():
            raise UserError(f"VTM_MLFLOW_PORT must be a port number, got {port_text!r}")
        workers_text = merged.get("VTM_MLFLOW_WORKERS") or str(DEFAULT_MLFLOW_WORKERS)
        if not workers_text.isdigit() or not 1 <= int(workers_text) <= MAX_MLFLOW_WORKERS:
            raise UserError(f"VTM_MLFLOW_WORKERS must be a number of worker processes from 1 to "
                            f"{MAX_MLFLOW_WORKERS}, got {workers_text!r}")
        web_port_text = merged.get("VTM_WEB_PORT") or str(DEFAULT_WEB_PORT)
        if not web_port_text.isdigit() or not 1 <= int(web_port_text) <= 65535:
            raise UserError(f"VTM_WEB_PORT must be a port number from 1 to 65535, got {web_port_text!r}")
        return cls(
            home=path_of("VTM_HOME", ".vtm"),
            catalog_path=catalog,
            tracking_uri=merged.get("MLFLOW_TRACKING_URI") or None,
            mlflow_port=int(port_text),
            mlflow_workers=int(workers_text),
            web_port=int(web_port_text),
            registry_url=merged.get("VTM_REGISTRY_URL") or None,
            experiment_name=merged.get("VTM_EXPERIMENT_NAME") or "void-train-manager",
            env=merged,
            workdir=cwd,
        )

    @property
    def embedded_tracking(self) -> bool:
        return self.tracking_uri is None

    @property
    def effective_tracking_uri(self) -> str:
        return self.tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def runs_db(self) -> Path:
        return self.home / "runs.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def web_dir(self) -> Path:
        """`vtm web`'s record (server.json), lock and log."""
        return self.home / "web"
