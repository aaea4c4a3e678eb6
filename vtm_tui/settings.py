"""One Settings object for every VTM_* variable (and the standard ones vtm reads,
TRAINING_CATALOG_PATH, MLFLOW_TRACKING_URI and CUDA_VISIBLE_DEVICES): typed, validated, paths
resolved; the README's configuration table documents each one.

Where the values come from:

- `Settings.load()`: the real environment > a `.env` file in the working directory > defaults.
  The `.env` file is read, never written.
- `Settings.from_environ(env)`: only the mapping given, never `.env`. For the processes vtm
  starts (the run supervisor, the Slurm follower, training scripts): vtm hands them the values
  they need in their environment, and they read them back here.

A bad value is a UserError that names the variable and says what it expects. VTM_MLFLOW_PORT and
VTM_MLFLOW_WORKERS are checked when the settings load; every other value when it is first used,
so that a bad FTP timeout stops the registry commands, not `vtm runs`.

This module sits below core: it imports nothing of vtm but `vtm_tui.errors`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

from vtm_tui.errors import UserError

DEFAULT_MLFLOW_PORT = 5001
DEFAULT_MLFLOW_WORKERS = 2  # requests served in parallel: a TUI, a training run and an import at once
MAX_MLFLOW_WORKERS = 32
DEFAULT_CANCEL_GRACE = 10.0  # seconds between SIGINT, SIGTERM and SIGKILL
DEFAULT_FTP_TIMEOUT = 30.0  # seconds without progress before an FTP step fails
DEFAULT_GZIP_LEVEL = 0  # bundles: gzip "stored" blocks (see core/registry/bundle.py)
DEFAULT_WEB_PORT = 5173  # `vtm web`: the port the original web UI used, so existing tunnels keep working
# A GPU that no vtm run holds counts as busy once other processes use more than this many MB of its
# memory: above a display server or an idle CUDA context (~100-600 MB), below any real training job.
DEFAULT_GPU_BUSY_MB = 1024
DEFAULT_SYSTEM_METRICS_INTERVAL = 5.0  # seconds between a run's system-metric samples
PACKAGED_CATALOG = Path(__file__).with_name("catalog.yaml")
# Set by vtm for what it starts, and looked for in /proc/<pid>/environ to know those processes
# as vtm's (core/proctable.py): a run's folder, and the embedded tracking server's marker.
RUN_DIR_VARIABLE = "VTM_RUN_DIR"
SERVER_MARKER_VARIABLE = "VTM_MLFLOW_SERVER_ID"
TRACKING_MODES = ("on", "off")


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


def _resolve(text: str, cwd: Path) -> Path:
    """A path as the user wrote it: `~` expanded, relative to `cwd`."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else cwd / path


