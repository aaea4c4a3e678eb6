"""The detached per-run supervisor: `python -m vtm_tui.core.runs.supervisor DB RUN_ID`.

It owns one training process: starts it in its own process group, copies its output to the
run's log file byte for byte, records progress / MLflow run id / status / exit code in the run
store, escalates a cancel SIGINT -> SIGTERM -> SIGKILL to the whole group, and ends an MLflow run
the script left open. Started in its own session, so closing the TUI or dropping SSH cannot
reach it; nothing here imports the UI, and mlflow is imported only at the very end, if needed.
"""
from __future__ import annotations

import fcntl
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs.outcome import finish_run
from vtm_tui.core.runs.progress import MetaLine, ProgressLine, parse_line
from vtm_tui.core.runs.store import RunStore
from vtm_tui.settings import Settings

MARKER = "vtm_tui.core.runs.supervisor"
FLUSH_INTERVAL = 0.5  # seconds between progress writes to the store: bounds SQLite traffic
CANCEL_POLL_INTERVAL = 1.0
READ_SIZE = 1 << 20
BATCH_PAUSE = 0.005  # seconds; far below what a person or the UI can notice
MAX_LINE = 1 << 20  # longer partial lines are not kept for parsing (the log still has them)
_TAG = b"VTM_"


class ProgressTracker:
    """Keeps the latest progress and one merged point per epoch until the next flush."""

    def __init__(self, store: RunStore, run_id: int, latest: dict):
        self.store, self.run_id = store, run_id
        self.latest = dict(latest)
        self.points: dict[float, dict] = {}
        self.dirty = False
        self.last_flush = 0.0
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        """Take a chunk of the script's output; complete lines holding `VTM_` are parsed (a partial
        line waits for the rest; one over 1 MiB is dropped)."""
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        complete, self.pending = data[:cut], data[cut:]
        if len(self.pending) > MAX_LINE:
            self.pending = b""
        if _TAG in complete:  # fast path: plain output needs no decoding or splitting
            for line in complete.decode("utf-8", "replace").split("\n"):
                if "VTM_" in line:
                    self.handle(line)

    def handle(self, line: str | bytes) -> None:
        """Apply one line: a progress line updates the latest progress and its epoch's point, a meta
        line records the MLflow run id; anything else is ignored."""
        parsed = parse_line(line)
        if isinstance(parsed, ProgressLine):
            self.latest.update(parsed.data)
            epoch = parsed.data.get("epoch")
            if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
                self.points.setdefault(float(epoch), {}).update(parsed.data)
            self.dirty = True
        elif isinstance(parsed, MetaLine):
            run_id = parsed.data.get("mlflow_run_id")
            if isinstance(run_id, str) and run_id:
                self.store.update(self.run_id, mlflow_run_id=run_id)

    def flush(self, force: bool = False) -> None:
        """Write the progress to the store if it changed, at most every FLUSH_INTERVAL seconds
        (force: now, including a last unterminated line)."""
        if force and self.pending:
            self.handle(self.pending)
            self.pending = b""
        now = time.monotonic()
        if self.dirty and (force or now - self.last_flush >= FLUSH_INTERVAL):
            self.store.save_progress(self.run_id, self.latest, self.points)
            self.points, self.dirty, self.last_flush = {}, False, now


class Canceller:
    """SIGINT now, SIGTERM after the grace period, SIGKILL after another."""

    def __init__(self, pgid: int, grace: float):
        self.pgid, self.grace = pgid, grace
        self.started: float | None = None
        self.stage = 0

    def request(self) -> None:
        """Start cancelling: SIGINT to the script's process group (once)."""
        if self.started is None:
            self.started = time.monotonic()
            procs.signal_group(self.pgid, signal.SIGINT)
            self.stage = 1

    def tick(self) -> None:
        """Escalate when due: SIGTERM `grace` seconds after the SIGINT, SIGKILL after twice that."""
        if self.started is None:
            return
        elapsed = time.monotonic() - self.started
        if self.stage == 1 and elapsed >= self.grace:
            procs.signal_group(self.pgid, signal.SIGTERM)
            self.stage = 2
        elif self.stage == 2 and elapsed >= 2 * self.grace:
            procs.signal_group(self.pgid, signal.SIGKILL)
            self.stage = 3


def supervise(store: RunStore, run_id: int) -> None:
    """Run and watch run `run_id` to its end (see the module docstring); every outcome, a failure
    to start included, ends in a finished run record."""
    run = store.get(run_id)
    cancel_flag = {"set": False}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A handler, not SIG_IGN: an ignored SIGINT would be inherited by the training script, and
    # the first step of a cancel (SIGINT, i.e. KeyboardInterrupt) would never reach it.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: cancel_flag.update(set=True))

    log = open(run.log_path, "ab", buffering=0)
    env = procs.child_environ(run.env)
    if run.cancel_requested:  # cancelled while queued: never start it
        store.finish(run_id, "cancelled", message="cancelled before it started")
        return
    try:
        child = subprocess.Popen(
            run.argv, cwd=run.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        message = f"cannot start {run.argv[0]!r}: {exc.strerror or exc}"
        log.write(f"[vtm] {message}\n".encode())
        store.finish(run_id, "failed", message=message, started_at=time.time())
        return
    store.update(run_id, status="running", started_at=time.time(),
                 supervisor_pid=os.getpid(), child_pid=child.pid)

    tracker = ProgressTracker(store, run_id, run.progress)
    handed = Settings.from_environ(env, Path(run.cwd))  # what the launching vtm handed over
    canceller = Canceller(child.pid, handed.cancel_grace)
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    fd = child.stdout.fileno()
    try:  # a bigger pipe lets the script run ahead while we batch (Linux only)
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_SIZE)
    except OSError:
        pass
    next_cancel_poll = 0.0
    exited_at: float | None = None
    while True:
        if cancel_flag["set"]:
            canceller.request()
        now = time.monotonic()
        if now >= next_cancel_poll:  # a cancel can also arrive through the store alone
            next_cancel_poll = now + CANCEL_POLL_INTERVAL
            if canceller.started is None and store.get(run_id).cancel_requested:
                canceller.request()
        canceller.tick()
        if selector.select(timeout=0.2):
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                break
            log.write(chunk)
            tracker.feed(chunk)
            if len(chunk) < READ_SIZE:
                # A chatty script flushing every line would wake us per line; letting the pipe
                # fill for a moment turns that into one read, one write and one parse pass.
                time.sleep(BATCH_PAUSE)
        elif child.poll() is not None:
            # The script is gone but something it started still holds the pipe: stop waiting.
            exited_at = exited_at or now
            if now - exited_at > 1.0:
                break
        tracker.flush()
    exit_code = child.wait()
    procs.signal_group(child.pid, signal.SIGKILL)  # nothing of the run outlives it
    tracker.flush(force=True)

    status = "cancelled" if canceller.started is not None else ("succeeded" if exit_code == 0 else "failed")
    finish_run(store, store.get(run_id), status, exit_code=exit_code, tracking_uri=handed.tracking_uri,
               failure=f"exit code {exit_code}" if exit_code >= 0 else f"killed by signal {-exit_code}")
    log.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m vtm_tui.core.runs.supervisor DB RUN_ID`: the supervisor process. An error of
    its own finishes the run as failed (exit code 1)."""
    db_path, run_id = (argv or sys.argv[1:])[:2]
    store = RunStore(Path(db_path))
    try:
        supervise(store, int(run_id))
    except Exception:
        detail = traceback.format_exc()
        sys.stderr.write(detail)
        store.finish(int(run_id), "failed", message="supervisor error: " + detail.strip().splitlines()[-1])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
