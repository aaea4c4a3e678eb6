"""A run's output as the supervisor (and the Slurm follower) handles it: progress lines parsed
into the run record, the log file written without ever blocking the training, the last lines
kept in memory to name what ended a failed run, and a small space reserve that lets the run
record its end on a full disk."""
from __future__ import annotations

import errno
import os
import time
from collections import deque
from pathlib import Path
from typing import Callable, Protocol

from vtm_tui.core.formatting import format_size
from vtm_tui.core.runs.progress import MetaLine, ProgressLine, parse_line

FLUSH_INTERVAL = 0.5  # seconds between progress writes to the store: bounds SQLite traffic
MAX_LINE = 1 << 20  # longer partial lines are not kept for parsing (the log still has them)
TAIL_LINES = 200  # lines of output kept in memory for the failure message
RESERVE_BYTES = 512 << 10  # freed on a full disk so that the store can still record the end
RESUME_FREE = 8 << 20  # bytes (or a quarter of a smaller disk) free again before a failed log resumes
RETRY_INTERVAL = 5.0  # seconds between checks whether a failed log may resume
_TAG = b"VTM_"
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG)


class RecordSink(Protocol):
    """Where progress goes: the run store, or the supervisor's Recorder in front of it."""

    def update(self, run_id: int, **values) -> object:
        """Set columns of the run."""

    def save_progress(self, run_id: int, latest: dict, points: dict[float, dict]) -> object:
        """Save the latest progress and the chart points of some epochs."""


class ProgressTracker:
    """Keeps the latest progress and one merged point per epoch until the next flush; meta lines
    set the MLflow run id and the run's message (`tracking`: what the training helper says about
    MLflow, e.g. that it is unreachable and what is spooled)."""

    def __init__(self, sink: RecordSink, run_id: int, latest: dict):
        self.sink, self.run_id = sink, run_id
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
        line records the MLflow run id and the tracking note; anything else is ignored."""
        parsed = parse_line(line)
        if isinstance(parsed, ProgressLine):
            self.latest.update(parsed.data)
            epoch = parsed.data.get("epoch")
            if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
                self.points.setdefault(float(epoch), {}).update(parsed.data)
            self.dirty = True
        elif isinstance(parsed, MetaLine):
            changes = {}
            run_id, note = parsed.data.get("mlflow_run_id"), parsed.data.get("tracking")
            if isinstance(run_id, str) and run_id:
                changes["mlflow_run_id"] = run_id
            if isinstance(note, str) and note:
                changes["message"] = note[:500]
            if changes:
                self.sink.update(self.run_id, **changes)

    def flush(self, force: bool = False) -> None:
        """Write the progress to the store if it changed, at most every FLUSH_INTERVAL seconds
        (force: now, including a last unterminated line)."""
        if force and self.pending:
            self.handle(self.pending)
            self.pending = b""
        now = time.monotonic()
        if self.dirty and (force or now - self.last_flush >= FLUSH_INTERVAL):
            self.sink.save_progress(self.run_id, self.latest, self.points)
            self.points, self.dirty, self.last_flush = {}, False, now


class SpaceReserve:
    """A file of RESERVE_BYTES allocated at the start of a run (posix_fallocate) and deleted on a
    full disk, so that the store can still take the few pages that record how the run ended."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.held = False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
                self.held = True
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            self.release()

    def release(self) -> bool:
        """Give the space back; True the first time."""
        was, self.held = self.held, False
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        return was


class LogWriter:
    """Appends the script's output to its log file. A write the disk refuses (full, quota, I/O
    error) drops that output, counted in lines and bytes, and never blocks or ends the training;
    the log resumes once RESUME_FREE bytes are free again, with a line saying what was dropped.
    The last TAIL_LINES lines stay in memory either way (for the failure message)."""

    def __init__(self, path: str | Path, on_disk_error: Callable[[], None] | None = None):
        self.path = Path(path)
        self.on_disk_error = on_disk_error
        self.handle = open(self.path, "ab", buffering=0)
        self.tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        self._partial = b""
        self.error: str | None = None  # e.g. "no space left on device (/.../output.log)"
        self.dropped_lines = self.dropped_bytes = 0
        self._unreported = 0
        self._retry_at = 0.0

    def write(self, chunk: bytes) -> None:
        """Append `chunk` to the log (or count it dropped), remembering its lines."""
        self._remember(chunk)
        if self._unreported and not self._may_retry():
            self._drop(chunk)
            return
        if self._unreported:
            note = (f"\n[vtm] {self._unreported} log line(s) dropped here: {self.error}\n").encode()
            if not self._write_all(note):
                self._drop(chunk)
                return
            self._unreported = 0
        if not self._write_all(chunk):
            self._drop(chunk)

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                written = self.handle.write(view)
            except OSError as exc:
                if exc.errno not in _DISK_ERRORS:
                    raise
                self.error = f"{(exc.strerror or str(exc)).lower()} ({self.path})"
                self._retry_at = time.monotonic() + RETRY_INTERVAL
                if self.on_disk_error:
                    self.on_disk_error()
                return False
            view = view[written or 0:]
        return True

    def _may_retry(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        self._retry_at = time.monotonic() + RETRY_INTERVAL
        try:
            info = os.statvfs(self.path.parent)
        except OSError:
            return False
        return info.f_bavail * info.f_frsize >= min(RESUME_FREE, info.f_blocks * info.f_frsize // 4)

    def _drop(self, chunk: bytes) -> None:
        lines = chunk.count(b"\n") or 1
        self.dropped_lines += lines
        self._unreported += lines
        self.dropped_bytes += len(chunk)

    def _remember(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()[-MAX_LINE:]
        self.tail.extend(line[:4096] for line in lines[-TAIL_LINES:])

    def tail_lines(self) -> list[str]:
        """The last lines of output (the unterminated one too), decoded."""
        lines = [*self.tail, *([self._partial] if self._partial else [])]
        return [line.decode("utf-8", "replace") for line in lines]

    def problem(self) -> str | None:
        """What went wrong with the log, one line (None when nothing did): the error and what was
        dropped, e.g. `no space left on device (PATH): 1200 log line(s) (8.4 MB) dropped`."""
        if self.error is None:
            return None
        if not self.dropped_lines:
            return self.error
        return f"{self.error}: {self.dropped_lines} log line(s) ({format_size(self.dropped_bytes)}) dropped"

    def close(self) -> None:
        """Close the file (a last failing flush is ignored)."""
        try:
            self.handle.close()
        except OSError:
            pass
