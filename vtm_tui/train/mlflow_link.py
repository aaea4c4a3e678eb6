"""The training helper's side of MLflow: every call bounded, nothing lost when the server is away.

Every MLflow call runs with a short HTTP timeout and one retry (MLFLOW_HTTP_REQUEST_TIMEOUT,
MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR; values the user set win), so
a dead server costs milliseconds and a server that accepts and never answers at most twice the
timeout, once. Then the link goes offline: training goes on, what MLflow did not take (the run
itself, params, tags, metrics with step and timestamp, the checkpoint, the model saved locally,
the final status) is appended to the run's spool (core/tracking/spool.py), and every
`retry_interval` seconds one cheap probe asks whether the server is back; if so the spool is
delivered and the link is online again. Whatever is still spooled at the end waits for
`vtm mlflow sync` or the next `vtm mlflow up`. The log and the run's status line (a
`VTM_RUN_META::{"tracking": ...}` line the supervisor records as the run's message) say so once.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vtm_tui.core.runs.progress import format_meta
from vtm_tui.core.tracking.delivery import deliver
from vtm_tui.core.tracking.failures import REASON, is_unreachable
from vtm_tui.core.tracking.probes import is_http_uri, probe_server
from vtm_tui.core.tracking.spool import Spool
from vtm_tui.settings import Settings

HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
LAST_CALL_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
PROBE_TIMEOUT = 3.0
RETRY_INTERVAL = 30.0  # seconds between probes while the server is unreachable


def say(text: str, **meta: Any) -> None:
    """One line for the log (and a meta line for the supervisor when `meta` is given)."""
    print(f"[vtm] {text}", flush=True)
    if meta:
        print(format_meta(meta), flush=True)


@contextmanager
def limits(values: dict[str, str]):
    """MLflow HTTP limits for the calls inside, where the user set none."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    found = REASON.search(text)
    return found.group(0) if found else (text.strip().splitlines() or [type(exc).__name__])[0][:200]


