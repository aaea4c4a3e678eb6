"""How a run ends, recorded the same way by the local supervisor and the Slurm follower: the
run store's final status, exit code and message, and the script's MLflow run closed as FAILED or
KILLED when the script could not close it itself."""
from __future__ import annotations

import os

from vtm_tui.core.runs.store import RunRecord, RunStore


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
        return f"could not mark MLflow run {run_id} {status}: {exc}"
    return None


def finish_run(store: RunStore, run: RunRecord, status: str, *, exit_code: int | None, failure: str,
               tracking_uri: str | None, **values) -> None:
    """Record that `run` ended with `status` (succeeded, failed or cancelled) and `exit_code`.

    A run that did not succeed and reported an MLflow run has that run marked KILLED (cancelled)
    or FAILED on `tracking_uri`; if that fails, the problem is the run's message. Otherwise a
    failed run's message is `failure` (what ended it: an exit code, a signal, a Slurm state).
    `values`: more columns to set (job_state, started_at). The first finish wins (RunStore.finish).
    """
    message = None
    if run.mlflow_run_id and status != "succeeded":
        message = mark_mlflow_run(run.mlflow_run_id, tracking_uri, "KILLED" if status == "cancelled" else "FAILED")
    if status == "failed" and message is None:
        message = failure
    store.finish(run.id, status, exit_code=exit_code, message=message, **values)
