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

from vtm_tui.core.lazy import lazy_exports

_EXPORTS = {
    "best": ("BestQuery", "BestRun", "NoEligibleRun", "UnknownMetric", "best_run", "resolve_query"),
    "client": ("Tracking",),
    "entities": ("ExperimentInfo", "MetricPoint", "RunInfo"),
    "failures": ("TrackingError", "TrackingUnavailable"),
    "probes": ("INTERACTIVE_HTTP_ENV", "interactive_http_limits"),
    "register": ("Registration", "register_run"),
    "uri": ("open_tracking", "resolve_tracking_uri"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
