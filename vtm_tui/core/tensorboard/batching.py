"""Sending an import's points: batches of up to 999 points (with their slot tag: MLflow's 1000
entities per log_batch) posted by a few threads, and the file positions they commit.

A batch travels with a slot tag `vtm.tb_import.slot.<n>` = `<fid>:<start>-<end>`, so MLflow
records a batch and where it came from in one request; a file's position tag moves past a batch
only once every batch before it is committed, and only then is its slot reused.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable

from vtm_tui.core.tensorboard.mlflow_calls import retry
from vtm_tui.core.tensorboard.report import ImportReport, Problem
from vtm_tui.core.tensorboard.state import FILE_TAG, SLOT_TAG, Batch, EventFile, ImportRun, Position, slots_in
from vtm_tui.settings import Settings

MAX_BATCH_METRICS = 999        # + the slot tag = MLflow's 1000 entities per log_batch
COMMIT_INTERVAL = 2.0          # seconds between writes of file positions while importing
PROGRESS_INTERVAL = 0.2


class Batching:
    """The sending side of one import: `dispatch` batches, `drain` them, `commit` positions.

    client: an MlflowClient (for position tags); sender: a mlflow_calls sender; workers: posts
    in flight; on_progress(points done, estimated total) is called at most every 0.2 s; setting
    `cancel` stops sending (the positions stay before what was not committed)."""

    def __init__(self, client, sender, workers: int, report: ImportReport,
                 on_progress: Callable[[int, int], None] | None, cancel: threading.Event | None):
        self.client, self.sender, self.workers, self.report = client, sender, workers, report
        self.on_progress, self.cancel = on_progress, cancel
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="tb-import")
        self.inflight: dict[Future, Batch] = {}
        self.stopped = False
        self.bytes_total = 0
        self.bytes_read = 0
        self.points_parsed = 0
        self.points_done = 0
        self._last_progress = 0.0
        self._last_commit = time.monotonic()
        hooks = Settings.from_environ()  # read now: a test sets them around one import
        self._delay, self._exit_after = hooks.tb_import_batch_delay, hooks.tb_import_exit_after
        self._sent = 0
        self._sent_lock = threading.Lock()

    def begin_run(self, run: ImportRun) -> None:
        """Send into `run` from now on; the slots its tags hold stay reserved until the files they
        cover move past them (a batch in flight when an earlier import died may have landed)."""
        self.run = run
        self._last_commit = time.monotonic()
        self.files: list[EventFile] = []
        self.slots_used: dict[int, tuple[str, Position]] = {}
        self.old_ranges: dict[str, list[tuple[Position, Position]]] = {}
        self.old_slots: set[int] = set()
        for slot, (fid, start, end) in slots_in(run.tags).items():
            self.slots_used[slot] = (fid, end)
            self.old_slots.add(slot)
            self.old_ranges.setdefault(fid, []).append((start, end))
        self.slots_reserved = len(self.old_slots)

    def problem(self, file, offset, message: str) -> None:
        """Add a problem to the report (file, byte offset or None, message)."""
        self.report.problems.append(Problem(str(file), offset, message))

    def progress(self, force: bool = False) -> None:
        """Tell on_progress how far the import is (at most every 0.2 s unless forced)."""
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        estimate = self.points_parsed
        if self.bytes_read and self.bytes_total > self.bytes_read:
            estimate = int(self.points_parsed * self.bytes_total / self.bytes_read)
        self.on_progress(self.points_done, max(estimate, self.points_done))

    def cancelled(self) -> bool:
        """True once the import should stop: cancelled by the caller, or a batch failed."""
        if self.cancel is not None and self.cancel.is_set():
            self.report.cancelled = True
            self.stopped = True
        return self.stopped

    # -- sending
    def _post(self, payload) -> None:
        retry(self.sender.post, payload)
        if self._delay:
            time.sleep(self._delay)
        if self._exit_after:
            with self._sent_lock:
                self._sent += 1
                if self._sent >= self._exit_after:
                    os._exit(75)

    def _collect(self, block: bool) -> None:
        if not self.inflight:
            return
        done, _ = wait(list(self.inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self.inflight.pop(future)
            error = future.exception()
            if error is not None:
                if not self.stopped or not self.report.problems:
                    self.problem(batch.file.path, batch.start[0],
                                 f"MLflow did not take a batch of {batch.metrics} points: {error}")
                self.stopped = True
                continue
            batch.done = True
            count = batch.metrics
            self.points_done += count
            self.run.result.points += count
            self.report.points_imported += count
            batch.file.advance()

    def dispatch(self, file: EventFile, metrics: list, start: Position, end: Position) -> None:
        """Send the points [start, end) of a file (key, value, timestamp ms, step) as one batch."""
        while len(self.inflight) >= self.workers:
            self._collect(block=True)
        if self.stopped:  # failed or cancelled: send nothing more; positions stay before this
            return
        if len(self.slots_used) >= 2 * self.workers + self.slots_reserved:
            self._collect(block=False)
            self.commit()
        slot = 0
        while slot in self.slots_used:
            slot += 1
        batch = Batch(file, metrics, start, end, slot)
        self.slots_used[slot] = (file.fid, end)
        file.pending.append(batch)
        tag = (f"{SLOT_TAG}{slot}", f"{file.fid}:{start[0]}.{start[1]}-{end[0]}.{end[1]}")
        payload = self.sender.prepare(self.run.id, metrics, [tag])
        batch.metrics = len(metrics)  # the payload holds the points now
        self.inflight[self.pool.submit(self._post, payload)] = batch
        if time.monotonic() - self._last_commit > COMMIT_INTERVAL:
            self._collect(block=False)
            self.commit()

    def drain(self) -> None:
        """Wait for every batch in flight."""
        while self.inflight:
            self._collect(block=True)
            self.progress()

    def commit(self) -> None:
        """Write the positions that moved, then free the slots they cover."""
        self._last_commit = time.monotonic()
        for file in self.files:
            file.advance()
            if file.committed > file.written:
                offset, index = file.committed
                retry(self.client.set_tag, self.run.id, FILE_TAG + file.fid, json.dumps(
                    {"file": file.rel, "offset": offset, "index": index}, separators=(",", ":")))
                file.written = file.committed
        written = {file.fid: file.written for file in self.files}
        for slot, (fid, end) in list(self.slots_used.items()):
            if fid in written and written[fid] >= end:
                del self.slots_used[slot]
                if slot in self.old_slots:
                    self.old_slots.discard(slot)
                    self.slots_reserved -= 1
