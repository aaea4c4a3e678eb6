"""The run store defends itself: a missing store is recreated and a damaged one moved aside,
and either way the runs are rebuilt from their folders, with ids that continue past the
highest folder (no id or folder is ever reused).

Recovery runs under an exclusive lock (`runs.db.lock`, fcntl) and looks again once it holds it,
so when several processes meet the same damage only the first one acts. The new database is
built under a temporary name and renamed into place: nobody sees a half-rebuilt store. What was
done is kept as a notice in the new store, which the CLI and the TUI show once, in one line.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vtm_tui.core.runs.folders import LOG_NAME, folder_ids, highest_id, read_record
from vtm_tui.core.runs.progress import ProgressLine, parse_line
from vtm_tui.core.runs.records import COLUMNS, SCHEMA, classify, record_row

SIDE_FILES = ("-wal", "-shm")
LOG_SCAN_LIMIT = 256 << 20  # bytes of a log read for its progress lines when rebuilding


@contextmanager
def recovery_lock(db_path: Path) -> Iterator[None]:
    """Hold the store's recovery lock (<db>.lock) exclusively."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def problem(db_path: Path) -> tuple[str, str] | None:
    """What is wrong with the store file, as (kind, detail): ("missing", ...) when there is no
    file or no `runs` table, ("damaged", SQLite's words) when it is not a readable database; None
    when it is fine (or fails otherwise, e.g. a full disk: not ours to repair)."""
    if not db_path.exists():
        return "missing", "no such file"
    try:
        db = sqlite3.connect(db_path.absolute().as_uri() + "?mode=rw", uri=True, timeout=30)
        try:
            found = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='runs'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        kind = classify(exc)
        return (kind, str(exc)) if kind in ("missing", "damaged") else None
    return None if found else ("missing", "no runs table")


def _aside_name(db_path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = db_path.with_name(f"{db_path.name}.corrupt-{stamp}"), 1
    while target.exists():
        n += 1
        target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}.{n}")
    return target


def recover(db_path: Path, runs_dir: Path, serving_dir: Path | None = None) -> str | None:
    """Repair the store at db_path if it is still missing or damaged once the lock is held:
    move a damaged file (and its -wal/-shm) aside as `runs.db.corrupt-TIMESTAMP`, build a new
    store from the run folders under runs_dir, and put it in place. Returns the one-line notice
    (also saved in the new store), or None when there was nothing to do or nothing to say (a
    first start: no store and no run folders)."""
    with recovery_lock(db_path):
        found = problem(db_path)
        if found is None:
            return None
        kind, detail = found
        moved = None
        if kind == "damaged":
            moved = _aside_name(db_path)
            db_path.replace(moved)
            for suffix in SIDE_FILES:
                side = db_path.with_name(db_path.name + suffix)
                if side.exists():
                    side.replace(moved.with_name(moved.name + suffix))
        elif db_path.exists():
            return _add_schema(db_path, runs_dir, serving_dir)
        else:
            for suffix in SIDE_FILES:  # a deleted store's journal belongs to no database now
                db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        fresh = db_path.with_name(db_path.name + ".new")
        fresh.unlink(missing_ok=True)
        db = sqlite3.connect(fresh, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            rebuilt, skipped = rebuild(db, runs_dir, serving_dir)
            notice = _notice(db_path, kind, detail, moved, rebuilt, skipped, runs_dir)
            if notice:
                db.execute("INSERT INTO notices (at, text) VALUES (?, ?)", (time.time(), notice))
        finally:
            db.close()
        fresh.replace(db_path)
        _wal(db_path)
        return notice


def _add_schema(db_path: Path, runs_dir: Path, serving_dir: Path | None) -> str | None:
    """A database without the runs table (an empty file, say): add the schema in place."""
    db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        rebuilt, skipped = rebuild(db, runs_dir, serving_dir)
        notice = _notice(db_path, "missing", "no runs table", None, rebuilt, skipped, runs_dir)
        if notice:
            db.execute("INSERT INTO notices (at, text) VALUES (?, ?)", (time.time(), notice))
        return notice
    finally:
        db.close()


def _wal(db_path: Path) -> None:
    db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


def _notice(db_path, kind, detail, moved, rebuilt, skipped, runs_dir) -> str | None:
    if kind == "missing" and rebuilt == skipped == 0:
        return None  # a first start, not a repair
    what = (f"the run store was damaged ({detail}): moved aside as {moved.name}" if moved
            else "the run store was missing: recreated")
    text = f"{what}; rebuilt {rebuilt} run(s) from their folders"
    if skipped:
        text += f" ({skipped} folder(s) without run.json skipped)"
    return text + f"; new runs start after id {highest_id(runs_dir)} ({db_path})"


def rebuild(db: sqlite3.Connection, runs_dir: Path, serving_dir: Path | None = None) -> tuple[int, int]:
    """Insert every run folder's run.json as a run (its progress and chart points re-read from
    its output.log) and move the id sequences past the highest run folder and, given
    serving_dir, the highest model server log (<id>.log). Returns (rebuilt, skipped)."""
    rebuilt = skipped = 0
    for run_id in folder_ids(runs_dir):
        folder = Path(runs_dir) / str(run_id)
        data = read_record(folder)
        if data is None or data["id"] != run_id:
            skipped += 1
            continue
        latest, points = progress_from_log(folder / LOG_NAME)
        row = record_row({**data, "progress": latest or data.get("progress") or {}})
        db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   [row[key] for key in COLUMNS])
        db.executemany("INSERT OR REPLACE INTO run_points (run_id, epoch, data) VALUES (?, ?, ?)",
                       [(run_id, epoch, json.dumps(point)) for epoch, point in points.items()])
        rebuilt += 1
    reserve_ids(db, "runs", highest_id(runs_dir))
    if serving_dir is not None:
        logs = [int(p.stem) for p in Path(serving_dir).glob("*.log") if p.stem.isdigit()]
        reserve_ids(db, "servers", max(logs, default=0))
    return rebuilt, skipped


def reserve_ids(db: sqlite3.Connection, table: str, highest: int) -> None:
    """Make the AUTOINCREMENT sequence of `table` continue after `highest` (sqlite_sequence)."""
    if highest <= 0:
        return
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (table,)).fetchone()
    if row is None:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest))
    elif row[0] < highest:
        db.execute("UPDATE sqlite_sequence SET seq=? WHERE name=?", (highest, table))


def progress_from_log(path: Path) -> tuple[dict, dict[float, dict]]:
    """The latest progress object and one merged point per epoch, from the VTM_PROGRESS lines of
    a run's log (the last LOG_SCAN_LIMIT bytes of it); ({}, {}) without a log."""
    latest: dict = {}
    points: dict[float, dict] = {}
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            handle.seek(max(0, size - LOG_SCAN_LIMIT))
            pending = b""
            while chunk := handle.read(1 << 20):
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                complete, pending = data[:cut], data[cut:]
                if b"VTM_PROGRESS::" not in complete:
                    continue
                for line in complete.split(b"\n"):
                    parsed = parse_line(line) if b"VTM_PROGRESS::" in line else None
                    if isinstance(parsed, ProgressLine):
                        latest.update(parsed.data)
                        epoch = parsed.data.get("epoch")
                        if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
                            points.setdefault(float(epoch), {}).update(parsed.data)
    except OSError:
        pass
    return latest, points
