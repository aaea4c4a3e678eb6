"""The supervisor's side of the run store: every write goes through here, and none of them can
end the supervisor (and with it the training).

The Recorder keeps the run's record and all its chart points in memory. A write the store
refuses (full disk, I/O error, lock) is kept and tried again at the next one; a store that was
recreated (another inode) or rebuilt without this run gets the whole record and every point put
back, so the run goes on being recorded in the new store.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from vtm_tui.core.runs.records import JSON_COLUMNS, RunNotFound, RunRecord, StoreError, StoreFull
from vtm_tui.core.runs.store import RunStore

MAX_MISSED_SAMPLES = 3600  # system samples kept while the store refuses (an hour at 1 s)


class Recorder:
    """Writes of one run's supervisor to the store, never raising for the store's sake.

    record: the run as the supervisor knows it (kept current); problem: the last store failure,
    None after a successful write; on_full: called when the disk is full (to free the reserve)."""

    def __init__(self, store: RunStore, record: RunRecord, on_full: Callable[[], None] | None = None):
        self.store, self.record, self.on_full = store, record, on_full
        self.points: dict[float, dict] = {}
        self.problem: str | None = None
        self._pending: dict = {}  # columns a failed write did not set yet
        self._missed_points: dict[float, dict] = {}  # points a failed write did not save yet
        self._missed_samples: list[tuple[float, dict]] = []  # system samples likewise
        self._generation = store.generation()

    def _apply(self, values: dict) -> None:
        for key, value in values.items():
            if key in JSON_COLUMNS and isinstance(value, str):
                value = json.loads(value)
            if key == "cancel_requested":
                value = bool(value)
            setattr(self.record, key, value)

    def _write(self, operation: Callable[[], object]) -> bool:
        try:
            if self.store.generation() != self._generation:
                self._put_back()
            if operation() is False:  # the store does not know the run (rebuilt without it)
                self._put_back()
            self.problem = None
            return True
        except (StoreError, RunNotFound) as exc:
            self.problem = str(exc)
            if isinstance(exc, StoreFull) and self.on_full:
                self.on_full()
            return False

    def _put_back(self) -> None:
        try:
            self.record.cancel_requested |= self.store.get(self.record.id).cancel_requested
        except RunNotFound:
            pass
        self.store.restore(self.record, self.points)
        self._generation = self.store.generation()

    def update(self, run_id: int, **values) -> bool:
        """Set columns of the run (in memory at once, in the store now or at the next write that
        works); False when the store refused for now."""
        self._apply(values)
        self._pending.update(values)
        values = dict(self._pending)
        if self._write(lambda: self.store.update(self.record.id, **values)):
            self._pending.clear()
            return True
        return False

    def save_progress(self, run_id: int, latest: dict, points: dict[float, dict]) -> bool:
        """Save the latest progress and these chart points (all of them are remembered)."""
        self.record.progress = dict(latest)
        for epoch, data in points.items():
            self.points.setdefault(epoch, {}).update(data)
        if self._pending:
            self.update(run_id)
        # These points only (every point goes back with the record when the store was rebuilt);
        # a write that failed is made good by the next one, which carries all points missed.
        missed = self._missed_points
        self._missed_points = {}
        changed = {**missed, **{epoch: self.points[epoch] for epoch in points}}
        if self._write(lambda: self.store.save_progress(self.record.id, latest, changed)):
            return True
        self._missed_points = changed
        return False

    def save_system(self, samples: list[tuple[float, dict]]) -> bool:
        """Save system-metric samples (RunStore.save_system); those a failed write missed go with
        the next one (the last MAX_MISSED_SAMPLES of them)."""
        self._missed_samples = (self._missed_samples + list(samples))[-MAX_MISSED_SAMPLES:]
        missed = self._missed_samples
        if self._write(lambda: self.store.save_system(self.record.id, missed)):
            self._missed_samples = []
            return True
        return False

    def cancel_requested(self) -> bool:
        """Whether a cancel was asked for in the store (what is known so far when it cannot be read)."""
        try:
            if self.store.get(self.record.id).cancel_requested:
                self.record.cancel_requested = True
        except (StoreError, RunNotFound):
            pass
        return self.record.cancel_requested

    def get(self, run_id: int) -> RunRecord:
        """The run as the supervisor knows it (duck-types RunStore.get for finish_run)."""
        return self.record

    def finish(self, run_id: int, status: str, **values) -> bool:
        """Record the final status, trying again for up to `patience` seconds (a full disk may
        clear); True once recorded (or when the run had already finished)."""
        return self.finish_patiently(status, values)

    def finish_patiently(self, status: str, values: dict, patience: float = 3600.0, every: float = 5.0) -> bool:
        """RunStore.finish, retried every `every` seconds for `patience` seconds while the store
        refuses; the first success wins."""
        deadline = time.monotonic() + patience
        values = {**self._pending, **values}
        while True:
            try:
                if self.store.generation() != self._generation:
                    self._put_back()
                if self.store.finish(self.record.id, status, **values):
                    return True
                try:
                    self.store.get(self.record.id)
                    return True  # finished by someone else first (first writer wins)
                except RunNotFound:
                    self._put_back()
                    continue
            except StoreError as exc:
                self.problem = str(exc)
                if isinstance(exc, StoreFull) and self.on_full:
                    self.on_full()
            if time.monotonic() >= deadline:
                return False
            time.sleep(every)
