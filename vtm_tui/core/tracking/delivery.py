"""Delivering a spool (core/tracking/spool.py) to MLflow, idempotently.

Records go out in order; after each step delivered.json says how far it got, so an interrupted
delivery resumes where it stopped. A step that may have reached the server before the
interruption is safe to send again: metric points already in the run's history (same key,
step, timestamp and value) are not sent twice, params equal to the run's are skipped, tags,
artifacts and the final status overwrite themselves, a created run is found again by its
`vtm.spool_id` tag and a logged model by its source run and name. mlflow is imported on use.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.tracking.client import Tracking
from vtm_tui.core.tracking.failures import TrackingError
from vtm_tui.core.tracking.spool import Spool, SpoolState

SPOOL_TAG = "vtm.spool_id"
BATCH = 1000  # metric points per log_batch request (MLflow's limit)


@dataclass
class Delivery:
    """What one delivery did: the spool folder, the MLflow run its records went to (the last
    one, when it holds several; run_ids: every `run` record's spool_id -> MLflow run id),
    records delivered now and still pending, metric points sent and found already there, the
    final status it set, notes on what it had to skip, and busy (another process was
    delivering it)."""
    spool: str
    mlflow_run_id: str | None = None
    run_ids: dict = field(default_factory=dict)
    delivered: int = 0
    pending: int = 0
    points: int = 0
    duplicates: int = 0
    status: str | None = None
    notes: list[str] = field(default_factory=list)
    busy: bool = False

    def summary(self) -> str:
        """One line for the user."""
        if self.busy:
            return f"{self.spool}: being delivered by another process"
        if not self.delivered:
            return f"{self.spool}: nothing to deliver"
        text = (f"{self.delivered} record(s) delivered to MLflow run {self.mlflow_run_id} "
                f"({self.points} metric point(s)" + (f", {self.duplicates} already there" if self.duplicates else "")
                + ")" + (f", status {self.status}" if self.status else ""))
        return text + "".join(f"; {note}" for note in self.notes)


class _Sender:
    """Sends the pending records of one spool, saving the delivered count after each step."""

    def __init__(self, tracking: Tracking, spool: Spool, state: SpoolState, result: Delivery):
        self.tracking, self.client = tracking, tracking.client
        self.spool, self.state, self.result = spool, state, result
        self.history: dict[tuple[str, str], set] = {}
        self.params: dict[str, dict[str, str]] = {}

    def done(self, lines: int) -> None:
        self.state.lines = lines
        self.spool.save_state(self.state)

    def run_id(self, header: dict) -> str:
        """The MLflow run of a `run` record: recorded, given, or created now (once: a run made by
        an interrupted delivery is found again by its spool_id tag)."""
        spool_id = header.get("spool_id") or ""
        run_id = self.state.runs.get(spool_id) or header.get("mlflow_run_id")
        if not run_id:
            with self.tracking.calling("create the spooled run"):
                run_id = self._create_run(header)
        if self.state.runs.get(spool_id) != run_id:
            self.state.runs[spool_id] = run_id
            self.spool.save_state(self.state)
        self.result.run_ids[spool_id] = self.result.mlflow_run_id = run_id
        return run_id

    def _create_run(self, header: dict) -> str:
        name = header.get("experiment_name") or "Default"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        spool_id = header.get("spool_id") or ""
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{SPOOL_TAG}` = '{spool_id}'",
                                        max_results=1) if spool_id else []
        if found:
            return found[0].info.run_id
        tags = {**(header.get("tags") or {}), SPOOL_TAG: spool_id}
        run = self.client.create_run(experiment_id, start_time=header.get("start_time"), tags=tags,
                                     run_name=header.get("run_name"))
        return run.info.run_id

    def send(self, records: list[dict], start: int) -> None:
        headers, latest, owners = {}, None, []
        for record in records:  # which `run` record each record belongs to
            if record.get("kind") == "run":
                headers[record.get("spool_id")] = latest = record
            owners.append(headers.get(record.get("spool_id"), latest))
        index = start
        while index < len(records):
            record, header = records[index], owners[index]
            kind = record.get("kind")
            if header is None:
                raise TrackingError(f"{self.spool.records_path}: a {kind} record before any `run` record")
            run_id = self.run_id(header)
            if kind == "metrics":
                end = index
                while end < len(records) and records[end].get("kind") == "metrics" and owners[end] is header:
                    end += 1
                with self.tracking.calling("deliver spooled metrics"):
                    self._metrics(run_id, records[index:end])
                self.done(end)
                index = end
                continue
            if kind != "run":
                with self.tracking.calling(f"deliver a spooled {kind} record"):
                    self._one(run_id, record)
            self.done(index + 1)
            index += 1

    def _metrics(self, run_id: str, records: list[dict]) -> None:
        from mlflow.entities import Metric

        points = []
        for record in records:
            for key, value in (record.get("metrics") or {}).items():
                point = (int(record.get("step") or 0), int(record["timestamp"]), float(value))
                if (run_id, key) not in self.history:
                    self.history[run_id, key] = {(m.step, m.timestamp, m.value)
                                                 for m in self.client.get_metric_history(run_id, key)}
                if point in self.history[run_id, key]:
                    self.result.duplicates += 1
                    continue
                self.history[run_id, key].add(point)
                points.append(Metric(key, point[2], point[1], point[0]))
        for start in range(0, len(points), BATCH):
            self.client.log_batch(run_id, metrics=points[start:start + BATCH])
        self.result.points += len(points)

    def _one(self, run_id: str, record: dict) -> None:
        kind = record.get("kind")
        if kind == "params":
            from mlflow.entities import Param

            if run_id not in self.params:
                self.params[run_id] = dict(self.client.get_run(run_id).data.params)
            known = self.params[run_id]
            new = {str(k): str(v) for k, v in (record.get("params") or {}).items() if known.get(str(k)) != str(v)}
            if new:
                self.client.log_batch(run_id, params=[Param(k, v) for k, v in new.items()])
                known.update(new)
        elif kind == "tags":
            from mlflow.entities import RunTag

            self.client.log_batch(run_id, tags=[RunTag(str(k), str(v)) for k, v in (record.get("tags") or {}).items()])
        elif kind == "artifact":
            if Path(record["path"]).exists():
                self.client.log_artifact(run_id, record["path"], record.get("artifact_path"))
            else:
                self.result.notes.append(f"artifact {record['path']} no longer exists: skipped")
        elif kind == "model":
            self._model(run_id, record)
        elif kind == "end":
            if record.get("only_if_running") and self.client.get_run(run_id).info.status != "RUNNING":
                return
            self.client.set_terminated(run_id, record.get("status") or "FINISHED", end_time=record.get("end_time"))
            self.result.status = record.get("status") or "FINISHED"
        elif kind == "unreadable":
            self.result.notes.append("an unreadable spool line was skipped")

    def _model(self, run_id: str, record: dict) -> None:
        """Log a model directory saved offline as the run's LoggedModel (as Model.log does)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        name, source = record.get("name") or "model", Path(record["path"])
        if not (source / "MLmodel").exists():
            self.result.notes.append(f"model {source} no longer exists: skipped")
            return
        run = self.client.get_run(run_id)
        models = self.client.search_logged_models([run.info.experiment_id],
                                                  filter_string=f"source_run_id = '{run_id}'")
        model = next((m for m in models if m.name == name), None)
        if model is not None and str(model.status) in ("READY", "LoggedModelStatus.READY"):
            return
        if model is None:
            model = self.client.create_logged_model(
                run.info.experiment_id, name=name, source_run_id=run_id,
                params={k: str(v) for k, v in run.data.params.items()})
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "model"
            shutil.copytree(source, local)
            saved = Model.load(str(local / "MLmodel"))
            saved.run_id, saved.model_id = run_id, model.model_id
            saved.model_uuid, saved.artifact_path = model.model_id, model.artifact_location
            saved.save(str(local / "MLmodel"))
            self.client.log_model_artifacts(model.model_id, str(local))
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=int(record.get("step") or 0))])
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def deliver(spool: Spool, tracking_uri: str | None = None, *, tracking: Tracking | None = None) -> Delivery:
    """Send what `spool` holds and MLflow does not have yet to `tracking_uri` (default: the URI
    the spool's first `run` record was written for). Returns what was done. TrackingUnavailable
    (a UserError naming the server) when it cannot be reached; what was delivered before that
    stays delivered."""
    result = Delivery(str(spool.directory))
    with spool.delivering() as held:
        if not held:
            result.busy = True
            return result
        records = spool.records()
        state = spool.state()
        result.run_ids = dict(state.runs)
        result.mlflow_run_id = next(reversed(state.runs.values()), None)
        if state.lines >= len(records):
            return result
        header = next((r for r in records if r.get("kind") == "run"), None)
        if header is None:
            raise TrackingError(f"{spool.records_path}: no `run` record, cannot tell which MLflow run it is for")
        tracking = tracking or Tracking(tracking_uri or header["tracking_uri"])
        start = state.lines
        try:
            _Sender(tracking, spool, state, result).send(records, start)
        finally:
            result.delivered = state.lines - start
            result.pending = len(records) - state.lines
    return result


def deliver_all(spools: list[tuple[int, Spool]], tracking_uri: str | None = None,
                include_off: bool = False) -> list[tuple[int, Delivery]]:
    """deliver() each (run id, spool) with something pending, in order; spools of runs launched
    with --no-tracking only with include_off. Stops at the first unreachable server
    (TrackingUnavailable propagates)."""
    results = []
    for run_id, spool in spools:
        if not spool.pending():
            continue
        header = spool.header() or {}
        if header.get("tracking") == "off" and not include_off:
            continue
        results.append((run_id, deliver(spool, tracking_uri)))
    return results
