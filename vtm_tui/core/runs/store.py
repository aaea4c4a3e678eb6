"""The run store: one SQLite database (WAL) in VTM_HOME shared by supervisors, CLIs and TUIs.

Every writer opens its own short connection; WAL lets readers watch while a supervisor writes.
Each run's record is mirrored to its folder's run.json, so a store that goes missing or gets
damaged is rebuilt from the folders (core/runs/recovery.py) on the next use, by whichever
process meets it first; a full disk or an I/O error is a StoreError naming the file, never a
bare sqlite3 traceback.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from vtm_tui.core.runs import folders, recovery
from vtm_tui.core.runs.records import (
    ACTIVE,
    COLUMNS,
    FINISHED,
    JSON_COLUMNS,
    SCHEMA,
    STATUSES,
    RunNotFound,
    RunRecord,
    StoreError,
    StoreFull,
    add_missing_columns,
    classify,
    record_row,
    row_record,
    store_error,
)

__all__ = ["ACTIVE", "FINISHED", "STATUSES", "RunNotFound", "RunRecord", "RunStore", "StoreError", "StoreFull"]

T = TypeVar("T")


def _rollback(db: sqlite3.Connection) -> None:
    try:  # SQLite may have rolled back itself (a full disk does that)
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class RunStore:
    """The run store: one SQLite database (WAL mode, a 30 s busy timeout) that supervisors,
    followers, CLIs and TUIs share; every call opens its own short connection, so any process or
    thread may use it. runs_dir: the run folders (default: `runs` next to the database).

    A missing or damaged database is rebuilt on first contact (notices: what this object's
    recoveries said); StoreFull / StoreError (exit code 1) for a full disk, an I/O error or a lock
    held too long."""

    def __init__(self, path: Path, runs_dir: Path | None = None):
        self.path = Path(path).absolute()
        self.runs_dir = Path(runs_dir) if runs_dir else self.path.parent / "runs"
        self.notices: list[str] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent} for the run store: {exc.strerror or exc}") from None
        self._run(lambda db: (db.executescript(SCHEMA), add_missing_columns(db)))

    # -- connections ----------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise sqlite3.OperationalError("unable to open database file")
        db = sqlite3.connect(self.path.as_uri() + "?mode=rw", uri=True, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header: damage shows here
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self) -> None:
        try:
            notice = recovery.recover(self.path, self.runs_dir, self.path.parent / "serving")
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        except OSError as exc:
            raise StoreError(f"the run store {self.path} is missing or damaged and could not be rebuilt: "
                             f"{exc.strerror or exc}") from None
        if notice:
            self.notices.append(notice)

    def _checked(self) -> sqlite3.Connection:
        """An open connection, after repairing a missing or damaged store."""
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if classify(exc) not in ("missing", "damaged"):
                raise store_error(self.path, exc) from None
        self._recover()
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """work(connection) on a fresh connection; a store found missing or damaged midway is
        rebuilt and the work done once more; other SQLite failures become StoreErrors."""
        for attempt in (1, 2):
            db = self._checked()
            try:
                return work(db)
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or classify(exc) not in ("missing", "damaged"):
                    raise store_error(self.path, exc) from None
            finally:
                db.close()
            self._recover()
        raise AssertionError("not reached")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection (autocommit, rows as sqlite3.Row), closed on exit; the store is
        repaired first when missing or damaged; SQLite failures inside become StoreErrors."""
        db = self._checked()
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        finally:
            db.close()

    def generation(self) -> tuple[int, int] | None:
        """(device, inode) of the database file: it changes when the store is recreated."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def take_notices(self) -> list[str]:
        """Notices about repairs of this store (by any process) not shown yet, oldest first; they
        count as shown once returned."""
        def work(db):
            rows = db.execute("SELECT id, text FROM notices WHERE shown=0 ORDER BY id").fetchall()
            if rows:
                db.execute(f"UPDATE notices SET shown=1 WHERE id IN ({','.join('?' * len(rows))})",
                           [row["id"] for row in rows])
            return [row["text"] for row in rows]
        shown = self._run(work)
        self.notices.clear()
        return shown

    # -- runs -----------------------------------------------------------------------------------

    def create(self, *, task: str, argv: list[str], env: dict[str, str], field_values: dict,
               cwd: str, runs_dir: Path | None = None, engine: str = "local", gpus: str | None = None,
               engine_options: dict | None = None, gpu_request: str | None = None,
               priority: int = 0) -> RunRecord:
        """Record a new queued run and make its folder <runs_dir>/<id> (log: output.log there,
        run.json); gpu_request / priority: what it waits for in the GPU queue (core/runs/gpu_queue.py).
        An id whose folder already exists is never used: the sequence moves past the
        highest folder instead. StoreFull when the disk is full."""
        runs_dir = Path(runs_dir or self.runs_dir)

        def work(db):
            for _ in range(3):
                db.execute("BEGIN IMMEDIATE")
                try:
                    run_id = db.execute(
                        "INSERT INTO runs (task, engine, argv, env, field_values, gpus, cwd, created_at,"
                        " engine_options, gpu_request, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (task, engine, json.dumps(argv), json.dumps(env), json.dumps(field_values),
                         gpus, cwd, time.time(), json.dumps(engine_options or {}), gpu_request,
                         int(priority))).lastrowid
                    run_dir = runs_dir / str(run_id)
                    run_dir.mkdir(parents=True, exist_ok=False)
                    db.execute("UPDATE runs SET log_path=? WHERE id=?", (str(run_dir / folders.LOG_NAME), run_id))
                    db.execute("COMMIT")
                    return run_id
                except FileExistsError:  # a folder the store does not know: never reuse it
                    _rollback(db)
                    recovery.reserve_ids(db, "runs", folders.highest_id(runs_dir))
                except OSError as exc:
                    _rollback(db)
                    raise StoreFull(f"cannot create the run folder {runs_dir}: {exc.strerror or exc}") from None
                except BaseException:
                    _rollback(db)
                    raise
            raise StoreError(f"no free run id in {runs_dir}")

        run = self.get(self._run(work))
        self.mirror(run)
        return run

    def get(self, run_id: int | str) -> RunRecord:
        """The record of run `run_id` (an int or its text); RunNotFound otherwise."""
        try:
            key = int(run_id)
        except (TypeError, ValueError):
            raise RunNotFound(run_id) from None
        row = self._run(lambda db: db.execute("SELECT * FROM runs WHERE id=?", (key,)).fetchone())
        if row is None:
            raise RunNotFound(run_id)
        return row_record(row)

    def list(self, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, at most `limit` (None: all)."""
        query = "SELECT * FROM runs ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [row_record(row) for row in self._run(lambda db: db.execute(query).fetchall())]

    def active(self) -> list[RunRecord]:
        """The queued and running runs."""
        query = f"SELECT * FROM runs WHERE status IN ({','.join('?' * len(ACTIVE))})"
        return [row_record(row) for row in self._run(lambda db: db.execute(query, ACTIVE).fetchall())]

    def update(self, run_id: int, **values) -> bool:
        """Set columns of a run (JSON columns serialized; no check of its status) and mirror the
        record to its run.json; False when the store has no such run (it was rebuilt without it)."""
        for key in JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key])
        columns = ", ".join(f"{key}=?" for key in values)
        changed = self._run(lambda db: db.execute(
            f"UPDATE runs SET {columns} WHERE id=?", (*values.values(), run_id)).rowcount)
        if changed:
            self.mirror(self.get(run_id))
        return bool(changed)

    def finish(self, run_id: int, status: str, **values) -> bool:
        """Move an active run to a final status; False if it had already finished (first writer wins)."""
        assert status in FINISHED, status
        for key in JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key])
        values.setdefault("ended_at", time.time())
        columns = ", ".join(f"{key}=?" for key in ("status", *values))
        done = self._run(lambda db: db.execute(
            f"UPDATE runs SET {columns} WHERE id=? AND status IN ('queued', 'running')",
            (status, *values.values(), run_id)).rowcount == 1)
        if done:
            self.mirror(self.get(run_id))
        return done

    def restore(self, record: RunRecord, points: dict[float, dict]) -> None:
        """Put a run back with its id, as `record` and its chart points say (a supervisor whose
        store was rebuilt without its run records into the new store)."""
        row = record_row(record.__dict__)

        def work(db):
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                       [row[key] for key in COLUMNS])
            db.executemany("INSERT OR REPLACE INTO run_points (run_id, epoch, data) VALUES (?, ?, ?)",
                           [(record.id, epoch, json.dumps(data)) for epoch, data in points.items()])
            recovery.reserve_ids(db, "runs", record.id)
            db.execute("COMMIT")
        self._run(work)
        self.mirror(record)

    def mirror(self, run: RunRecord) -> bool:
        """Write the run's record to its folder's run.json (what a rebuild reads); False when the
        disk refused."""
        return folders.write_record(run.run_dir, dict(run.__dict__)) if run.log_path else False

    def claim_devices(self, run_id: int, devices: tuple[int, ...]) -> bool:
        """Move a queued run that nobody cancelled to running on `devices` (its gpus become
        '0,2'); False when it is no longer queued or a cancel was asked for. The GPU queue calls
        it under its lock (core/runs/gpu_queue.py), so two runs never claim one device."""
        changed = self._run(lambda db: db.execute(
            "UPDATE runs SET status='running', gpus=?, started_at=? WHERE id=? AND status='queued'"
            " AND cancel_requested=0", (",".join(map(str, devices)), time.time(), run_id)).rowcount)
        if changed:
            self.mirror(self.get(run_id))
        return bool(changed)

    def request_cancel(self, run_id: int) -> None:
        """Flag the run for cancelling: its supervisor or follower acts on it."""
        self.update(run_id, cancel_requested=1)

    def save_progress(self, run_id: int, latest: dict, points: dict[float, dict]) -> bool:
        """Latest progress record plus one chart point per epoch (bounded by epochs, not lines);
        False when the store has no such run."""
        def work(db):
            db.execute("BEGIN")
            try:
                found = db.execute("UPDATE runs SET progress=? WHERE id=?", (json.dumps(latest), run_id)).rowcount
                db.executemany(
                    "INSERT OR REPLACE INTO run_points (run_id, epoch, data) VALUES (?, ?, ?)",
                    [(run_id, epoch, json.dumps(data)) for epoch, data in points.items()] if found else [])
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            return bool(found)
        return self._run(work)

    def points(self, run_id: int) -> list[dict]:
        """The run's chart points, one merged progress object per epoch, by epoch."""
        rows = self._run(lambda db: db.execute(
            "SELECT data FROM run_points WHERE run_id=? ORDER BY epoch", (run_id,)).fetchall())
        return [json.loads(row["data"]) for row in rows]

    def save_system(self, run_id: int, samples: list[tuple[float, dict]]) -> None:
        """Save system-metric samples of a run: (time in seconds since the epoch, {MLflow system
        metric name: value}) each (core/gpus/sampling.py)."""
        self._run(lambda db: db.executemany(
            "INSERT OR REPLACE INTO run_system (run_id, time, data) VALUES (?, ?, ?)",
            [(run_id, at, json.dumps(values)) for at, values in samples]))

    def system_samples(self, run_id: int, limit: int | None = None) -> list[dict]:
        """The run's system-metric samples, oldest first, the last `limit` of them (None: all);
        each {"time": seconds since the epoch, name: value, ...}."""
        query = "SELECT time, data FROM run_system WHERE run_id=? ORDER BY time DESC"
        rows = self._run(lambda db: db.execute(query + (f" LIMIT {int(limit)}" if limit else ""),
                                               (run_id,)).fetchall())
        return [{"time": row["time"], **json.loads(row["data"])} for row in reversed(rows)]
