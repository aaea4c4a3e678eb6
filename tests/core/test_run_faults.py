"""Pieces of vtm's answers to faults, on real files and a real small filesystem: the failure
cause read from a log, the log writer on a full disk, the spool's torn last line, and what an
SQLite error means for the run store."""
from __future__ import annotations

import re
import sqlite3

from fixtures.vtm import fill_disk

from vtm_tui.core.runs import run_output
from vtm_tui.core.runs.outcome import failure_cause
from vtm_tui.core.runs.records import classify
from vtm_tui.core.runs.run_output import LogWriter
from vtm_tui.core.tracking.spool import Spool

CHAINED = """\
epoch 1 done
Traceback (most recent call last):
  File "train.py", line 3, in <module>
    load()
FileNotFoundError: [Errno 2] No such file or directory: 'data.npy'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "train.py", line 5, in <module>
    raise RuntimeError("no training data")
RuntimeError: no training data
[vtm] MLflow still unreachable
"""


def test_failure_cause_is_the_exception_line_of_the_last_traceback():
    assert failure_cause(CHAINED.splitlines()) == "RuntimeError: no training data"
    assert failure_cause(["Traceback (most recent call last):", '  File "x.py", line 1', "KeyboardInterrupt"]) == \
        "KeyboardInterrupt"
    assert failure_cause(["plain output", "exit"]) is None
    assert failure_cause(["Traceback (most recent call last):", "ValueError: " + "x" * 400])[-3:] == "..."


def test_log_writer_drops_and_counts_on_a_full_disk_and_resumes_when_space_is_back(small_disk, monkeypatch):
    monkeypatch.setattr(run_output, "RETRY_INTERVAL", 0.0)
    released = []
    log = LogWriter(small_disk / "output.log", on_disk_error=lambda: released.append(True))
    log.write(b"first line\n")
    filler = fill_disk(small_disk)
    for n in range(100):
        log.write(f"line {n} ".encode() * 100 + b"\n")  # never raises, never blocks
    assert released and log.dropped_lines >= 90 and log.problem().startswith(
        f"no space left on device ({small_disk / 'output.log'}): ")
    assert log.tail_lines()[-1].startswith("line 99 ")  # the end of the output is still known
    filler.unlink()
    log.write(b"after the disk had space again\n")
    log.close()
    text = (small_disk / "output.log").read_text()
    assert text.startswith("first line\n") and text.endswith("after the disk had space again\n")
    reported = re.search(r"\n\[vtm\] (\d+) log line\(s\) dropped here: no space left on device", text)
    assert reported and int(reported.group(1)) == log.dropped_lines  # one outage, said once
    whole = sum(line == f"line {n} " * 100 for n in range(100) for line in text.splitlines())
    assert whole + log.dropped_lines == 100  # every line written whole, or counted (a torn one too)


def test_spool_reads_complete_lines_only(tmp_path):
    spool = Spool(tmp_path / "mlflow-spool")
    spool.start(tracking_uri="http://127.0.0.1:1", experiment_name="e", run_name="r")
    spool.append({"kind": "metrics", "step": 1, "timestamp": 5, "metrics": {"loss": 0.5}})
    with open(spool.records_path, "ab") as handle:
        handle.write(b'{"kind": "metrics", "st')  # a write cut short by a crash or a full disk
    assert [r["kind"] for r in spool.records()] == ["run", "metrics"] and spool.pending() == 2


def test_sqlite_errors_are_classified_for_the_store(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 1000)
    try:
        sqlite3.connect(garbage).execute("SELECT 1 FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        assert classify(exc) == "damaged"
    assert classify(sqlite3.OperationalError("database or disk is full")) == "full"
    assert classify(sqlite3.OperationalError("disk I/O error")) == "full"
    assert classify(sqlite3.OperationalError("no such table: runs")) == "missing"
    assert classify(sqlite3.OperationalError("database is locked")) == "busy"
