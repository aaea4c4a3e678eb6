"""Start, find, and stop vtm's web server, the way the embedded MLflow server is kept.

`VTM_HOME/web/server.json` records the serving process (pid, address, its own command line,
taken from /proc when it bound the port), written by the server itself and removed when it
exits. A record counts only while a live process has that pid *and* that command line, so a
reused pid is never mistaken for vtm's server, and vtm never signals a process it did not
start. `server.lock` serialises start and stop.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from vtm_tui.core import procs
from vtm_tui.core.web.address import BindAddress, bind_address, port_in_use_error, port_taken
from vtm_tui.errors import OperationFailed, UserError
from vtm_tui.settings import Settings

START_TIMEOUT = 30.0  # seconds a detached server gets to bind its port
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


class WebServerRunning(UserError):
    """vtm's web server already runs (at another address, or a second one was asked for)."""


@dataclass
class WebStatus:
    """What `vtm web status` says.

    state: "up" (vtm's server is serving) or "down"; url: where a browser on this machine
    reaches it (or would); managed: True when the pid is vtm's own server; message: anything
    else worth saying, e.g. that a stranger holds the port."""

    state: str
    url: str
    pid: int | None = None
    host: str | None = None
    port: int | None = None
    public: bool = False
    managed: bool = False
    message: str = ""

    def to_json(self) -> dict:
        """The fields as a JSON-able dict (`vtm web status --json`)."""
        return asdict(self)


def _record_path(settings: Settings) -> Path:
    return settings.web_dir / "server.json"


def log_path(settings: Settings) -> Path:
    """Where a detached server's output goes."""
    return settings.web_dir / "web.log"


def _read_record(settings: Settings) -> dict | None:
    try:
        record = json.loads(_record_path(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) \
            or not isinstance(record.get("argv"), list) or not record["argv"]:
        return None
    return record


def _ours(settings: Settings) -> dict | None:
    """The recorded server if that very process still runs, else None."""
    record = _read_record(settings)
    if record and procs.is_running(record["pid"], *map(str, record["argv"])):
        return record
    return None


def _address(record: dict) -> BindAddress:
    return BindAddress(str(record.get("host", "")), int(record.get("port", 0)), bool(record.get("public")))


@contextmanager
def _locked(settings: Settings):
    settings.web_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.web_dir / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def status(settings: Settings) -> WebStatus:
    """vtm's web server if it runs; else whether a stranger holds the default port."""
    ours = _ours(settings)
    if ours:
        address = _address(ours)
        return WebStatus("up", address.url, ours["pid"], address.host, address.port, address.public,
                         managed=True)
    address = BindAddress("127.0.0.1", settings.web_port)
    if port_taken(address):
        return WebStatus("down", address.url, host=address.host, port=address.port,
                         message=f"port {address.port} is used by another program, not vtm's web server")
    return WebStatus("down", address.url, host=address.host, port=address.port)


def _refuse_second(ours: dict) -> WebServerRunning:
    return WebServerRunning(f"vtm's web server already runs at {_address(ours).url} (pid {ours['pid']}); "
                            "stop it first with `vtm web stop`")


def serve(settings: Settings, address: BindAddress, gateway: Callable[..., None], *,
          command: list[str] | None = None, on_ready: Callable[[WebStatus], None] | None = None) -> None:
    """Serve the app in this process until SIGINT/SIGTERM/SIGHUP, recorded as vtm's server.

    gateway(address, command, on_bound=...) serves and blocks: the CLI's textual-serve gateway
    (vtm_tui.commands.web_gateway.serve), handed in so that core never imports textual or textual-serve.

    on_ready(status) runs once the port is bound and recorded. Raises WebServerRunning when vtm's
    server already runs, WebPortInUse when another program holds the port (both exit 2)."""
    me = os.getpid()
    with _locked(settings) as lock:
        ours = _ours(settings)
        if ours:
            raise _refuse_second(ours)
        if port_taken(address):
            raise port_in_use_error(address)

        def bound() -> None:
            record = {"pid": me, "host": address.host, "port": address.port, "public": address.public,
                      "argv": procs.cmdline(me) or [sys.executable], "started_at": time.time()}
            _record_path(settings).write_text(json.dumps(record))
            fcntl.flock(lock, fcntl.LOCK_UN)  # serving now: start and stop may look again
            if on_ready:
                on_ready(status(settings))

        try:
            gateway(address, command, on_bound=bound)
        finally:
            record = _read_record(settings)
            if record and record["pid"] == me:
                _record_path(settings).unlink(missing_ok=True)


def start_detached(settings: Settings, address: BindAddress,
                   timeout: float = START_TIMEOUT) -> tuple[WebStatus, bool]:
    """Start the server as a detached process (it outlives the shell and the SSH session);
    wait until it serves. Returns (status, started): started is False when vtm's server
    already ran at this very address.

    Raises WebServerRunning (it runs elsewhere), WebPortInUse (a stranger holds the port),
    OperationFailed (exit 1) when the server died or did not bind within `timeout` seconds."""
    ours = _ours(settings)
    if ours:
        if _address(ours) == address:
            return status(settings), False
        raise _refuse_second(ours)
    if port_taken(address):
        raise port_in_use_error(address)
    argv = [sys.executable, "-m", "vtm_tui.cli", "web", "--host", address.host, "--port", str(address.port)]
    log = log_path(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    pid = procs.spawn_detached(argv + (["--public"] if address.public else []), log_path=log,
                               cwd=settings.workdir, env=procs.child_environ())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = _ours(settings)
        if record and record["pid"] == pid:
            return status(settings), True
        if not procs.is_running(pid):
            raise OperationFailed(f"the web server exited during start-up: {_last_line(log, offset)} (log: {log})")
        time.sleep(0.1)
    raise OperationFailed(f"the web server did not bind port {address.port} within {timeout:.0f}s (log: {log})")


def _last_line(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            lines = handle.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return lines[-1].removeprefix("vtm: error: ") if lines else "no output"


def stop(settings: Settings) -> WebStatus | None:
    """Stop vtm's own web server (its open pages close, their apps quit; runs go on).
    Returns the stopped server's last status, or None when vtm's server was not running.
    Never signals any other process. Raises OperationFailed if it outlived SIGKILL."""
    with _locked(settings):
        ours = _ours(settings)
        if not ours:
            _record_path(settings).unlink(missing_ok=True)  # stale: its process is gone
            return None
        last = status(settings)
        markers = [str(part) for part in ours["argv"]]
        if _leads_group(ours["pid"]):
            gone = procs.terminate(ours["pid"], *markers, grace=STOP_GRACE)  # detached: its whole group
        else:
            gone = _terminate_one(ours["pid"], markers)  # a foreground `vtm web` in someone's shell
        if not gone:
            raise OperationFailed(f"vtm's web server (pid {ours['pid']}) did not stop")
        _record_path(settings).unlink(missing_ok=True)
        return last


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _terminate_one(pid: int, markers: list[str]) -> bool:
    """SIGTERM one verified process (it closes its pages and their apps), SIGKILL after the grace."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 2.0)):
        if not procs.is_running(pid, *markers):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and procs.is_running(pid, *markers):
            time.sleep(0.1)
    return not procs.is_running(pid, *markers)


def address_from(settings: Settings, host: str, port: int | None, public: bool) -> BindAddress:
    """The checked address for `vtm web`: port defaults to VTM_WEB_PORT (5173)."""
    return bind_address(host, settings.web_port if port is None else port, public)
