"""Start, reuse, stop and check the embedded MLflow tracking server.

The server runs detached (it outlives vtm); `server.json` in VTM_HOME/mlflow records its PID
(the leader of its own process group and session), port, backend and a random marker handed
to it in its environment (`VTM_MLFLOW_SERVER_ID`). That is how vtm tells its own server from
a stranger on the same port, and how it still knows the server's uvicorn workers as its own
after the recorded PID was killed: `status`, `down` and `up` stop such orphans. vtm never stops
a process it did not start, and never forgets a server it did not stop.
"""
from __future__ import annotations

import fcntl
import json
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vtm_tui.core import procs, proctable
from vtm_tui.core.formatting import redact_url
from vtm_tui.errors import OperationFailed, UserError
from vtm_tui.settings import SERVER_MARKER_VARIABLE, Settings

HOST = "127.0.0.1"
START_TIMEOUT = 180.0
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when stopping the server
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


def server_processes(state: dict) -> set[int]:
    """The live processes of the recorded server: those started with its marker in their
    environment (records written before markers: the members of its process group that started
    no earlier than its leader)."""
    table = proctable.snapshot()
    if state.get("marker"):
        return proctable.marked(SERVER_MARKER_VARIABLE, state["marker"], table)
    since = state.get("start_ticks")
    return {pid for pid in proctable.group_members(state["pid"], table)
            if since is None or table[pid].start_ticks >= since}


@dataclass
class Stopped:
    """What stopping vtm's server did: stopped (something of vtm's server was running and is
    gone now), orphans (PIDs of its processes found running without the recorded leader)."""
    stopped: bool
    orphans: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the user."""
        if self.orphans:
            return (f"stopped {len(self.orphans)} orphaned process(es) of vtm's MLflow tracking server "
                    f"(its main process had died): pids {', '.join(map(str, self.orphans))}")
        return "MLflow tracking server stopped" if self.stopped else "vtm's MLflow tracking server was not running"


def _stop_orphans(settings: Settings, state: dict | None) -> Stopped:
    """With the server lock held and the recorded leader dead: stop what is left of the recorded
    server (uvicorn workers keep serving after a `kill -9` of the leader); forget the record once
    nothing of it runs. OperationFailed, record kept, when some process would not end."""
    if state is None:
        return Stopped(False)
    orphans = sorted(server_processes(state))
    left = proctable.end(orphans, STOP_GRACE) if orphans else []
    if left:
        raise OperationFailed(
            f"could not stop the orphaned processes of vtm's MLflow server: "
            f"{', '.join(proctable.describe(pid) for pid in left)}; {_state_path(settings)} is kept")
    _state_path(settings).unlink(missing_ok=True)
    return Stopped(bool(orphans), orphans)


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
    message = ""
    state = _read_state(settings)
    if state and server_processes(state):
        with _lock(settings):
            if _our_server(settings) is None:  # `up` may have started a new one meanwhile
                message = _stop_orphans(settings, _read_state(settings)).summary()
        if _our_server(settings):
            return status(settings)
    port = settings.mlflow_port
    uri = f"http://{HOST}:{port}"
    if port_open(port):
        return ServerStatus("down", uri, port=port, message="; ".join(
            filter(None, [message, f"port {port} is used by another program, not vtm's server"])))
    return ServerStatus("down", uri, port=port, message=message)


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
        _stop_orphans(settings, _read_state(settings))  # they may still hold the port
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
        marker = uuid.uuid4().hex
        env = {**server_environment(settings), SERVER_MARKER_VARIABLE: marker}
        pid = procs.spawn_detached(argv, log_path=settings.mlflow_dir / "server.log",
                                   cwd=settings.mlflow_dir, env=env)
        leader = proctable.read_stat(pid)
        try:
            _write_state(settings, {"pid": pid, "port": port, "backend_store_uri": backend, "started_at": time.time(),
                                    "marker": marker, "start_ticks": leader.start_ticks if leader else None})
        except OSError:  # e.g. a full disk: never leave a server running that vtm has no record of
            procs.terminate(pid, "mlflow", grace=STOP_GRACE)
            proctable.end(proctable.marked(SERVER_MARKER_VARIABLE, marker), STOP_GRACE)
            raise
        _wait_healthy(settings, pid, port, timeout)
    return status(settings)


def _write_state(settings: Settings, state: dict) -> None:
    path = _state_path(settings)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)  # never a half-written record


def down(settings: Settings) -> Stopped:
    """Stop vtm's own server: its whole process group and every process started with its marker
    (orphaned workers too). Never touches other processes; the record is deleted only once
    nothing of the server runs (OperationFailed, record kept, when something would not end)."""
    with _lock(settings):
        ours = _our_server(settings)
        if not ours:
            return _stop_orphans(settings, _read_state(settings))
        members = server_processes(ours)
        procs.terminate(ours["pid"], "mlflow", grace=STOP_GRACE)
        left = proctable.end(members, STOP_GRACE)
        if left or _our_server(settings):
            raise OperationFailed(
                f"could not stop vtm's MLflow server: {', '.join(proctable.describe(pid) for pid in left)} "
                f"still running; {_state_path(settings)} is kept")
        _state_path(settings).unlink(missing_ok=True)
        return Stopped(True)
