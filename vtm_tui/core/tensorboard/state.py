"""Where an import stands, recorded in MLflow itself as run tags (see importer.py), and the
in-memory records of the runs, event files and batches of one import.

A Position is (byte offset of a TFRecord in an event file, index of a point in it): every point
before a file's committed position is in MLflow.
"""
from __future__ import annotations

import hashlib
import re
from collections import deque
from pathlib import Path

from vtm_tui.core.tensorboard.report import RunResult

TAG_SOURCE = "vtm.tb_import.source"
TAG_SOURCE_ID = "vtm.tb_import.source_id"
TAG_PARENT_OF = "vtm.tb_import.parent_of"
TAG_PARENT_ID = "vtm.tb_import.parent_id"
TAG_FLATTEN = "vtm.tb_import.flatten_tags"
FILE_TAG = "vtm.tb_import.file."
SLOT_TAG = "vtm.tb_import.slot."
_SLOT_VALUE = re.compile(r"^([0-9a-f]+):(\d+)\.(\d+)-(\d+)\.(\d+)$")

Position = tuple[int, int]  # (byte offset of a record, index of a point in it)


def digest(*parts) -> str:
    """sha1 hex of the parts (bytes, or anything str() spells), NUL-separated: stable ids for
    sources and files across machines."""
    sha = hashlib.sha1()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else str(part).encode())
        sha.update(b"\0")
    return sha.hexdigest()


def slots_in(tags: dict[str, str]) -> dict[int, tuple[str, Position, Position]]:
    """The batch slots a run's tags record: slot number -> (file id, start, end) of the batch
    that was in flight in it. Malformed slot tags are ignored."""
    found = {}
    for key, value in tags.items():
        if key.startswith(SLOT_TAG) and key[len(SLOT_TAG):].isdigit():
            match = _SLOT_VALUE.match(value)
            if match:
                fid, a, b, c, d = match.groups()
                found[int(key[len(SLOT_TAG):])] = (fid, (int(a), int(b)), (int(c), int(d)))
    return found


class Batch:
    """Points of one event file sent in one log_batch: [start, end) in positions, the slot that
    records them; `metrics` is the point list until sent, then its count."""
    __slots__ = ("file", "metrics", "start", "end", "slot", "done")  # metrics: their count once sent

    def __init__(self, file, metrics, start, end, slot):
        self.file, self.metrics, self.start, self.end, self.slot = file, metrics, start, end, slot
        self.done = False


class EventFile:
    """One event file of a run: its id, the position MLflow has (written), the position every
    point before which is committed, and its batches in dispatch order."""

    def __init__(self, path: Path, rel: str, fid: str, base: Position):
        self.path, self.rel, self.fid = path, rel, fid
        self.written = base    # the position in MLflow
        self.committed = base  # every point before it is committed
        self.pending: deque[Batch] = deque()  # dispatch order

    def advance(self) -> None:
        """Move `committed` past the batches that are done, in order."""
        while self.pending and self.pending[0].done:
            self.committed = self.pending.popleft().end


class ImportRun:
    """An MLflow run being imported into: its result line, tags and params as MLflow has them,
    status and end time (ms), and the latest wall time seen in its points (ms)."""

    def __init__(self, result: RunResult, tags: dict, params: dict, status: str, end_time):
        self.result, self.tags, self.params = result, tags, params
        self.status, self.end_time = status, end_time
        self.max_wall_ms = 0

    @property
    def id(self) -> str:
        """The MLflow run id."""
        return self.result.run_id
