"""MLflow tracking: which server (one resolver), reading experiments and runs, the best run by a
metric, registering a run's model, and vtm's embedded tracking server.

    from vtm_tui.core.tracking import open_tracking, best_run

    tracking = open_tracking(settings)                 # --tracking-uri, MLFLOW_TRACKING_URI, embedded
    runs = tracking.search_runs("my-experiment", filter="metrics.val_accuracy > 0.8")
    best = best_run(tracking, "my-experiment", "val_accuracy", "max")     # NoEligibleRun

Modules: uri (resolve_tracking_uri, open_tracking), client (Tracking), entities (plain
results), failures (errors), probes (fail fast), best, register, server (`vtm mlflow up`).
mlflow itself is imported on first use, never here.
"""
from __future__ import annotations

from vtm_tui.core.tracking.best import BestQuery, BestRun, NoEligibleRun, UnknownMetric, best_run, resolve_query
from vtm_tui.core.tracking.client import Tracking
from vtm_tui.core.tracking.entities import ExperimentInfo, MetricPoint, RunInfo
from vtm_tui.core.tracking.failures import TrackingError, TrackingUnavailable
from vtm_tui.core.tracking.probes import INTERACTIVE_HTTP_ENV, interactive_http_limits
from vtm_tui.core.tracking.register import Registration, register_run
from vtm_tui.core.tracking.uri import open_tracking, resolve_tracking_uri

__all__ = [
    "BestQuery", "BestRun", "ExperimentInfo", "INTERACTIVE_HTTP_ENV", "MetricPoint", "NoEligibleRun", "Registration",
    "RunInfo", "Tracking", "TrackingError", "TrackingUnavailable", "UnknownMetric", "best_run",
    "interactive_http_limits", "open_tracking", "register_run", "resolve_query", "resolve_tracking_uri",
]
