"""Torch Standard v1 files and vtm's own example checkpoints: models rebuilt from a state dict
and the name of one of vtm's example architectures (SmallCNN, TinySegNet).

A v1 file (`model-standard.pt`, written by vtm before the v2 programs) is what
`torch.load(path, weights_only=True)` reads:

    {"format": "vtm-standard-v1", "task_type": "classification", "architecture": "SmallCNN",
     "num_classes": 5, "image_size": 32, "input_shape": [3, 32, 32],
     "class_names": ["red", ...], "state_dict": {name: tensor}}

vtm's example checkpoints (`vtm-checkpoint-v1`, written by vtm_tui.train) carry the same keys plus
epoch and metric. Both keep loading; new conversions write v2 programs (exporter.py).
"""
from __future__ import annotations

from typing import Any

from vtm_tui.core.standard.checkpoint import CheckpointError, FitReport, find_state_dict, fit_state_dict, is_state_dict
from vtm_tui.core.standard.spec import ModelSpec

STANDARD_V1_FORMAT = "vtm-standard-v1"
CHECKPOINT_FORMAT = "vtm-checkpoint-v1"
STANDARD_V1_FILE = "model-standard.pt"
DEFAULT_ARCHITECTURE = {"classification": "SmallCNN", "segmentation": "TinySegNet"}
DEFAULT_IMAGE_SIZE = 32
META_KEYS = ("format", "task_type", "architecture", "num_classes", "image_size", "input_shape", "class_names",
             "epoch", "metric", "mlflow_run_id")


def describe(obj: Any) -> dict:
    """The plain metadata a loaded checkpoint or v1 file carries (META_KEYS; no tensors, no
    objects); {} for a bare state dict or anything else."""
    if not isinstance(obj, dict) or is_state_dict(obj):
        return {}
    return {key: obj[key] for key in META_KEYS
            if obj.get(key) is not None and isinstance(obj[key], (str, int, float, list, dict))}


def example_spec(meta: dict, *, task_type: str | None = None, architecture: str | None = None,
                 num_classes: int | None = None, image_size: int | None = None,
                 where: str = "checkpoint") -> dict:
    """Architecture, task, classes, image size and class names of an example-architecture
    checkpoint: from the file, else from the arguments (task type alone picks SmallCNN or
    TinySegNet). An argument that contradicts the file is a CheckpointError, never a silent
    override."""
    from vtm_tui.core.standard.architectures import TASK_TYPES

    def pick(key, given):
        found = meta.get(key)
        if given is not None and found is not None and str(given) != str(found):
            raise CheckpointError(f"{where}: says {key} = {found!r}, but {given!r} was given")
        return found if found is not None else given

    task_type = pick("task_type", task_type)
    architecture = pick("architecture", architecture)
    if architecture is None and task_type is not None:
        architecture = DEFAULT_ARCHITECTURE.get(task_type)
    if architecture is None:
        raise CheckpointError(f"{where}: the architecture is unknown: give it as --arch MODULE_OR_FILE:CALLABLE "
                              f"(e.g. ./models.py:Net), or the task type of one of vtm's examples "
                              f"({', '.join(DEFAULT_ARCHITECTURE)})")
    if architecture not in TASK_TYPES:
        raise CheckpointError(f"{where}: unknown architecture {architecture!r} "
                              f"(vtm's examples: {', '.join(sorted(TASK_TYPES))}; any other: MODULE_OR_FILE:CALLABLE)")
    task_type = task_type or TASK_TYPES[architecture]
    num_classes = pick("num_classes", num_classes)
    if num_classes is None:
        raise CheckpointError(f"{where}: the number of classes is unknown: give num_classes")
    try:
        num_classes = int(num_classes)
        image_size = int(pick("image_size", image_size) or DEFAULT_IMAGE_SIZE)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: num_classes and image_size must be integers") from None
    if num_classes < 1 or image_size < 1:
        raise CheckpointError(f"{where}: num_classes and image_size must be positive")
    class_names = meta.get("class_names")
    if not (isinstance(class_names, list) and len(class_names) == num_classes):
        class_names = [f"class_{i}" for i in range(num_classes)]
    return {"task_type": task_type, "architecture": architecture, "num_classes": num_classes,
            "image_size": image_size, "input_shape": [3, image_size, image_size],
            "class_names": [str(c) for c in class_names]}


def build_example(fields: dict, state_dict: dict, where: str = "checkpoint") -> tuple[Any, FitReport]:
    """(the example model of `fields` (example_spec's result) with state_dict loaded, what had to
    be changed: a shared key prefix stripped); CheckpointError when the weights do not fit."""
    from vtm_tui.core.standard.architectures import build_model

    model = build_model(fields["architecture"], fields["num_classes"], fields["image_size"])
    report = fit_state_dict(model, state_dict, where, f"{fields['architecture']}(num_classes={fields['num_classes']})")
    return model, report


def spec_of(fields: dict) -> ModelSpec:
    """The v2 spec of an example model: its task, 3xHxW float32 RGB input scaled to [0, 1] (the
    example scripts train on that, without normalisation), logits."""
    return ModelSpec(task_type=fields["task_type"], input_shape=tuple(fields["input_shape"]),
                     num_classes=fields["num_classes"], class_names=fields["class_names"],
                     architecture=fields["architecture"],
                     arch_kwargs={"num_classes": fields["num_classes"], "image_size": fields["image_size"]})


def load_legacy(obj: Any, where: str, *, task_type: str | None = None, architecture: str | None = None,
                num_classes: int | None = None) -> tuple[Any, ModelSpec, dict]:
    """(model, spec, metadata) of a loaded v1 file, vtm checkpoint, or bare state dict of an
    example architecture (give architecture or task_type, and num_classes)."""
    meta = describe(obj)
    fields = example_spec(meta, task_type=task_type, architecture=architecture, num_classes=num_classes,
                          where=where)
    state, _ = find_state_dict(obj, where)
    return build_example(fields, state, where)[0], spec_of(fields), meta
