"""Serving: MLflow native model servers (`mlflow models serve`, managed and detached), and
predicting, natively first, else from the registry bundle with the local loader.

    from vtm_tui.core.serving import predict_target

    prediction = predict_target(settings, "models:/clf@release", random=True)
    prediction.lines(); prediction.to_json()           # served_by, source, skipped, top / shares

Modules: targets (the target grammar), fallback (the serving order, predict_target),
native (servers and /invocations), predict_io (inputs, outputs, Prediction).
"""
from __future__ import annotations

from vtm_tui.core.serving.fallback import predict_target
from vtm_tui.core.serving.native import ServerRecord, list_servers, start_native, stop_server
from vtm_tui.core.serving.predict_io import ClassProbability, ClassShare, Prediction
from vtm_tui.core.serving.targets import ModelTarget, PinnedTarget, ServerTarget, Target, parse_target

__all__ = [
    "ClassProbability", "ClassShare", "ModelTarget", "PinnedTarget", "Prediction", "ServerRecord", "ServerTarget",
    "Target", "list_servers", "parse_target", "predict_target", "start_native", "stop_server",
]
