"""How a run ends, recorded the same way by the local supervisor and the Slurm follower: the
run store's final status, exit code and message, and the script's MLflow run closed.

The message of a failed run names what ended it, from its log (the last exception line of the
last traceback), not a secondary failure. The script's MLflow run gets the status of the vtm
run (FAILED, KILLED; FINISHED if it was left RUNNING); when the tracking server cannot be
reached, that status goes to the run's MLflow spool and is set once the server is back
(`vtm mlflow sync`, `vtm mlflow up`), and the message says so.
"""
from __future__ import annotations

import os
import time
from typing import Iterable, Protocol

from vtm_tui.core.runs.folders import tail_lines
from vtm_tui.core.runs.records import RunRecord
from vtm_tui.core.tracking.failures import TrackingUnavailable, is_unreachable
from vtm_tui.core.tracking.probes import check_database_uri, is_http_uri, probe_server
from vtm_tui.core.tracking.spool import Spool

SPOOL_NOTE_PREFIXES = ("MLflow unreachable:", "MLflow off for this run:", "MLflow was unreachable")
MLFLOW_STATUS = {"failed": "FAILED", "cancelled": "KILLED", "succeeded": "FINISHED"}
PROBE_TIMEOUT = 3.0
TRACEBACK = "Traceback (most recent call last):"


class Finisher(Protocol):
    """What finish_run records through: RunStore, or the supervisor's Recorder."""

    def finish(self, run_id: int, status: str, **values) -> bool:
        """Move the run to its final status (first writer wins)."""


def failure_cause(lines: Iterable[str]) -> str | None:
    """The exception line of the last Python traceback in `lines` (`RuntimeError: boom`), at
    most 300 characters; None when there is none."""
    lines = list(lines)
    starts = [i for i, line in enumerate(lines) if line.strip() == TRACEBACK]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        if line.strip() and not line[:1].isspace():
            text = line.strip()
            return text if len(text) <= 300 else text[:297] + "..."
    return None


def tracking_reachable(tracking_uri: str | None) -> bool:
    """True when the tracking server (or networked database) answers within a few seconds;
    file and SQLite stores count as reachable."""
    if not tracking_uri:
        return True
    try:
        if is_http_uri(tracking_uri):
            probe_server(tracking_uri, timeout=PROBE_TIMEOUT)
        else:
            check_database_uri(tracking_uri, timeout=PROBE_TIMEOUT)
    except TrackingUnavailable:
        return False
    return True


def mark_mlflow_run(run_id: str, tracking_uri: str | None, status: str) -> str | None:
    """Give a failed or cancelled script's MLflow run the status FAILED / KILLED.

    A script that dies leaves its run RUNNING, or FINISHED when mlflow's atexit hook ended it
    after an uncaught exception; both are wrong for a run whose process failed.
    Returns a problem description, or None.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        if client.get_run(run_id).info.status in ("RUNNING", "SCHEDULED", "FINISHED"):
            client.set_terminated(run_id, status=status)
    except Exception as exc:  # the run record must still be finished
        if is_unreachable(exc):
            return "unreachable"
        return f"could not mark MLflow run {run_id} {status}: {exc}"
    return None


def close_mlflow_run(run: RunRecord, status: str, tracking_uri: str | None) -> str | None:
    """Give the script's MLflow run (if it reported one) the status of the vtm run: marked now,
    or spooled when the server is away (a succeeded run's only if it is still RUNNING then: the
    script or MLflow's atexit hook normally ended it). Returns a problem to report, or None."""
    if not run.mlflow_run_id:
        return None
    target = MLFLOW_STATUS.get(status, "FAILED")
    if tracking_reachable(tracking_uri):
        if status == "succeeded":
            return None
        problem = mark_mlflow_run(run.mlflow_run_id, tracking_uri, target)
        if problem != "unreachable":
            return problem
    spool = Spool.of_run(run.run_dir)
    try:
        header = spool.header_for(run.mlflow_run_id)
        spool_id = header.get("spool_id") if header else spool.start(
            tracking_uri=tracking_uri or "", experiment_name=None, run_name=None, mlflow_run_id=run.mlflow_run_id)
        spool.append({"kind": "end", "status": target, "end_time": int(time.time() * 1000),
                      "only_if_running": status == "succeeded", "spool_id": spool_id})
    except OSError as exc:
        return (f"MLflow unreachable and the status could not be spooled ({exc.strerror or exc}): "
                f"MLflow run {run.mlflow_run_id} stays open")
    return None


def spool_note(run: RunRecord) -> str | None:
    """What the run's MLflow spool still holds, one clause for the run's message (it starts with
    SPOOL_NOTE_PREFIXES); None without a spool."""
    spool = Spool.of_run(run.run_dir)
    try:
        pending = spool.pending()
        header = spool.header() if pending else None
    except OSError:
        return None
    if pending:
        why = "off for this run" if (header or {}).get("tracking") == "off" else "unreachable"
        return (f"MLflow {why}: {pending} record(s) spooled in {spool.directory} "
                f"(`vtm mlflow sync {run.id}` or the next `vtm mlflow up` delivers them)")
    if spool.exists():
        return "MLflow was unreachable for a while: everything spooled has been delivered"
    return None


def finish_run(store: Finisher, run: RunRecord, status: str, *, exit_code: int | None, failure: str,
               tracking_uri: str | None, log_lines: list[str] | None = None, notes: Iterable[str | None] = (),
               **values) -> bool:
    """Record that `run` ended with `status` (succeeded, failed or cancelled) and `exit_code`.

    The message: `notes` (e.g. a full disk), then for a failed run what ended it, i.e. the last
    exception line of its log (`log_lines`, else the end of its log file) with `failure` (an exit
    code, a signal, a Slurm state), then what happened to its MLflow run and spool. `values`:
    more columns to set (job_state, started_at). The first finish wins (RunStore.finish);
    returns whether this one did."""
    parts = [note for note in notes if note]
    if status == "failed":
        cause = failure_cause(log_lines if log_lines is not None else tail_lines(run.log_path, 200))
        parts.append(f"{cause} ({failure})" if cause else failure)
    parts += [part for part in (close_mlflow_run(run, status, tracking_uri), spool_note(run)) if part]
    return store.finish(run.id, status, exit_code=exit_code, message="; ".join(parts) or None, **values)
