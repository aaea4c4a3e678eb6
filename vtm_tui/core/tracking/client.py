"""MLflow tracking, read side: experiments, runs, metric history, search.

Everything comes out as plain dataclasses (ExperimentInfo, RunInfo, MetricPoint), so the TUI and
the CLI never touch mlflow objects. One `Tracking` works against any tracking URI: vtm's embedded
server, a remote `http(s)://` server, or a database URI (`sqlite:///...`,
`postgresql+psycopg2://...`). mlflow is imported lazily, on first use.

Interactive use must fail fast: before the first call, a server URI gets one short HTTP probe and
a database URI one TCP probe, and every MLflow call runs with few retries and a short timeout
(unless the user set MLFLOW_HTTP_REQUEST_* themselves). An unreachable store raises
TrackingUnavailable, a UserError naming the URI (password hidden). The plain results are in
entities.py, the errors in failures.py, the probes and limits in probes.py.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from vtm_tui.core.formatting import redact_url
from vtm_tui.core.tracking.entities import ExperimentInfo, MetricPoint, RunInfo
from vtm_tui.core.tracking.failures import REASON, TrackingError, TrackingUnavailable, is_unreachable
from vtm_tui.core.tracking.probes import check_database_uri, interactive_http_limits, is_http_uri, probe_server
from vtm_tui.errors import UserError

PAGE_SIZE = 1000  # runs per search_runs request; every search pages until the store is exhausted


class Tracking:
    """Queries against one tracking URI. Cheap to create; connects on first use. Thread-safe."""

    def __init__(self, uri: str, *, probe: bool = True):
        if not uri:
            raise UserError("no MLflow tracking URI given")
        self.uri = uri
        self._probe = probe
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Tracking({self.display_uri!r})"

    @property
    def display_uri(self) -> str:
        """The tracking URI with its password replaced by *** (for every message and the screen)."""
        return redact_url(self.uri)

    @property
    def client(self):
        """The underlying MlflowClient (tracking and registry on the same URI)."""
        with self._lock:
            if self._client is None:
                if self._probe:
                    if is_http_uri(self.uri):
                        probe_server(self.uri)
                    else:
                        check_database_uri(self.uri)
                from mlflow import MlflowClient

                with self.calling("connect"):
                    self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            return self._client

    @contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Run MLflow calls with interactive limits; their errors become TrackingErrors."""
        with interactive_http_limits():
            try:
                yield
            except UserError:
                raise
            except Exception as exc:
                from mlflow.exceptions import MlflowException

                if not isinstance(exc, MlflowException) and not is_unreachable(exc):
                    raise
                raise self.error(exc, what) from exc

    def error(self, exc: Exception, what: str) -> TrackingError:
        """The UserError for a failed MLflow call (`what` names it): TrackingUnavailable when the
        store could not be reached, else TrackingError with MLflow's message (password scrubbed)."""
        code = getattr(exc, "error_code", None)
        message = self._scrub(getattr(exc, "message", None) or str(exc))
        if is_unreachable(exc):
            found = REASON.search(message)
            reason = found.group(0) if found else message.splitlines()[0][:200]
            kind = "MLflow tracking server" if is_http_uri(self.uri) else "tracking store"
            return TrackingUnavailable(
                f"cannot reach the {kind} at {self.display_uri} ({what}): {reason} "
                f"(is it running? see `vtm mlflow status`, MLFLOW_TRACKING_URI or --tracking-uri)",
                self.uri, code)
        return TrackingError(f"MLflow at {self.display_uri}: {what}: {message.strip()}", self.uri, code)

    def _scrub(self, text: str) -> str:
        """Driver messages may quote the URI: never show its password."""
        try:
            password = urlsplit(self.uri).password
        except ValueError:
            password = None
        text = text.replace(self.uri, self.display_uri)
        return text.replace(password, "***") if password and len(password) >= 3 else text

    # -- experiments -----------------------------------------------------------------

    def experiments(self, include_deleted: bool = False) -> list[ExperimentInfo]:
        """Every experiment (active only, unless include_deleted), by name, all pages."""
        from mlflow.entities import ViewType

        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        found, token = [], None
        while True:
            with self.calling("list experiments"):
                page = self.client.search_experiments(view_type=view, max_results=1000,
                                                      order_by=["name ASC"], page_token=token)
            found += [ExperimentInfo.from_mlflow(e) for e in page]
            token = page.token
            if not token:
                return found

    def experiment(self, name_or_id: str) -> ExperimentInfo:
        """An active experiment by name (or, failing that, by id); UserError if there is none."""
        key = str(name_or_id)
        with self.calling(f"get experiment {key!r}"):
            exp = self.client.get_experiment_by_name(key)
        if exp is None and key.isdigit():
            try:
                with self.calling(f"get experiment {key!r}"):
                    exp = self.client.get_experiment(key)
            except TrackingError as exc:
                if isinstance(exc, TrackingUnavailable):
                    raise
                exp = None
        if exp is None:
            names = [e.name for e in self.experiments()]
            shown = ", ".join(names[:15]) + (", ..." if len(names) > 15 else "") if names else "none"
            raise UserError(f"no experiment {key!r} at {self.display_uri} (experiments: {shown})")
        if exp.lifecycle_stage != "active":
            raise UserError(f"experiment {key!r} at {self.display_uri} is deleted")
        return ExperimentInfo.from_mlflow(exp)

    # -- runs ------------------------------------------------------------------------

    def _experiment_ids(self, experiments) -> list[str]:
        if isinstance(experiments, (str, int, ExperimentInfo)):
            experiments = [experiments]
        if not experiments:
            raise UserError("name an experiment to search")
        return [e.experiment_id if isinstance(e, ExperimentInfo) else self.experiment(e).experiment_id
                for e in experiments]

    def iter_runs(self, experiments: str | ExperimentInfo | list, filter: str | None = None,
                  order_by: list[str] | None = None, max_results: int | None = None,
                  include_deleted: bool = False, page_size: int = PAGE_SIZE) -> Iterator[RunInfo]:
        """Runs of the experiments (names, ids or ExperimentInfo) matching an MLflow filter expression, page by page.

        filter: e.g. "params.lr = '0.01' and metrics.val_accuracy > 0.8 and attributes.status = 'FINISHED'".
        order_by: e.g. ["metrics.val_accuracy DESC", "attributes.start_time DESC"].
        """
        from mlflow.entities import ViewType

        if page_size < 1 or (max_results is not None and max_results < 0):
            raise UserError("page size and max results must be positive")
        ids = self._experiment_ids(experiments)
        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        count, token = 0, None
        while max_results is None or count < max_results:
            size = page_size if max_results is None else min(page_size, max_results - count)
            with self.calling("search runs" + (f" with filter {filter!r}" if filter else "")):
                page = self.client.search_runs(ids, filter_string=filter or "", run_view_type=view,
                                               max_results=size, order_by=order_by or None,
                                               page_token=token)
            for run in page:
                count += 1
                yield RunInfo.from_mlflow(run)
            token = page.token
            if not token or not len(page):
                return

    def search_runs(self, experiments: str | ExperimentInfo | list, filter: str | None = None,
                    order_by: list[str] | None = None, max_results: int | None = None,
                    include_deleted: bool = False, page_size: int = PAGE_SIZE) -> list[RunInfo]:
        """iter_runs as a list."""
        return list(self.iter_runs(experiments, filter, order_by, max_results, include_deleted, page_size))

    def run(self, run_id: str) -> RunInfo:
        """One run by id; UserError when the store has no such run, TrackingError otherwise."""
        try:
            with self.calling(f"get run {run_id}"):
                return RunInfo.from_mlflow(self.client.get_run(run_id))
        except TrackingError as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                raise UserError(f"no MLflow run {run_id!r} at {self.display_uri}") from None
            raise

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of one metric of a run, by step then time."""
        with self.calling(f"metric history of {key!r} in run {run_id}"):
            points = self.client.get_metric_history(run_id, key)
        return sorted((MetricPoint(int(p.step), float(p.value), int(p.timestamp)) for p in points),
                      key=lambda p: (p.step, p.timestamp))

    def run_url(self, run: RunInfo) -> str | None:
        """The run's page in the MLflow web UI, for a server URI."""
        if not is_http_uri(self.uri):
            return None
        return f"{self.uri.rstrip('/')}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
