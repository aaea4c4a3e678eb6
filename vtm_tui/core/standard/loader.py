"""Torch Standard model files and the local loader.

A Torch Standard file (`model-standard.pt`) is what `torch.load(path, weights_only=True)` reads
with no training code around: a dict of plain values and tensors,

    {"format": "vtm-standard-v1", "task_type": "classification", "architecture": "SmallCNN",
     "num_classes": 5, "image_size": 32, "input_shape": [3, 32, 32],
     "class_names": ["red", ...], "state_dict": {name: tensor}}

and that `load_model` turns back into a working model through `vtm_tui.core.standard.architectures.build_model`.

Loading is always `weights_only=True`: a checkpoint that needs arbitrary unpickling (a pickled
module, an argparse.Namespace, a `__reduce__` payload) is refused with UnsafeCheckpoint, never
retried unsafely. torch is imported inside the functions.

Checkpoint format: what `torch.save` writes, a zip archive of a pickle and tensor storages
(https://pytorch.org/docs/stable/notes/serialization.html); `weights_only` restricts the
unpickler to tensors and plain containers (https://pytorch.org/docs/stable/generated/torch.load.html).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vtm_tui.errors import UserError

STANDARD_FORMAT = "vtm-standard-v1"
CHECKPOINT_FORMAT = "vtm-checkpoint-v1"
STANDARD_FILE = "model-standard.pt"
DEFAULT_ARCHITECTURE = {"classification": "SmallCNN", "segmentation": "TinySegNet"}
DEFAULT_IMAGE_SIZE = 32
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not describe a model vtm can build."""


class UnsafeCheckpoint(CheckpointError):
    """Reading the file would execute or construct arbitrary Python objects."""


def _clean(text: str, limit: int = 300) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _unpickling_reason(exc: Exception) -> str:
    """The line of torch's message that names what was refused, without its advice to retry
    with weights_only=False."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation"))
              and "weights_only" not in line]
    return _clean(useful[0] if useful else "unsupported content", 200)


def safe_load(path: str | Path, *, mmap: bool = False) -> Any:
    """torch.load(weights_only=True) on CPU; UnsafeCheckpoint if that is not enough."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if mmap and "mmap" in str(exc):  # legacy (non-zip) format cannot be mapped
                return torch.load(path, map_location="cpu", weights_only=True)
            raise
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a refused object: a damaged or foreign file
            raise CheckpointError(f"{path}: not a readable torch file ({_unpickling_reason(exc)})") from None
        raise UnsafeCheckpoint(
            f"{path}: refused: it holds Python objects that only a full unpickling could rebuild "
            f"({_unpickling_reason(exc)}), and vtm never loads with weights_only=False. Re-save it "
            f"with tensors and plain values only, e.g. "
            f"torch.save({{'state_dict': model.state_dict(), ...}})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch file ({_clean(exc)})") from None


def _is_state_dict(obj) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def describe(obj: Any) -> dict:
    """The plain metadata a loaded checkpoint or standard file carries (no tensors)."""
    if not isinstance(obj, dict) or _is_state_dict(obj):
        return {}
    meta = {}
    for key in ("format", "task_type", "architecture", "num_classes", "image_size", "input_shape",
                "class_names", "epoch", "metric", "mlflow_run_id"):
        value = obj.get(key)
        if value is not None and isinstance(value, (str, int, float, list, dict)):
            meta[key] = value
    return meta


def state_dict_of(obj: Any, where: str = "checkpoint") -> dict:
    """The state dict (name -> tensor) of a loaded checkpoint: the object itself, or the first of
    STATE_DICT_KEYS that holds one (state_dict, model_state_dict, ...); CheckpointError otherwise."""
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(obj.get(key)):
                return obj[key]
    raise CheckpointError(f"{where}: no state dict found (expected a dict of tensors, or one under "
                          f"{', '.join(repr(k) for k in STATE_DICT_KEYS)})")


def resolve_spec(meta: dict, *, task_type: str | None = None, architecture: str | None = None,
                 num_classes: int | None = None, image_size: int | None = None,
                 where: str = "checkpoint") -> dict:
    """Architecture, task, classes and image size: from the file, else from the arguments.

    An argument that contradicts the file is an error rather than a silent override."""
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
        raise CheckpointError(f"{where}: the architecture is unknown: give the task type "
                              f"({', '.join(DEFAULT_ARCHITECTURE)}) or the architecture "
                              f"({', '.join(sorted(TASK_TYPES))})")
    if architecture not in TASK_TYPES:
        raise CheckpointError(f"{where}: unknown architecture {architecture!r} "
                              f"(known: {', '.join(sorted(TASK_TYPES))})")
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


def build(spec: dict, state_dict: dict, where: str = "checkpoint"):
    """The model of spec with state_dict loaded (strict); CheckpointError when they do not fit."""
    from vtm_tui.core.standard.architectures import build_model

    model = build_model(spec["architecture"], spec["num_classes"], spec["image_size"])
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: its weights do not fit {spec['architecture']}"
                              f"(num_classes={spec['num_classes']}): {_clean(exc, 400)}") from None
    return model


def convert_to_standard(src: str | Path, dst: str | Path, *, task_type: str | None = None,
                        num_classes: int | None = None, architecture: str | None = None,
                        image_size: int | None = None) -> dict:
    """Write the Torch Standard file for a checkpoint; returns its metadata (no tensors).

    The weights are checked by building the model and loading them strictly, so a standard file
    always loads."""
    import torch

    src = Path(src)
    obj = safe_load(src)
    spec = resolve_spec(describe(obj), task_type=task_type, architecture=architecture,
                        num_classes=num_classes, image_size=image_size, where=str(src))
    state = {k: v.detach().to("cpu").contiguous() for k, v in state_dict_of(obj, str(src)).items()}
    build(spec, state, str(src))
    torch.save({"format": STANDARD_FORMAT, **spec, "state_dict": state}, Path(dst))
    return {"format": STANDARD_FORMAT, **spec}


def _pick_file(path: Path) -> Path:
    """A pulled bundle folder stands for its standard file, else its checkpoint."""
    if not path.is_dir():
        return path
    for name in (STANDARD_FILE, "checkpoint.pth", "checkpoint.pt"):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{path}: no {STANDARD_FILE} or checkpoint.pth/.pt in this folder")


def pick_device(device=None):
    """A torch.device: cuda when available for None or "auto", else the one named;
    CheckpointError when cuda is asked for and absent."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("CUDA was asked for but is not available on this machine")
    return device


def load_model(path: str | Path, architecture: str | None = None, num_classes: int | None = None,
               image_size: int | None = None, device=None, *, task_type: str | None = None):
    """(model in eval mode on device, meta) from a standard file, a vtm checkpoint, a plain
    state-dict checkpoint (give architecture or task_type, and num_classes), or a pulled bundle
    folder. device: None picks CUDA when available."""
    path = _pick_file(Path(path))
    obj = safe_load(path)
    meta = describe(obj)
    spec = resolve_spec(meta, task_type=task_type, architecture=architecture, num_classes=num_classes,
                        image_size=image_size, where=str(path))
    model = build(spec, state_dict_of(obj, str(path)), str(path))
    target = pick_device(device)
    model = model.to(target).eval()
    info = {**spec, "format": meta.get("format") or "state_dict", "path": str(path), "device": str(target)}
    for key in ("metric", "epoch", "mlflow_run_id"):
        if key in meta:
            info[key] = meta[key]
    return model, info
