"""How the import talks to MLflow: log_batch senders (through MlflowClient, or straight to a
tracking server's REST API), one retry for idempotent calls, and finding or creating the
experiment and the runs of a log directory.

MLflow's REST limits (https://mlflow.org/docs/latest/rest-api.html#log-batch): at most 1000
metrics, 100 params and 100 tags per log_batch, 1000 entities in all.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from vtm_tui.core.tensorboard.report import RunResult
from vtm_tui.core.tensorboard.state import TAG_FLATTEN, TAG_SOURCE, TAG_SOURCE_ID, ImportRun, digest
from vtm_tui.errors import UserError

DEFAULT_REST_WORKERS = 4


def retry(call, *args, **kwargs):
    """One more try for idempotent calls that failed for a reason other than the server saying
    no (4xx). MLflow's HTTP layer already retries connection errors; this covers failures before
    a request is sent, such as MLflow's telemetry thread unsetting an environment variable while
    `requests` iterates os.environ (KeyError)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException) and 400 <= exc.get_http_status_code() < 500:
            raise
        if not isinstance(exc, (MlflowException, OSError, KeyError)):
            raise
        time.sleep(1.0)
        return call(*args, **kwargs)


def check_reachable(uri: str) -> None:
    """UserError unless something listens at an http(s) tracking URI's host and port (5 s); other
    URIs pass."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=5).close()
    except OSError as exc:
        raise UserError(f"cannot reach the MLflow tracking server at {uri}: {exc.strerror or exc}") from None


class ClientSender:
    """log_batch through MlflowClient: any tracking URI MLflow understands."""

    def __init__(self, client):
        from mlflow.entities import Metric, Param, RunTag

        self._client, self._metric, self._param, self._tag = client, Metric, Param, RunTag

    def prepare(self, run_id: str, metrics=(), tags=(), params=()):
        """Build one log_batch: metrics (key, value, timestamp ms, step), tags and params (key,
        value) as MLflow entities."""
        return (run_id, [self._metric(k, v, t, s) for k, v, t, s in metrics],
                [self._param(k, v) for k, v in params], [self._tag(k, v) for k, v in tags])

    def post(self, prepared) -> None:
        """Send a prepared batch (synchronously); MlflowException when it is refused."""
        run_id, metrics, params, tags = prepared
        self._client.log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

    def send(self, run_id: str, metrics=(), tags=(), params=()) -> None:
        """prepare, then post."""
        self.post(self.prepare(run_id, metrics, tags, params))


class RestSender(ClientSender):
    """log_batch straight to a REST tracking server: the request MlflowClient sends, encoded
    with the json module instead of protobuf's JSON printer (several times cheaper per point)
    and sent with MLflow's own HTTP session, retries and credentials. Bodies are encoded on the
    importing thread, so worker threads only post bytes."""

    ENDPOINT = "/api/2.0/mlflow/runs/log-batch"
    HEADERS = {"Content-Type": "application/json"}

    def __init__(self, store):
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        self._creds, self._http, self._verify = store.get_host_creds, http_request, verify_rest_response

    def prepare(self, run_id: str, metrics=(), tags=(), params=()) -> bytes:
        """The log-batch request body: JSON, non-finite values spelled as MLflow's protobuf JSON does
        ("NaN", "Infinity", "-Infinity")."""
        from vtm_tui.core.tensorboard.events import json_number

        inf = float("inf")
        return json.dumps({
            "run_id": run_id,
            "metrics": [{"key": k, "value": v if -inf < v < inf else json_number(v),
                         "timestamp": t, "step": s} for k, v, t, s in metrics],
            "params": [{"key": k, "value": v} for k, v in params],
            "tags": [{"key": k, "value": v} for k, v in tags]}, separators=(",", ":")).encode()

    def post(self, body: bytes) -> None:
        """POST the body to /api/2.0/mlflow/runs/log-batch with MLflow's session, retries and
        credentials; MlflowException when the server refuses it."""
        response = self._http(self._creds(), self.ENDPOINT, "POST", data=body, extra_headers=self.HEADERS)
        self._verify(response, self.ENDPOINT)


def sender_for(client, uri: str):
    """(sender, worker threads): a RestSender and 4 workers for an http(s) server, else a
    ClientSender and one."""
    if urlsplit(uri).scheme in ("http", "https"):
        try:
            from mlflow.tracking._tracking_service.utils import _get_store

            store = _get_store(uri)
            if callable(getattr(store, "get_host_creds", None)):
                return RestSender(store), DEFAULT_REST_WORKERS
        except Exception:  # an MLflow without these internals: the public client still works
            pass
    return ClientSender(client), 1  # direct stores (sqlite://, file:) write from one thread


def experiment_id(client, name: str) -> str:
    """The id of the active experiment `name`, created when missing; UserError when it is deleted."""
    from mlflow.exceptions import MlflowException

    experiment = retry(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created meanwhile by someone else
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"experiment '{name}' is deleted; restore it in MLflow or choose another "
                        f"--experiment-name")
    return experiment.experiment_id


def find_run(client, experiment_id: str, key: str, value: str):
    """The oldest run of the experiment whose tag `key` is `value`, or None."""
    runs = retry(client.search_runs, [experiment_id], filter_string=f"tags.`{key}` = '{value}'",
                  max_results=5, order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def first_wall_ms(path: Path) -> int | None:
    """The wall time (ms since the epoch) of an event file's first record, or None."""
    from tensorboard.compat.proto import event_pb2

    from vtm_tui.core.tensorboard.tfrecord import HEADER_SIZE, first_record

    try:
        head = first_record(path)
        if head is None:
            return None
        return int(event_pb2.Event.FromString(head[HEADER_SIZE:-4]).wall_time * 1000) or None
    except Exception:
        return None


def existing_run(client, experiment_id: str, name: str, source: Path) -> ImportRun | None:
    """The run an earlier import made for the event directory `source` (found by its source-id
    tag), with all its tags and params; None when there is none."""
    found = find_run(client, experiment_id, TAG_SOURCE_ID, digest(source)[:24])
    if found is None:
        return None
    run = retry(client.get_run, found.info.run_id)  # search results may omit tags: fetch all
    result = RunResult(run.info.run_name or name, run.info.run_id, str(source), created=False)
    return ImportRun(result, dict(run.data.tags), dict(run.data.params), run.info.status, run.info.end_time)


def open_run(client, experiment_id: str, name: str, source: Path, rel: str,
             parent_id: str | None, start_ms: int | None, flatten: bool,
             existing: ImportRun | None = None) -> ImportRun:
    """The run that holds the event directory `source`: `existing` (existing_run's answer), else
    created (named, nested under parent_id, started at start_ms, tagged with its source)."""
    if existing is not None:
        return existing
    source_id = digest(source)[:24]
    tags = {TAG_SOURCE: str(source), TAG_SOURCE_ID: source_id, "vtm.tb_import.relpath": rel,
            TAG_FLATTEN: "true" if flatten else "false",
            "mlflow.source.name": "vtm import-tb", "mlflow.source.type": "LOCAL"}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name)
    result = RunResult(name, run.info.run_id, str(source), created=True)
    return ImportRun(result, dict(tags), {}, run.info.status, None)
