"""What the run store holds: the run record, the SQLite schema, and the store's failures as
errors a user can read (a full disk, an I/O error, a store that stays locked)."""
from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from vtm_tui.errors import OperationFailed, UserError

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "lost")
STATUSES = ACTIVE + FINISHED

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    engine TEXT NOT NULL DEFAULT 'local',
    argv TEXT NOT NULL,
    env TEXT NOT NULL DEFAULT '{}',
    field_values TEXT NOT NULL DEFAULT '{}',
    gpus TEXT,
    cwd TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    supervisor_pid INTEGER,
    child_pid INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    progress TEXT NOT NULL DEFAULT '{}',
    mlflow_run_id TEXT,
    log_path TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    engine_options TEXT NOT NULL DEFAULT '{}',
    job_id TEXT,
    job_state TEXT,
    node TEXT,
    gpu_request TEXT,
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS run_points (
    run_id INTEGER NOT NULL,
    epoch REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS run_system (
    run_id INTEGER NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, time)
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    text TEXT NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class RunRecord:
    """One run as the store keeps it. status: queued, running, succeeded, failed, cancelled or
    lost; times are seconds since the epoch; progress: the latest VTM_PROGRESS object; env: the
    variables vtm set for the run (not the whole environment); log_path: its output.log."""
    id: int
    task: str
    engine: str
    argv: list[str]
    env: dict[str, str]
    field_values: dict
    gpus: str | None
    cwd: str
    status: str
    supervisor_pid: int | None
    child_pid: int | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    progress: dict
    mlflow_run_id: str | None
    log_path: str
    cancel_requested: bool
    message: str | None
    engine_options: dict = field(default_factory=dict)  # e.g. the task's runner.slurm settings
    job_id: str | None = None  # engine-side id, state and host (Slurm)
    job_state: str | None = None
    node: str | None = None
    gpu_request: str | None = None  # what a queued run waits for: GpuRequest.to_text(), e.g. count:1
    priority: int = 0  # its place in the GPU queue: higher goes first

    @property
    def active(self) -> bool:
        """True while the run is queued or running."""
        return self.status in ACTIVE

    @property
    def run_dir(self) -> Path:
        """The run's folder (VTM_HOME/runs/<id>): output.log, run.json, mlflow-spool/."""
        return Path(self.log_path).parent

    @property
    def where(self) -> str:
        """local, or the Slurm job id, state and node."""
        if self.engine != "slurm":
            return self.engine
        return " ".join(part for part in ("slurm", self.job_id, self.job_state, self.node) if part)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to now while it runs); None before it started."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_json(self) -> dict:
        """Every field plus "duration": the `vtm runs --json` object of a run."""
        data = dict(self.__dict__)
        data["duration"] = self.duration
        return data


COLUMNS = tuple(f.name for f in fields(RunRecord))
# Columns added after the first release, with their SQL types: a store made before them gets them.
ADDED_COLUMNS = {"gpu_request": "TEXT", "priority": "INTEGER NOT NULL DEFAULT 0"}


def add_missing_columns(db: sqlite3.Connection) -> None:
    """ALTER TABLE runs ADD COLUMN for every ADDED_COLUMNS entry a store made before it lacks."""
    present = {row[1] for row in db.execute("PRAGMA table_info(runs)").fetchall()}
    for name, sql_type in ADDED_COLUMNS.items():
        if name not in present:
            try:
                db.execute(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc).lower():
                    raise
JSON_COLUMNS = ("argv", "env", "field_values", "progress", "engine_options")


def row_record(row: sqlite3.Row) -> RunRecord:
    """A `runs` row as a RunRecord (JSON columns decoded)."""
    data = dict(row)
    for key in JSON_COLUMNS:
        data[key] = json.loads(data[key])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return RunRecord(**data)


def record_row(data: dict) -> dict:
    """A run record's fields (a dict, as run.json holds them) as `runs` column values (JSON
    columns encoded); unknown keys are dropped."""
    row = {key: data.get(key) for key in COLUMNS}
    for key in JSON_COLUMNS:
        row[key] = json.dumps(row[key] if row[key] is not None else ([] if key == "argv" else {}))
    row["cancel_requested"] = int(bool(row["cancel_requested"]))
    row["priority"] = int(row["priority"] or 0)
    return row


class RunNotFound(UserError, LookupError):
    """No run with that id (a UserError, exit code 2)."""
    def __init__(self, run_id):
        super().__init__(f"no run with id {run_id!r} (see `vtm runs`)")


class StoreError(OperationFailed):
    """The run store could not be used (exit code 1); the message names the file and why."""


class StoreFull(StoreError):
    """The run store's disk is full or failed (SQLite's SQLITE_FULL or SQLITE_IOERR)."""


# SQLite result codes by the text Python's sqlite3 gives them (sqlite.org/rescode.html).
_KINDS = {
    "full": ("database or disk is full", "disk i/o error"),
    "damaged": ("file is not a database", "database disk image is malformed", "malformed database schema"),
    "missing": ("unable to open database file", "no such table"),
    "busy": ("database is locked", "database table is locked"),
}


def classify(exc: BaseException) -> str:
    """What an sqlite3 error means for the store: full (disk full or I/O error), damaged (not a
    database, malformed), missing (cannot open, no schema), busy (locked), or other."""
    text = str(exc).lower()
    for kind, fragments in _KINDS.items():
        if any(fragment in text for fragment in fragments):
            return kind
    return "other"


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of `path` (statvfs), or None."""
    try:
        info = os.statvfs(path if path.exists() else path.parent)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def store_error(path: Path, exc: BaseException) -> StoreError:
    """The one-line error for an sqlite3 failure of the store at `path`: a full disk says
    `no space left on device`, an I/O error says so, the rest quote SQLite."""
    kind = classify(exc)
    if kind == "full":
        free = free_bytes(path)
        if (free is not None and free < 1 << 20) or "full" in str(exc).lower():
            return StoreFull(f"no space left on device ({path}): the run store cannot be written; "
                             "free some space and try again")
        return StoreFull(f"disk I/O error on the run store ({path}): {exc}")
    if kind == "busy":
        return StoreError(f"the run store {path} stayed locked for 30 s by another process: {exc}")
    return StoreError(f"the run store {path} failed: {exc}")
