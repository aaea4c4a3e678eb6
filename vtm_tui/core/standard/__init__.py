"""Models without their training code: the Torch Standard file (model-standard.pt), the safe
local loader (torch.load with weights_only=True, always), and the example architectures it can
rebuild by name.

    from vtm_tui.core.standard import load_model

    model, meta = load_model("model-standard.pt")   # meta: task_type, input_shape, class_names, ...

Modules: loader (safe_load, describe, convert_to_standard, load_model), architectures
(build_model; torch is imported on first use).
"""
from __future__ import annotations

from vtm_tui.core.standard.architectures import build_model
from vtm_tui.core.standard.loader import (
    STANDARD_FILE,
    CheckpointError,
    UnsafeCheckpoint,
    convert_to_standard,
    describe,
    load_model,
    safe_load,
)

__all__ = ["STANDARD_FILE", "CheckpointError", "UnsafeCheckpoint", "build_model", "convert_to_standard", "describe",
           "load_model", "safe_load"]
