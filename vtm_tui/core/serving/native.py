"""MLflow native serving: `mlflow models serve` as managed, detached processes, and a client
for their `/invocations` endpoint.

Servers are recorded in the run store's database (table `servers`), so they survive the TUI
and any vtm process can list or stop them.
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs.store import RunStore
from vtm_tui.core.tracking.server import port_open
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

HOST = "127.0.0.1"
DEFAULT_PORT = 5002
START_TIMEOUT = 180.0
REQUEST_TIMEOUT = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_uri TEXT NOT NULL,
    port INTEGER NOT NULL,
    pid INTEGER,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    log_path TEXT NOT NULL,
    tracking_uri TEXT,
    input_shape TEXT,
    message TEXT
)"""


@dataclass
class ServerRecord:
    """A model server vtm started: its model URI, port on 127.0.0.1, PID, status (starting, up,
    stopped, failed), start time (seconds since the epoch), log file, tracking URI, the input
    shape `C,H,W` of the model's signature, and why it stopped or failed."""
    id: int
    model_uri: str
    port: int
    pid: int | None
    status: str  # starting, up, stopped, failed
    created_at: float
    log_path: str
    tracking_uri: str | None
    input_shape: str | None  # "C,H,W" from the model's signature, read while MLflow was reachable
    message: str | None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{HOST}:{self.port}"

    def to_json(self) -> dict:
        """Every field plus "url": the `vtm serve ls --json` object."""
        return {**asdict(self), "url": self.url}


def _store(settings: Settings) -> RunStore:
    store = RunStore(settings.runs_db)
    with store.connect() as db:
        db.execute(_SCHEMA)
    return store


def _records(store: RunStore, where: str = "", args: tuple = ()) -> list[ServerRecord]:
    with store.connect() as db:
        rows = db.execute(f"SELECT * FROM servers {where} ORDER BY id DESC", args).fetchall()
    return [ServerRecord(**dict(row)) for row in rows]


def _update(store: RunStore, server_id: int, **values) -> None:
    columns = ", ".join(f"{key}=?" for key in values)
    with store.connect() as db:
        db.execute(f"UPDATE servers SET {columns} WHERE id=?", (*values.values(), server_id))


