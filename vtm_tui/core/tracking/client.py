"""MLflow tracking, read side: experiments, runs, metric history, search.

Everything comes out as plain dataclasses (ExperimentInfo, RunInfo, MetricPoint), so the TUI and
the CLI never touch mlflow objects. One `Tracking` works against any tracking URI: vtm's embedded
server, a remote `http(s)://` server, or a database URI (`sqlite:///...`,
`postgresql+psycopg2://...`). mlflow is imported lazily, on first use.

Interactive use must fail fast: before the first call, a server URI gets one short HTTP probe and
a database URI one TCP probe, and every MLflow call runs with few retries and a short timeout
(unless the user set MLFLOW_HTTP_REQUEST_* themselves). An unreachable store raises
TrackingUnavailable, a UserError naming the URI (password hidden).
"""
from __future__ import annotations

import math
import os
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

from vtm_tui.core import procs
from vtm_tui.core.formatting import redact_url
from vtm_tui.errors import UserError

PAGE_SIZE = 1000  # runs per search_runs request; every search pages until the store is exhausted
PROBE_TIMEOUT = 5.0

# Defaults for interactive calls. MLflow's own (7 retries with backoff, 120 s timeout) suit a
# training job riding out a server restart, not a person waiting for an answer.
INTERACTIVE_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

DB_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


class TrackingError(UserError):
    """An MLflow call failed; the message names the tracking URI."""

    def __init__(self, message: str, uri: str | None = None, error_code: str | None = None):
        super().__init__(message)
        self.uri, self.error_code = uri, error_code


class TrackingUnavailable(TrackingError):
    """The tracking server or database cannot be reached."""


# ---------------------------------------------------------------------------
# Plain results
# ---------------------------------------------------------------------------


def _json_number(value: float) -> float | None:
    """NaN and infinities are not JSON: they come out as null."""
    return value if math.isfinite(value) else None


@dataclass
class ExperimentInfo:
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"
    artifact_location: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None  # ms since the epoch, as MLflow keeps it
    last_update_time: int | None = None

    @classmethod
    def from_mlflow(cls, exp) -> "ExperimentInfo":
        return cls(experiment_id=str(exp.experiment_id), name=exp.name,
                   lifecycle_stage=exp.lifecycle_stage, artifact_location=exp.artifact_location or "",
                   tags=dict(exp.tags or {}), creation_time=exp.creation_time,
                   last_update_time=exp.last_update_time)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RunInfo:
    run_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int | None  # ms since the epoch
    end_time: int | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each metric
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    artifact_uri: str = ""
    lifecycle_stage: str = "active"

    @classmethod
    def from_mlflow(cls, run) -> "RunInfo":
        info, data = run.info, run.data
        return cls(run_id=info.run_id, name=info.run_name or "", status=info.status,
                   start_time=info.start_time, end_time=info.end_time, params=dict(data.params),
                   metrics={k: float(v) for k, v in data.metrics.items()}, tags=dict(data.tags),
                   experiment_id=str(info.experiment_id), artifact_uri=info.artifact_uri or "",
                   lifecycle_stage=info.lifecycle_stage)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while it has no end."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, (self.end_time - self.start_time) / 1000)

    @property
    def user_tags(self) -> dict[str, str]:
        """Tags without MLflow's own `mlflow.*` bookkeeping."""
        return {k: v for k, v in self.tags.items() if not k.startswith("mlflow.")}

    def to_json(self) -> dict:
        data = asdict(self)
        data["metrics"] = {k: _json_number(v) for k, v in self.metrics.items()}
        data["duration"] = self.duration
        return data


@dataclass
class MetricPoint:
    step: int
    value: float
    timestamp: int  # ms since the epoch

    def to_json(self) -> dict:
        return {"step": self.step, "value": _json_number(self.value), "timestamp": self.timestamp}


# ---------------------------------------------------------------------------
# URIs, probes, interactive limits
# ---------------------------------------------------------------------------


