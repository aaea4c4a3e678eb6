"""Background threads that keep hashing, (de)compression and disk I/O off the transfer loop.

sha256, zlib and file reads/writes release the GIL on large buffers, so with a worker per stage a
transfer costs about as much wall time as the slowest stage instead of the sum of them all.
Queues are bounded (a few MiB), errors in a worker surface in the caller, and every worker can
be abandoned without blocking anyone.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

from vtm_tui.core.registry.base import CHUNK

DEPTH = 8  # blocks in flight per stage
_STOP = object()


class Worker:
    """Calls fn(item) for every put(item) on a background thread, in order."""

    def __init__(self, fn: Callable[[object], object], *, depth: int = DEPTH, name: str = "vtm-registry-worker"):
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None and not self._abandoned:
                try:
                    self._fn(item)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def put(self, item) -> None:
        """Queue an item for the worker (blocks while the queue is full); re-raises the worker's
        error, if it failed."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait until everything put so far is done; re-raise a worker error."""
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop without waiting for the rest (after a failure elsewhere)."""
        self._abandoned = True
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            threading.Thread(target=self._queue.put, args=(_STOP,), daemon=True).start()


class Prefetch:
    """A Source that runs `read(CHUNK)` on a background thread, up to `depth` blocks ahead.

    status() is sampled after each block on the producer side; progress(*status) is then called
    on the consumer's side, so progress callbacks stay on the caller's thread."""

    def __init__(self, read: Callable[[int], bytes], *, status: Callable[[], tuple] | None = None,
                 progress: Callable | None = None, depth: int = DEPTH):
        self._read, self._status, self._progress = read, status, progress
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="vtm-registry-prefetch", daemon=True)
        self._thread.start()

    def _offer(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._read(CHUNK)
                state = self._status() if self._status else None
                if not self._offer((chunk, state)) or not chunk:
                    return
        except BaseException as exc:  # handed to the consumer
            self._offer((exc, None))

    def read(self, n: int = CHUNK) -> bytes:
        """The next chunk the producer made (b"" at the end); re-raises its error. Reports its
        progress state, if any, to the progress callback."""
        if self._finished:
            return b""
        chunk, state = self._queue.get()
        if isinstance(chunk, BaseException):
            self._finished = True
            raise chunk
        if state is not None and self._progress:
            self._progress(*state)
        if not chunk:
            self._finished = True
            self._thread.join()
        return chunk

    def close(self) -> None:
        """Stop the producer and wait (at most 5 s) for its thread; safe after the end."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(5)