def ping(url: str, timeout: float = 2.0) -> bool:
    """True when `url`/ping answers 200 within `timeout` seconds (MLflow's scoring server health
    check)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_model_exists(model_uri: str, tracking_uri: str) -> None:
    """Fail early and clearly for a model URI that does not resolve (name, alias, version, run)."""
    from vtm_tui.core.tracking.client import Tracking

    if not model_uri.startswith(("models:/", "runs:/")):
        if not Path(model_uri).exists():
            raise UserError(f"model {model_uri!r} not found: use models:/NAME@ALIAS, "
                            "models:/NAME/VERSION, runs:/RUN_ID/PATH or a local path")
        return
    tracking = Tracking(tracking_uri)
    client = tracking.client
    with tracking.calling(f"look up model {model_uri}"):
        if model_uri.startswith("runs:/"):
            client.get_run(model_uri[len("runs:/"):].split("/", 1)[0])
            return
        name = model_uri[len("models:/"):]
        if "@" in name:
            client.get_model_version_by_alias(*name.split("@", 1))
        elif "/" in name:
            client.get_model_version(*name.split("/", 1))
        else:
            client.get_registered_model(name)


def start_native(settings: Settings, model_uri: str, port: int | None = None,
                 timeout: float = START_TIMEOUT) -> ServerRecord:
    """Start `mlflow models serve` for model_uri, detached; wait for /ping; return its record."""
    from vtm_tui.core.tracking.uri import resolve_tracking_uri

    port = port or DEFAULT_PORT
    if port_open(port):
        raise UserError(f"port {port} on {HOST} is already in use; choose another with --port")
    tracking_uri = resolve_tracking_uri(settings)
    check_model_exists(model_uri, tracking_uri)
    store = _store(settings)
    with store.connect() as db:
        server_id = db.execute(
            "INSERT INTO servers (model_uri, port, status, created_at, log_path, tracking_uri)"
            " VALUES (?, ?, 'starting', ?, '', ?)", (model_uri, port, time.time(), tracking_uri)).lastrowid
    log_path = settings.home / "serving" / f"{server_id}.log"
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "-p", str(port),
            "-h", HOST, "--env-manager", "local"]
    # mlflow execs `uvicorn` by name: our interpreter's bin folder must be on PATH even when
    # vtm was started as .venv/bin/vtm without activating the venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = procs.child_environ({"MLFLOW_TRACKING_URI": tracking_uri, "PATH": path})
    pid = procs.spawn_detached(argv, log_path=log_path, env=env, cwd=settings.home)
    shape = served_input_shape(model_uri, tracking_uri)
    _update(store, server_id, pid=pid, log_path=str(log_path),
            input_shape=",".join(map(str, shape)) if shape else None)
    record = get_server(settings, server_id)
    deadline = time.monotonic() + timeout
    while not ping(record.url):
        if not procs.is_running(pid, "mlflow"):
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
            _update(store, server_id, status="failed", message=tail)
            raise UserError(f"`mlflow models serve` for {model_uri} exited during start-up: {tail} "
                            f"(log: {log_path})")
        if time.monotonic() > deadline:
            procs.terminate(pid, "mlflow")
            _update(store, server_id, status="failed", message="no /ping answer")
            raise UserError(f"model server for {model_uri} did not answer /ping within "
                            f"{timeout:.0f}s (log: {log_path})")
        time.sleep(0.5)
    _update(store, server_id, status="up")
    return get_server(settings, server_id)


def _reconcile(store: RunStore, record: ServerRecord) -> ServerRecord:
    if record.status in ("starting", "up") and not procs.is_running(record.pid, "mlflow"):
        _update(store, record.id, status="stopped", message="its process is gone")
        record.status, record.message = "stopped", "its process is gone"
    elif record.status == "starting" and ping(record.url, timeout=0.5):
        # whoever started it stopped waiting (e.g. the TUI was closed): it is up all the same
        _update(store, record.id, status="up")
        record.status = "up"
    return record


def list_servers(settings: Settings, include_stopped: bool = False) -> list[ServerRecord]:
    """The servers vtm started, newest first, reconciled with their processes; stopped and
    failed ones only with include_stopped."""
    store = _store(settings)
    records = [_reconcile(store, record) for record in _records(store)]
    return [r for r in records if include_stopped or r.status in ("starting", "up")]


def get_server(settings: Settings, server_id: int | str) -> ServerRecord:
    """The server with that id, reconciled; UserError when there is none."""
    store = _store(settings)
    try:
        found = _records(store, "WHERE id=?", (int(server_id),))
    except ValueError:
        found = []
    if not found:
        raise UserError(f"no model server with id {server_id!r} (see `vtm serve ls`)")
    return _reconcile(store, found[0])


def stop_server(settings: Settings, server_id: int | str) -> ServerRecord:
    """Stop a server (SIGTERM to its process group, SIGKILL after 10 s) and record it stopped;
    UserError when there is none or it would not stop."""
    record = get_server(settings, server_id)
    if record.status in ("starting", "up"):
        if not procs.terminate(record.pid, "mlflow"):
            raise UserError(f"model server {record.id} (pid {record.pid}) did not stop")
        _update(_store(settings), record.id, status="stopped", message="stopped by user")
    return get_server(settings, record.id)


def stop_all(settings: Settings) -> list[ServerRecord]:
    """Stop every model server vtm started that is still starting or up (stop_server each);
    returns their records afterwards, newest first. UserError naming the ones that would not
    stop, after trying all."""
    stopped, failed = [], []
    for record in list_servers(settings):
        try:
            stopped.append(stop_server(settings, record.id))
        except UserError as exc:
            failed.append(str(exc))
    if failed:
        raise UserError("; ".join(failed))
    return stopped


def predict_url(url: str, inputs, timeout: float = REQUEST_TIMEOUT):
    """POST `{"inputs": ...}` to URL/invocations; returns the decoded `predictions`."""
    body = json.dumps({"inputs": inputs.tolist() if hasattr(inputs, "tolist") else inputs}).encode()
    request = urllib.request.Request(url.rstrip("/") + "/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise UserError(f"{url}/invocations answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"cannot reach model server {url}: {getattr(exc, 'reason', exc)}") from None
    return payload.get("predictions", payload) if isinstance(payload, dict) else payload


def served_input_shape(model_uri: str, tracking_uri: str | None) -> tuple[int, int, int] | None:
    """(C, H, W) from the logged model's signature, when it has one."""
    from vtm_tui.core.tracking.probes import interactive_http_limits

    try:
        import mlflow

        with interactive_http_limits():
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
            signature = mlflow.models.get_model_info(model_uri).signature
        shape = signature.inputs.inputs[0].shape
    except Exception:
        return None
    return tuple(int(dim) for dim in shape[1:]) if len(shape) == 4 else None