def _number(env: Mapping[str, str], name: str, default: float, expects: str, *, positive: bool = False) -> float:
    """A float variable: default when unset or empty; >= 0 (> 0 with positive), else UserError."""
    text = env.get(name) or ""
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 if positive else value >= 0) or value == float("inf"):
        raise UserError(f"{name} must be {expects}, got {text!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int, low: int, high: int | None, expects: str) -> int:
    """An integer variable in [low, high] (no upper bound with high None); default when unset."""
    text = env.get(name) or ""
    if not text:
        return default
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        raise UserError(f"{name} must be {expects}, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Settings:
    """vtm's configuration. The fields are read when the settings load; the properties below
    them parse their variable on first use (UserError for a bad value) and keep the answer.

    env: every variable seen (environment over `.env`), for handing values to child processes;
    read a variable through its property, never from env.
    """

    home: Path  # VTM_HOME, absolute: runs.db, run logs, the embedded MLflow data, the folder registry
    catalog_path: Path  # TRAINING_CATALOG_PATH
    tracking_uri: str | None  # MLFLOW_TRACKING_URI; None: use (and start) the embedded tracking server
    mlflow_port: int = DEFAULT_MLFLOW_PORT  # VTM_MLFLOW_PORT
    mlflow_workers: int = DEFAULT_MLFLOW_WORKERS  # VTM_MLFLOW_WORKERS
    web_port: int = DEFAULT_WEB_PORT  # VTM_WEB_PORT: `vtm web`
    registry_url: str | None = None  # VTM_REGISTRY_URL; None: the folder <home>/registry
    experiment_name: str = "void-train-manager"  # VTM_EXPERIMENT_NAME
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: Path = field(default_factory=Path.cwd)  # where runs start unless the task says otherwise

    @classmethod
    def load(cls, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings of a vtm started by the user: `environ` (default os.environ) over
        `cwd`/.env (default: the working directory). UserError for a bad port or worker count."""
        cwd = Path(cwd or Path.cwd())
        return cls._parse({**read_dotenv(cwd / ".env"), **(os.environ if environ is None else environ)}, cwd)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> "Settings":
        """The settings of a process vtm started: only `environ` (default os.environ), no `.env`."""
        return cls._parse(dict(os.environ if environ is None else environ), Path(cwd or Path.cwd()))

    @classmethod
    def _parse(cls, merged: dict[str, str], cwd: Path) -> "Settings":
        catalog = _resolve(merged.get("TRAINING_CATALOG_PATH") or "catalog.yaml", cwd)
        if "TRAINING_CATALOG_PATH" not in merged and not catalog.exists():
            catalog = PACKAGED_CATALOG  # run from anywhere: fall back to the shipped catalog
        port_text = merged.get("VTM_MLFLOW_PORT") or str(DEFAULT_MLFLOW_PORT)
        if not port_text.isdigit():
            raise UserError(f"VTM_MLFLOW_PORT must be a port number, got {port_text!r}")
        workers = _count(merged, "VTM_MLFLOW_WORKERS", DEFAULT_MLFLOW_WORKERS, 1, MAX_MLFLOW_WORKERS,
                         f"a number of worker processes from 1 to {MAX_MLFLOW_WORKERS}")
        web_port = _count(merged, "VTM_WEB_PORT", DEFAULT_WEB_PORT, 1, 65535, "a port number from 1 to 65535")
        return cls(
            home=_resolve(merged.get("VTM_HOME") or ".vtm", cwd),
            catalog_path=catalog,
            tracking_uri=merged.get("MLFLOW_TRACKING_URI") or None,
            mlflow_port=int(port_text),
            mlflow_workers=workers,
            web_port=web_port,
            registry_url=merged.get("VTM_REGISTRY_URL") or None,
            experiment_name=merged.get("VTM_EXPERIMENT_NAME") or "void-train-manager",
            env=merged,
            workdir=cwd,
        )

    def value(self, name: str) -> str | None:
        """A variable named at run time (`vtm ftp serve --password-env VAR`, whose default is
        VTM_FTP_PASSWORD and, for --read-only-password-env, VTM_FTP_RO_PASSWORD); None if unset."""
        return self.env.get(name) or None

    # -- read on first use ----------------------------------------------------------------------

    @cached_property
    def cancel_grace(self) -> float:
        """VTM_CANCEL_GRACE: seconds from SIGINT to SIGTERM, and again to SIGKILL, on cancel."""
        return _number(self.env, "VTM_CANCEL_GRACE", DEFAULT_CANCEL_GRACE, "a number of seconds (0 or more)")

    @cached_property
    def ftp_timeout(self) -> float:
        """VTM_FTP_TIMEOUT: seconds an FTP step may go without progress before it fails."""
        return _number(self.env, "VTM_FTP_TIMEOUT", DEFAULT_FTP_TIMEOUT, "a positive number of seconds",
                       positive=True)

    @cached_property
    def ftp_ca_file(self) -> Path | None:
        """VTM_FTP_CA_FILE: the one CA trusted for ftps:// (absolute; the registry checks that it
        exists when it connects); None: the system's CAs."""
        text = self.env.get("VTM_FTP_CA_FILE") or ""
        return _resolve(text, self.workdir) if text else None

    @cached_property
    def ftp_password(self) -> str | None:
        """VTM_FTP_PASSWORD: the FTP registry's password (else ~/.netrc or a prompt). Never shown."""
        return self.env.get("VTM_FTP_PASSWORD") or None

    @cached_property
    def netrc_file(self) -> Path | None:
        """NETRC: the netrc file FTP passwords are looked up in; None: ~/.netrc."""
        text = self.env.get("NETRC") or ""
        return _resolve(text, self.workdir) if text else None

    @cached_property
    def registry_gzip_level(self) -> int:
        """VTM_REGISTRY_GZIP_LEVEL: gzip level 0-9 of new bundles (0: stored, the default)."""
        return _count(self.env, "VTM_REGISTRY_GZIP_LEVEL", DEFAULT_GZIP_LEVEL, 0, 9, "0-9")

    @cached_property
    def tb_import_batch_delay(self) -> float:
        """VTM_TB_IMPORT_BATCH_DELAY (a test hook): seconds the TensorBoard import sleeps after
        each committed batch; 0: none."""
        return _number(self.env, "VTM_TB_IMPORT_BATCH_DELAY", 0.0, "a number of seconds (0 or more)")

    @cached_property
    def tb_import_exit_after(self) -> int:
        """VTM_TB_IMPORT_EXIT_AFTER (a test hook): the TensorBoard import ends its process (exit
        code 75) right after this many committed batches; 0: never."""
        return _count(self.env, "VTM_TB_IMPORT_EXIT_AFTER", 0, 0, None, "a number of batches (0 or more)")

    @cached_property
    def gpus(self) -> tuple[int, ...] | None:
        """VTM_GPUS: the GPU indices (NVML's, as nvidia-smi numbers them) vtm may hand out to
        runs, in the order given; None: every GPU NVML sees; (): none (`none`). On a machine
        without NVML this list is the whole GPU inventory."""
        text = (self.env.get("VTM_GPUS") or "").strip().lower()
        if not text:
            return None
        if text in ("none", "cpu"):
            return ()
        parts = [part.strip() for part in text.split(",")]
        if not all(part.isdigit() for part in parts) or len(set(map(int, parts))) != len(parts):
            raise UserError(f"VTM_GPUS must be distinct GPU indices like 0,1 (or none), got {text!r}")
        return tuple(int(part) for part in parts)

    @cached_property
    def cuda_visible_devices(self) -> tuple[str, ...] | None:
        """CUDA_VISIBLE_DEVICES as vtm itself was started with it (the GPUs the user's shell was
        given): its entries in order, GPU indices (as text) and GPU UUIDs (`GPU-...`, or a unique
        prefix of one), up to the first entry CUDA stops at (CUDA Programming Guide, "CUDA
        Environment Variables": an invalid entry hides itself and every one after it, so `-1`
        hides all); None when unset. While VTM_GPUS is unset, vtm hands out only these."""
        text = self.env.get("CUDA_VISIBLE_DEVICES")
        if text is None:
            return None
        entries = []
        for part in (part.strip() for part in text.split(",")):
            if not (part.isdigit() or part.upper().startswith(("GPU-", "MIG-"))):
                break
            entries.append(part)
        return tuple(entries)

    @cached_property
    def gpu_busy_mb(self) -> int:
        """VTM_GPU_BUSY_MB: megabytes (10^6 bytes) of a GPU's memory that processes other than vtm's
        runs may use before vtm counts that GPU busy and queues runs that want it."""
        return _count(self.env, "VTM_GPU_BUSY_MB", DEFAULT_GPU_BUSY_MB, 0, None, "a number of megabytes (0 or more)")

    @cached_property
    def system_metrics_interval(self) -> float:
        """VTM_SYSTEM_METRICS_INTERVAL: seconds between two system-metric samples of a run (its
        process tree's CPU and memory, its GPUs); 0 turns sampling off."""
        return _number(self.env, "VTM_SYSTEM_METRICS_INTERVAL", DEFAULT_SYSTEM_METRICS_INTERVAL,
                       "a number of seconds (0 or more; 0 turns sampling off)")

    @cached_property
    def run_id(self) -> str | None:
        """VTM_RUN_ID: set by vtm for a training script, the vtm run it belongs to."""
        return self.env.get("VTM_RUN_ID") or None

    @cached_property
    def run_dir(self) -> Path | None:
        """VTM_RUN_DIR: set by vtm for a training script, its run's folder (the log, run.json and
        the MLflow spool live there); None outside a vtm run."""
        text = self.env.get(RUN_DIR_VARIABLE) or ""
        return _resolve(text, self.workdir) if text else None

    @cached_property
    def tracking_mode(self) -> str:
        """VTM_TRACKING: set by vtm for a training script, `on` (log to MLflow, spool what it does
        not take) or `off` (launched with --no-tracking: TensorBoard and the spool only)."""
        text = (self.env.get("VTM_TRACKING") or "on").strip().lower()
        if text not in TRACKING_MODES:
            raise UserError(f"VTM_TRACKING must be one of {', '.join(TRACKING_MODES)}, got {text!r}")
        return text

    @cached_property
    def task(self) -> str | None:
        """VTM_TASK: set by vtm for a training script, the catalog task it runs for."""
        return self.env.get("VTM_TASK") or None

    # -- derived --------------------------------------------------------------------------------

    @property
    def embedded_tracking(self) -> bool:
        """True when no MLFLOW_TRACKING_URI is set: vtm's own tracking server is the one."""
        return self.tracking_uri is None

    @property
    def effective_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, else the configured embedded server (http://127.0.0.1:VTM_MLFLOW_PORT).
        Which server to use is core/tracking/uri.py's answer; this is only the configuration."""
        return self.tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def runs_db(self) -> Path:
        """The run store's SQLite database: <home>/runs.db."""
        return self.home / "runs.db"

    @property
    def runs_dir(self) -> Path:
        """One folder per run (log, Slurm job script): <home>/runs."""
        return self.home / "runs"

    @property
    def mlflow_dir(self) -> Path:
        """The embedded tracking server's data: <home>/mlflow."""
        return self.home / "mlflow"

    @property
    def web_dir(self) -> Path:
        """`vtm web`'s record (server.json), lock and log."""
        return self.home / "web"
