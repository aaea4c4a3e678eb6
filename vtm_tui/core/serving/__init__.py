"""Serving: MLflow native model servers (`mlflow models serve`, managed and detached), and
predicting, natively first, else from the registry bundle with the local loader.

    from vtm_tui.core.serving import predict_target

    prediction = predict_target(settings, "models:/clf@release", random=True)
    prediction.lines(); prediction.to_json()           # served_by, source, skipped, program, top / shares

Modules: targets (the target grammar), fallback (the serving order, predict_target),
native (servers and /invocations), inputs (images, folders, arrays), predict_io (outputs,
Prediction).
"""
from __future__ import annotations

from vtm_tui.core.lazy import lazy_exports

_EXPORTS = {
    "fallback": ("predict_target",),
    "native": ("ServerRecord", "list_servers", "start_native", "stop_all", "stop_server"),
    "inputs": ("Inputs", "load_inputs"),
    "predict_io": ("ClassProbability", "ClassShare", "Prediction", "SampleResult"),
    "targets": ("FileTarget", "ModelTarget", "PinnedTarget", "ServerTarget", "Target", "parse_target"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