class MlflowLink:
    """One training run's MLflow run, online or spooled. run_id / run_name / experiment_id are
    known once the run exists in MLflow (run_name is chosen here when it does not yet)."""

    def __init__(self, *, experiment_name: str, run_name: str | None, tags: dict, params: dict,
                 spool_dir: str | os.PathLike | None = None, retry_interval: float = RETRY_INTERVAL):
        settings = Settings.from_environ()
        self.experiment_name, self.requested_name = experiment_name, run_name
        self.tags, self.params = dict(tags), dict(params)
        self.vtm_run_id, self.mode = settings.run_id, settings.tracking_mode
        if spool_dir is None:
            spool_dir = (settings.run_dir / "mlflow-spool" if settings.run_dir else
                         Path("outputs") / "mlflow-spool" / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}"))
        self.spool = Spool(Path(spool_dir).absolute())
        self.retry_interval = retry_interval
        self.online = False
        self.run_id: str | None = None
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.tracking_uri: str | None = None
        self._next_try = 0.0
        self._header = False
        self._spool_id: str | None = None
        self._mlflow = None
        self._client = None

    # -- start and end -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the MLflow run (online) or begin the spool (offline); logs the params."""
        for key, value in HTTP_LIMITS.items():
            os.environ.setdefault(key, value)
        import mlflow

        self._mlflow = mlflow
        self.tracking_uri = mlflow.get_tracking_uri()
        if self.mode == "off":
            self._name_offline()
            self._offline("launched with --no-tracking", off=True)
            self._spool({"kind": "params", "params": self.params})
            return
        try:
            experiment = mlflow.set_experiment(self.experiment_name)
            run = mlflow.start_run(experiment_id=experiment.experiment_id, run_name=self.requested_name,
                                   tags=self.tags or None)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            self._name_offline()
            self._offline(_reason(exc))
            self._spool({"kind": "params", "params": self.params})
            return
        self.online = True
        self.run_id, self.run_name = run.info.run_id, run.info.run_name
        self.experiment_id = run.info.experiment_id
        if self.params:
            self.call(lambda: mlflow.log_params(self.params), {"kind": "params", "params": self.params})

    def _name_offline(self) -> None:
        try:
            from mlflow.utils.name_utils import _generate_random_name

            generated = _generate_random_name()
        except Exception:  # a private helper of MLflow's: any name will do
            generated = "run-" + os.urandom(4).hex()
        self.run_name = self.requested_name or generated

    def end(self, status: str) -> None:
        """End the MLflow run with `status` (FINISHED, FAILED, KILLED): at once when online, else
        spooled, and then the whole spool delivered if the server answers by now."""
        now = int(time.time() * 1000)
        if not self.online and not self._header:
            return  # it never started: nothing to end, nothing to spool
        if self.online:
            try:
                active = self._mlflow.active_run()
                if active is not None and active.info.run_id == self.run_id:
                    self._mlflow.end_run(status=status)
                else:
                    self.client().set_terminated(self.run_id, status)
                return
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                self._offline(_reason(exc))
        self._forget_active_run(status)
        self._spool({"kind": "end", "status": status, "end_time": now})
        if status != "KILLED" and self.mode == "on" and self._reconnect():
            return
        pending = self.spool.pending()
        if pending:
            where = f"`vtm mlflow sync {self.vtm_run_id or self.spool.directory}`"
            say(f"MLflow {'is off' if self.mode == 'off' else 'still unreachable'}: {pending} record(s) "
                f"wait in {self.spool.directory}; deliver them with {where} (or the next `vtm mlflow up`)",
                tracking=f"MLflow {'off' if self.mode == 'off' else 'unreachable'}: {pending} record(s) "
                         f"spooled in {self.spool.directory} ({where})")

    def _forget_active_run(self, status: str) -> None:
        """Drop MLflow's active run without waiting for a server that is away (end_run pops it
        before it calls the server; that one call gets two seconds)."""
        mlflow = self._mlflow
        if mlflow is not None and mlflow.active_run() is not None:
            with limits(LAST_CALL_LIMITS):
                try:
                    mlflow.end_run(status=status)
                except Exception:
                    pass

    # -- calls -------------------------------------------------------------------------------

    def call(self, send, record: dict) -> Any:
        """send() while online (or when the server may be back); on an outage, or offline, the
        record goes to the spool instead. Errors that are MLflow's answer (bad input) propagate."""
        if self.online or self._retry_due():
            try:
                return send()
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                self._offline(_reason(exc))
        self._spool(record)
        return None

    def client(self):
        """An MlflowClient on the run's tracking URI."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        """Log one step's metrics with one timestamp (the same one a later delivery uses)."""
        timestamp = int(time.time() * 1000)

        def send():
            from mlflow.entities import Metric

            self.client().log_batch(self.run_id, metrics=[Metric(key, value, timestamp, step)
                                                          for key, value in values.items()])
        self.call(send, {"kind": "metrics", "step": step, "timestamp": timestamp, "metrics": values})

    def log_artifact(self, path: str, artifact_path: str | None) -> None:
        """Upload a file (spooled by path: the file must still be there when it is delivered)."""
        path = str(Path(path).absolute())
        self.call(lambda: self.client().log_artifact(self.run_id, path, artifact_path),
                  {"kind": "artifact", "path": path, "artifact_path": artifact_path})

    def log_model(self, model, name: str, **kwargs):
        """mlflow.pytorch.log_model online; offline the model is saved into the spool (same
        format) and logged as the run's model when the spool is delivered. Returns MLflow's
        ModelInfo, or None when spooled."""
        import mlflow.pytorch

        if self.online or self._retry_due():
            try:
                return mlflow.pytorch.log_model(model, name=name, **kwargs)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                self._offline(_reason(exc))
        target, n = self.spool.directory / "models" / name, 1
        while target.exists():
            n += 1
            target = self.spool.directory / "models" / f"{name}-{n}"
        kwargs.pop("registered_model_name", None)
        mlflow.pytorch.save_model(model, str(target), **kwargs)
        self._spool({"kind": "model", "path": str(target), "name": name, "step": 0})
        return None

    # -- going offline and back --------------------------------------------------------------

    def _spool(self, record: dict) -> None:
        if not self._header:
            self._start_spool()
        self.spool.append({**record, "spool_id": self._spool_id})

    def _start_spool(self) -> None:
        tags = dict(self.tags)
        try:  # what start_run would have added: source, user, git commit
            from mlflow.tracking.context.registry import resolve_tags

            tags = resolve_tags(tags)
        except Exception:
            pass
        self._spool_id = self.spool.start(
            tracking_uri=self.tracking_uri or "", experiment_name=self.experiment_name, run_name=self.run_name,
            tags=tags, start_time=int(time.time() * 1000), mlflow_run_id=self.run_id, tracking=self.mode)
        self._header = True

    def _offline(self, reason: str, off: bool = False) -> None:
        was_online = self.online or not self._header
        self.online = False
        self._next_try = time.monotonic() + self.retry_interval
        if not self._header:
            self._start_spool()
        if not was_online:
            return
        what = ("MLflow is off for this run (--no-tracking)" if off
                else f"MLflow unreachable at {self.tracking_uri} ({reason})")
        say(f"{what}: training goes on; metrics, params, tags, artifacts (checkpoint, model) and the "
            f"final status are spooled to {self.spool.directory}" + ("" if off else " and delivered when "
            f"the server answers again (or by `vtm mlflow sync {self.vtm_run_id or self.spool.directory}`)"),
            tracking=f"{what}: spooling to {self.spool.directory}")

    def _retry_due(self) -> bool:
        return self.mode == "on" and not self.online and time.monotonic() >= self._next_try and self._reconnect()

    def _reconnect(self) -> bool:
        """Probe the server; if it answers, deliver the spool and go online. False otherwise."""
        self._next_try = time.monotonic() + self.retry_interval
        try:
            if is_http_uri(self.tracking_uri or ""):
                probe_server(self.tracking_uri, timeout=PROBE_TIMEOUT)
            result = deliver(self.spool, self.tracking_uri)
        except Exception:  # still away (or refusing): try again after retry_interval
            return False
        if result.busy or self.spool.pending():
            return False
        created = self.run_id is None
        self.run_id = result.run_ids.get(self._spool_id) or self.run_id
        if created and self.run_id:
            self._adopt()
        self.online = True
        say(f"MLflow reachable again: {result.summary()}",
            mlflow_run_id=self.run_id, tracking=f"MLflow reachable again: spool delivered to run {self.run_id}")
        return True

    def _adopt(self) -> None:
        """Make the run created from the spool MLflow's active run (for code that logs through
        mlflow.* inside the logger)."""
        try:
            run = self._mlflow.start_run(run_id=self.run_id)
            self.experiment_id, self.run_name = run.info.experiment_id, run.info.run_name
        except Exception as exc:
            print(f"[vtm] could not resume MLflow run {self.run_id}: {_reason(exc)}", file=sys.stderr, flush=True)
