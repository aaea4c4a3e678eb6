"""Start, reuse, stop and check the embedded MLflow tracking server.

The server runs detached (it outlives vtm); `server.json` in VTM_HOME/mlflow records its PID,
port and backend, which is how vtm tells its own server from a stranger on the same port.
vtm never stops a process it did not start.
"""
from __future__ import annotations

import fcntl
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.formatting import redact_url
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

HOST = "127.0.0.1"
START_TIMEOUT = 180.0
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


class PortInUse(UserError):
    """The embedded server's port is taken by another program (vtm never touches it)."""
    pass


@dataclass
class ServerStatus:
    """The tracking server's state: up, starting or down, its URI, and for vtm's own (managed)
    server its PID, port and backend store; message: why it is down, or that an external URI is
    configured."""
    state: str  # "up", "starting", "down"
    uri: str
    pid: int | None = None
    port: int | None = None
    backend_store_uri: str | None = None
    managed: bool = False  # True when it is vtm's embedded server
    message: str = ""

    def to_json(self) -> dict:
        """Every field: the `vtm mlflow status --json` object."""
        return asdict(self)


def _state_path(settings: Settings) -> Path:
    return settings.mlflow_dir / "server.json"


def default_backend(settings: Settings) -> str:
    """The embedded server's backend store: `sqlite:///<VTM_HOME>/mlflow/mlflow.db`."""
    return f"sqlite:///{(settings.mlflow_dir / 'mlflow.db').resolve()}"


def _read_state(settings: Settings) -> dict | None:
    try:
        state = json.loads(_state_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("pid"), int) else None


def _our_server(settings: Settings) -> dict | None:
    """The recorded server if its process is still alive, else None."""
    state = _read_state(settings)
    if state and procs.is_running(state["pid"], "mlflow", str(state.get("port"))):
        return state
    return None


def port_open(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on host:port (0.5 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def healthy(uri: str, timeout: float = 2.0) -> bool:
    """True when `uri`/health answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def status(settings: Settings) -> ServerStatus:
    """Where tracking stands without starting anything: the external server or store of
    MLFLOW_TRACKING_URI (an http one is probed), else vtm's embedded server from its state file
    (up, or starting until /health answers), else down on the configured port."""
    if not settings.embedded_tracking:
        uri = settings.effective_tracking_uri
        if uri.startswith(("http://", "https://")):
            state = "up" if healthy(uri) else "down"
            return ServerStatus(state, uri, message="MLFLOW_TRACKING_URI is set: external server")
        return ServerStatus("up", uri, message="MLFLOW_TRACKING_URI is set: direct store access")
    ours = _our_server(settings)
    if ours:
        uri = f"http://{HOST}:{ours['port']}"
        return ServerStatus("up" if healthy(uri) else "starting", uri, ours["pid"], ours["port"],
                            ours.get("backend_store_uri"), managed=True)
    port = settings.mlflow_port
    uri = f"http://{HOST}:{port}"
    if port_open(port):
        return ServerStatus("down", uri, port=port,
                            message=f"port {port} is used by another program, not vtm's server")
    return ServerStatus("down", uri, port=port)


@contextmanager
def _lock(settings: Settings):
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.mlflow_dir / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_healthy(settings: Settings, pid: int, port: int, timeout: float) -> None:
    uri = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(uri):
            return
        if not procs.is_running(pid, "mlflow"):
            log = (settings.mlflow_dir / "server.log").read_text(errors="replace").strip().splitlines()
            tail = " | ".join(log[-3:]) or "no output"
            raise UserError(f"MLflow server on port {port} exited during start-up: {tail} "
                            f"(full log: {settings.mlflow_dir / 'server.log'})")
        time.sleep(0.5)
    raise UserError(f"MLflow server on port {port} did not answer /health within {timeout:.0f}s "
                    f"(log: {settings.mlflow_dir / 'server.log'})")


def server_environment(settings: Settings) -> dict[str, str]:
    """The server's environment. MLflow's job runner (GenAI judges, trace rollups: nothing vtm
    uses) is off unless the user turns it on: it starts eight more processes that take ~1.4 GB
    and import MLflow on every start, competing for the cores with training."""
    env = procs.child_environ()
    env.setdefault(JOB_EXECUTION, settings.env.get(JOB_EXECUTION) or "false")
    return env


def up(settings: Settings, port: int | None = None, backend_store_uri: str | None = None,
       timeout: float = START_TIMEOUT) -> ServerStatus:
    """Start the embedded server, or reuse ours if it already runs. Waits until it is healthy."""
    with _lock(settings):
        ours = _our_server(settings)
        if ours:
            # Without explicit choices, whatever vtm's server runs with is what the user wants.
            port = port or ours["port"]
            wanted = backend_store_uri or ours.get("backend_store_uri")
            if ours["port"] != port or ours.get("backend_store_uri") != wanted:
                raise UserError(
                    f"vtm's MLflow server already runs on port {ours['port']} with backend "
                    f"{redact_url(ours.get('backend_store_uri') or '')}; "
                    "stop it first with `vtm mlflow down`")
            _wait_healthy(settings, ours["pid"], port, timeout)
            return status(settings)
        port = port or settings.mlflow_port
        backend = backend_store_uri or default_backend(settings)
        if port_open(port):
            raise PortInUse(
                f"port {port} on {HOST} is in use by another program, not vtm's MLflow server; "
                f"vtm will not stop it. Free the port, choose another with --port or VTM_MLFLOW_PORT, "
                f"or point MLFLOW_TRACKING_URI at that server")
        artifacts = settings.mlflow_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
                "--backend-store-uri", backend, "--artifacts-destination", str(artifacts.resolve()),
                "--workers", str(settings.mlflow_workers)]
        pid = procs.spawn_detached(argv, log_path=settings.mlflow_dir / "server.log",
                                   cwd=settings.mlflow_dir, env=server_environment(settings))
        _state_path(settings).write_text(json.dumps(
            {"pid": pid, "port": port, "backend_store_uri": backend, "started_at": time.time()}))
        _wait_healthy(settings, pid, port, timeout)
    return status(settings)


def down(settings: Settings) -> bool:
    """Stop vtm's own server; False if none was running. Never touches other processes."""
    with _lock(settings):
        ours = _our_server(settings)
        if not ours:
            _state_path(settings).unlink(missing_ok=True)
            return False
        stopped = procs.terminate(ours["pid"], "mlflow")
        if stopped:
            _state_path(settings).unlink(missing_ok=True)
        return stopped