def is_http_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def database_address(uri: str) -> tuple[str, str, int] | None:
    """(dialect, host, port) of a networked database URI; None for sqlite, sockets and the rest."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    dialect = scheme.split("+", 1)[0]
    if dialect not in DB_DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"malformed database URI {redact_url(uri)}: {exc}") from None
    if not parts.hostname:  # unix socket (host in the query string) or libpq defaults
        return None
    return dialect, parts.hostname, port or DB_DEFAULT_PORTS[dialect]


def check_database_uri(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Fail fast, naming the URI, when a database URI's driver is missing or its server is down.

    MLflow itself retries a dead database for about a minute and a half before it gives up.
    """
    address = database_address(uri)
    if address is None:
        return
    dialect, host, port = address
    driver = uri.split("://", 1)[0].partition("+")[2]
    module = {"postgresql": {"": "psycopg2", "psycopg2": "psycopg2", "psycopg": "psycopg",
                             "pg8000": "pg8000"},
              "mysql": {"": "MySQLdb", "pymysql": "pymysql", "mysqldb": "MySQLdb"}}.get(dialect, {}).get(driver)
    if module:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            hint = " (pip install 'vtm-tui[postgres]')" if module == "psycopg2" else ""
            raise UserError(f"{redact_url(uri)}: the database driver '{module}' is not installed{hint}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot reach the database of {redact_url(uri)} at {host}:{port}: "
            f"{exc.strerror or exc}", uri) from None


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise TrackingUnavailable unless something answers HTTP at the server URI.

    Any HTTP answer counts (a proxy's 401 or 404 too): this only tells a dead or hung server
    from a live one, quickly. TLS problems are left for MLflow, which has its own TLS settings.
    """
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
    except (TimeoutError, socket.timeout):
        reason = f"no answer within {timeout:.0f}s"
    except (OSError, ValueError) as exc:
        reason = str(exc)
    raise TrackingUnavailable(
        f"cannot reach the MLflow tracking server at {redact_url(uri)}: {reason} "
        f"(is it running? see `vtm mlflow status`, MLFLOW_TRACKING_URI or --tracking-uri)", uri)


_env_users = 0


@contextmanager
def interactive_http_limits() -> Iterator[None]:
    """Apply INTERACTIVE_HTTP_ENV for the duration of MLflow calls; variables the user set win.

    The environment is changed only while a call runs (reference-counted across threads), and
    the variables are process-only (procs.PROCESS_ONLY_ENV): a training run, a model server or a
    tracking server that vtm starts meanwhile keeps MLflow's patient defaults.
    """
    global _env_users
    with procs.ENV_LOCK:
        if _env_users == 0:
            for key, value in INTERACTIVE_HTTP_ENV.items():
                if key not in os.environ:
                    os.environ[key] = value
                    procs.PROCESS_ONLY_ENV.add(key)
        _env_users += 1
    try:
        yield
    finally:
        with procs.ENV_LOCK:
            _env_users -= 1
            if _env_users == 0:
                for key in INTERACTIVE_HTTP_ENV:
                    if key in procs.PROCESS_ONLY_ENV:
                        os.environ.pop(key, None)
                        procs.PROCESS_ONLY_ENV.discard(key)


_UNREACHABLE = re.compile(r"Connection refused|timed out|failed with timeout exception|"
                          r"Max retries exceeded|Name or service not known|"
                          r"Temporary failure in name resolution|No route to host|"
                          r"Connection reset by peer|RemoteDisconnected|too many \d+ error responses")
_REASON = re.compile(r"Connection refused|Read timed out|Connect(?:ion)? ?timed? ?out|"
                     r"Name or service not known|Temporary failure in name resolution|"
                     r"No route to host|Connection reset by peer|too many \d+ error responses", re.I)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_unreachable(exc: BaseException) -> bool:
    for link in _chain(exc):
        module = type(link).__module__ or ""
        if module.startswith(("requests", "urllib3")) and not isinstance(link, ValueError):
            return True
        if module.startswith("sqlalchemy") and type(link).__name__ in ("OperationalError", "InterfaceError"):
            return True
        if isinstance(link, (ConnectionError, TimeoutError)):
            return True
    # A server's own answer carries a specific code; MLflow's transport failures carry none.
    code = getattr(exc, "error_code", None)
    return code in (None, "INTERNAL_ERROR") and bool(_UNREACHABLE.search(str(exc)))


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------


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

                if not isinstance(exc, MlflowException) and not _is_unreachable(exc):
                    raise
                raise self.error(exc, what) from exc

    def error(self, exc: Exception, what: str) -> TrackingError:
        code = getattr(exc, "error_code", None)
        message = self._scrub(getattr(exc, "message", None) or str(exc))
        if _is_unreachable(exc):
            found = _REASON.search(message)
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
        return list(self.iter_runs(experiments, filter, order_by, max_results, include_deleted, page_size))

    def run(self, run_id: str) -> RunInfo:
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
