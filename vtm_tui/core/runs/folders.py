"""Run folders (`VTM_HOME/runs/<id>/`): what each one holds so that a run outlives its store.

A folder holds `output.log` (the script's output), `run.json` (the run's record, written at
launch and rewritten whenever the record changes, atomically: a temporary file renamed over
the old one) and, when MLflow did not take everything, `mlflow-spool/`. The run store can be
rebuilt from these folders (core/runs/recovery.py), and no new run ever gets the id of an
existing folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_NAME = "run.json"
LOG_NAME = "output.log"


def folder_ids(runs_dir: Path) -> list[int]:
    """The ids of the run folders under runs_dir (folders named by a number), ascending."""
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit() and (Path(runs_dir) / name).is_dir())


def highest_id(runs_dir: Path) -> int:
    """The highest run folder id under runs_dir, 0 when there is none."""
    ids = folder_ids(runs_dir)
    return ids[-1] if ids else 0


def write_record(run_dir: Path, data: dict) -> bool:
    """Write `data` (a run record as JSON) to <run_dir>/run.json atomically; False (nothing
    changed) when the disk refuses: the record is in the store anyway."""
    path = Path(run_dir) / RECORD_NAME
    temporary = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, default=str))
        temporary.replace(path)
        return True
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        return False


def read_record(run_dir: Path) -> dict | None:
    """The run record saved in <run_dir>/run.json, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(run_dir) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("id"), int) else None


def tail_lines(path: str | os.PathLike, count: int = 50, max_bytes: int = 256 * 1024) -> list[str]:
    """The last `count` lines of a log, reading at most max_bytes from its end (bounded memory)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is probably cut
    return lines[-count:] if count else lines
