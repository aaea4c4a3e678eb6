"""The run store: one SQLite database (WAL) in VTM_HOME shared by supervisors, CLIs and TUIs.

Every writer opens its own short connection; WAL lets readers watch while a supervisor writes.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vtm_tui.errors import UserError

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "lost")
STATUSES = ACTIVE + FINISHED

_SCHEMA = """
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
    node TEXT
);
CREATE TABLE IF NOT EXISTS run_points (
    run_id INTEGER NOT NULL,
    epoch REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
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

    @property
    def active(self) -> bool:
        """True while the run is queued or running."""
        return self.status in ACTIVE

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


_JSON_COLUMNS = ("argv", "env", "field_values", "progress", "engine_options")


def _record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    for key in _JSON_COLUMNS:
        data[key] = json.loads(data[key])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return RunRecord(**data)


class RunNotFound(UserError, LookupError):
    """No run with that id (a UserError, exit code 2)."""
    def __init__(self, run_id):
        super().__init__(f"no run with id {run_id!r} (see `vtm runs`)")


class RunStore:
    """The run store: one SQLite database (WAL mode, a 30 s busy timeout) that supervisors,
    followers, CLIs and TUIs share; every call opens its own short connection, so any process or
    thread may use it."""
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection (autocommit, rows as sqlite3.Row), closed on exit."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def create(self, *, task: str, argv: list[str], env: dict[str, str], field_values: dict,
               cwd: str, runs_dir: Path, engine: str = "local", gpus: str | None = None,
               engine_options: dict | None = None) -> RunRecord:
        """Record a new queued run and make its folder <runs_dir>/<id> (log: output.log there)."""
        with self.connect() as db:
            cur = db.execute(
                "INSERT INTO runs (task, engine, argv, env, field_values, gpus, cwd, created_at,"
                " engine_options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task, engine, json.dumps(argv), json.dumps(env), json.dumps(field_values),
                 gpus, cwd, time.time(), json.dumps(engine_options or {})),
            )
            run_id = cur.lastrowid
            run_dir = Path(runs_dir) / str(run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            db.execute("UPDATE runs SET log_path=? WHERE id=?", (str(run_dir / "output.log"), run_id))
        return self.get(run_id)

    def get(self, run_id: int | str) -> RunRecord:
        """The record of run `run_id` (an int or its text); RunNotFound otherwise."""
        try:
            key = int(run_id)
        except (TypeError, ValueError):
            raise RunNotFound(run_id) from None
        with self.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (key,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return _record(row)

    def list(self, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, at most `limit` (None: all)."""
        query = "SELECT * FROM runs ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self.connect() as db:
            return [_record(row) for row in db.execute(query)]

    def active(self) -> list[RunRecord]:
        """The queued and running runs."""
        with self.connect() as db:
            rows = db.execute(
                f"SELECT * FROM runs WHERE status IN ({','.join('?' * len(ACTIVE))})", ACTIVE)
            return [_record(row) for row in rows]

    def update(self, run_id: int, **values) -> None:
        """Set columns of a run (JSON columns serialized); no check of its status."""
        for key in _JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key])
        columns = ", ".join(f"{key}=?" for key in values)
        with self.connect() as db:
            db.execute(f"UPDATE runs SET {columns} WHERE id=?", (*values.values(), run_id))

    def finish(self, run_id: int, status: str, **values) -> bool:
        """Move an active run to a final status; False if it had already finished (first writer wins)."""
        assert status in FINISHED, status
        for key in _JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key])
        values.setdefault("ended_at", time.time())
        columns = ", ".join(f"{key}=?" for key in ("status", *values))
        with self.connect() as db:
            cur = db.execute(
                f"UPDATE runs SET {columns} WHERE id=? AND status IN ('queued', 'running')",
                (status, *values.values(), run_id))
            return cur.rowcount == 1

    def request_cancel(self, run_id: int) -> None:
        """Flag the run for cancelling: its supervisor or follower acts on it."""
        self.update(run_id, cancel_requested=1)

    def save_progress(self, run_id: int, latest: dict, points: dict[float, dict]) -> None:
        """Latest progress record plus one chart point per epoch (bounded by epochs, not lines)."""
        with self.connect() as db:
            db.execute("BEGIN")
            db.execute("UPDATE runs SET progress=? WHERE id=?", (json.dumps(latest), run_id))
            db.executemany(
                "INSERT OR REPLACE INTO run_points (run_id, epoch, data) VALUES (?, ?, ?)",
                [(run_id, epoch, json.dumps(data)) for epoch, data in points.items()])
            db.execute("COMMIT")

    def points(self, run_id: int) -> list[dict]:
        """The run's chart points, one merged progress object per epoch, by epoch."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT data FROM run_points WHERE run_id=? ORDER BY epoch", (run_id,)).fetchall()
        return [json.loads(row["data"]) for row in rows]
