"""The MLflow spool: what MLflow did not take while it was unreachable, kept in the run's folder
until it can be delivered (core/tracking/delivery.py; `vtm mlflow sync`, `vtm mlflow up`).

Layout of `<run folder>/mlflow-spool/`:

    records.jsonl    append-only, one JSON object per line (a torn last line is not read)
    delivered.json   how many lines are delivered, the MLflow run id and logged model ids
                     (replaced atomically after each delivered step)
    models/<name>/   MLflow model directories saved while the server was away
    .lock            held (fcntl) while delivering: one deliverer at a time

Records (`kind`): `run` (tracking_uri, experiment_name, run_name, tags, start_time in ms,
mlflow_run_id when the run exists, tracking on/off, spool_id), `params`, `tags`, `metrics`
(step, timestamp in ms, metrics: {key: value}), `artifact` (path, artifact_path), `model`
(path of a saved model directory, name, step), `end` (status FINISHED/FAILED/KILLED,
end_time in ms, only_if_running). One spool may hold several MLflow runs (a script that runs
two loggers, the supervisor closing a script's own run): every record carries the `spool_id`
of the `run` record it belongs to (one without belongs to the latest `run` record before it).
"""
from __future__ import annotations

import fcntl
import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SPOOL_DIR = "mlflow-spool"
RECORDS = "records.jsonl"
STATE = "delivered.json"


@dataclass
class SpoolState:
    """How far a spool is delivered: lines (count of records.jsonl lines delivered), and the
    MLflow run id each `run` record's records go to (runs: {spool_id: run id})."""
    lines: int = 0
    runs: dict = field(default_factory=dict)


class Spool:
    """One run's spool directory (see the module docstring). Appends are flushed at once; reads
    see only complete lines. OSError from the disk propagates (a full disk spools nothing)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @classmethod
    def of_run(cls, run_dir: str | os.PathLike) -> "Spool":
        """The spool of a run folder (<run_dir>/mlflow-spool)."""
        return cls(Path(run_dir) / SPOOL_DIR)

    @property
    def records_path(self) -> Path:
        """<spool>/records.jsonl."""
        return self.directory / RECORDS

    def exists(self) -> bool:
        """True once anything was spooled."""
        return self.records_path.exists()

    def append(self, record: dict) -> None:
        """Add one record (a JSON object with a `kind`) as one line, flushed to disk."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n").encode()
        fd = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(28, "short write to the MLflow spool (disk full?)", str(self.records_path))
            os.fsync(fd)
        finally:
            os.close(fd)

    def start(self, *, tracking_uri: str, experiment_name: str | None, run_name: str | None,
              tags: dict | None = None, start_time: int | None = None, mlflow_run_id: str | None = None,
              tracking: str = "on") -> str:
        """Append a `run` record (one MLflow run's records follow it); returns its new spool_id,
        which the records of that run carry."""
        spool_id = uuid.uuid4().hex
        self.append({"kind": "run", "spool_id": spool_id, "tracking_uri": tracking_uri,
                     "experiment_name": experiment_name, "run_name": run_name, "tags": tags or {},
                     "start_time": start_time, "mlflow_run_id": mlflow_run_id, "tracking": tracking})
        return spool_id

    def records(self) -> list[dict]:
        """Every complete record, in order ([] when there is no spool)."""
        try:
            data = self.records_path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # the part after the last newline is an unfinished write
        found = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"kind": "unreadable", "text": line[:200].decode("utf-8", "replace")}
            found.append(record if isinstance(record, dict) else {"kind": "unreadable"})
        return found

    def state(self) -> SpoolState:
        """What has been delivered so far."""
        try:
            data = json.loads((self.directory / STATE).read_text())
        except (OSError, ValueError):
            return SpoolState()
        return SpoolState(int(data.get("lines") or 0), dict(data.get("runs") or {}))

    def save_state(self, state: SpoolState) -> None:
        """Replace delivered.json atomically with `state`."""
        path = self.directory / STATE
        temporary = path.with_name(f".{STATE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"lines": state.lines, "runs": state.runs}))
        temporary.replace(path)

    def pending(self) -> int:
        """How many records wait for delivery (0 without a spool)."""
        if not self.exists():
            return 0
        return max(0, len(self.records()) - self.state().lines)

    def header(self) -> dict | None:
        """The first `run` record, or None."""
        return next((r for r in self.records() if r.get("kind") == "run"), None)

    def header_for(self, mlflow_run_id: str) -> dict | None:
        """The `run` record of that MLflow run (given when it was written, or found by delivery)."""
        runs = self.state().runs
        return next((r for r in self.records() if r.get("kind") == "run" and mlflow_run_id in
                     (r.get("mlflow_run_id"), runs.get(r.get("spool_id")))), None)

    @contextmanager
    def delivering(self) -> Iterator[bool]:
        """Hold the spool's delivery lock if nobody else does; yields whether it is held."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def spools_under(runs_dir: str | os.PathLike) -> list[tuple[int, Spool]]:
    """(run id, spool) of every run folder under runs_dir that has a spool, by run id."""
    found = []
    for folder in Path(runs_dir).glob(f"*/{SPOOL_DIR}"):
        if folder.parent.name.isdigit() and (folder / RECORDS).exists():
            found.append((int(folder.parent.name), Spool(folder)))
    return sorted(found, key=lambda item: item[0])
