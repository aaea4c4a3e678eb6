"""Process helpers: detached spawning, liveness checks that survive PID reuse, group signals."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

# Variables vtm sets in its own process for a while (short MLflow HTTP timeouts for interactive
# calls, see tracking.interactive_http_limits). Children never get them, and os.environ is
# changed and copied only under ENV_LOCK, so no thread copies it half-changed.
ENV_LOCK = threading.Lock()
PROCESS_ONLY_ENV: set[str] = set()


def child_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this process's, without PROCESS_ONLY_ENV, plus extra."""
    with ENV_LOCK:
        env = {key: value for key, value in os.environ.items() if key not in PROCESS_ONLY_ENV}
    env.update(extra or {})
    return env

# Runs in a throwaway interpreter: starts the real program in its own session and exits at once,
# so the program is re-parented to init and never lingers as a zombie of whoever launched it.
_TRAMPOLINE = """
import subprocess, sys
with open(sys.argv[1], "ab") as log:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, close_fds=True)
print(child.pid, flush=True)
"""


def spawn_detached(argv: list[str], *, log_path: Path, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None) -> int:
    """Start argv detached (own session, stdin closed, output appended to log_path); return its PID."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-I", "-c", _TRAMPOLINE, str(log_path), *argv],
        cwd=cwd, env=child_environ() if env is None else env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise OSError(f"could not start {argv[0]}: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return int(out.stdout.strip())


def cmdline(pid: int) -> list[str] | None:
    """The argv of a live, non-zombie process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def is_running(pid: int | None, *markers: str) -> bool:
    """True if pid is alive and its command line holds every marker (guards against PID reuse)."""
    if not pid:
        return False
    argv = cmdline(pid)
    if argv is None:
        if not Path("/proc").is_dir():  # not Linux: best effort
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        return False
    return all(any(marker in part for part in argv) for marker in markers)


def group_alive(pgid: int) -> bool:
    """True while any process of process group `pgid` lives (one we may not signal counts)."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when the group is gone or not ours to signal."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate(pid: int, *markers: str, grace: float = 10.0) -> bool:
    """SIGTERM a verified process and its whole group (it was started as a group leader by
    spawn_detached), SIGKILL what is left after grace; True once the group is gone."""
    if not is_running(pid, *markers):
        return True  # gone, or the PID is someone else's now: never signal what we cannot verify
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pid):  # children (e.g. a uvicorn worker) included
            return True
        time.sleep(0.1)
    signal_group(pid, signal.SIGKILL)
    time.sleep(0.2)
    return not is_running(pid, *markers)
