"""Inputs and outputs of a prediction, shared by the native (/invocations) and local paths.

Inputs: an image file (PNG/JPEG, resized to the model's input size, RGB scaled to [0, 1] like
the training data), a `.npy` array or a `.pt` tensor (read with weights_only), or random data.
Outputs: a Prediction. Classification -> top-k classes with probabilities (softmax of the
logits) and the raw logits; segmentation -> per-class pixel share, a PNG mask on disk and a small
preview grid of class indices. Both say which path served them and what was skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vtm_tui.errors import UserError

# numpy is imported inside the functions: the Serving tab imports PALETTE at start-up.
if TYPE_CHECKING:
    import numpy as np

# One colour per class index for masks and previews (background first).
PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]
PREVIEW_SIZE = (12, 24)  # rows, columns of the preview grid


def load_input(source: str | None, shape: tuple[int, int, int], *, random: bool = False,
               seed: int = 0) -> np.ndarray:
    """A float32 batch (N, C, H, W) for a model taking `shape` = (C, H, W)."""
    import numpy as np

    channels, height, width = shape
    if random or source is None:
        if not random:
            raise UserError("give an input file (--input PATH) or --random")
        return np.random.default_rng(seed).random((1, channels, height, width), dtype=np.float32)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"input {source}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UserError(f"input {source}: not a plain numeric .npy array ({exc})") from None
    elif suffix in (".pt", ".pth"):
        from vtm_tui.core.standard.loader import safe_load

        tensor = safe_load(path)
        if not hasattr(tensor, "numpy"):
            raise UserError(f"input {source}: expected a tensor, found {type(tensor).__name__}")
        array = tensor.detach().cpu().numpy()
    elif suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
        array = _image(path, width, height)
    else:
        raise UserError(f"input {source}: unsupported type {suffix or '(none)'}; "
                        "use an image (PNG/JPEG), .npy or .pt")
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == len(shape):
        array = array[None]
    if array.shape[1:] != tuple(shape):
        raise UserError(f"input {source}: shape {tuple(array.shape)} does not match the model's "
                        f"input (N, {channels}, {height}, {width})")
    return array


def _image(path: Path, width: int, height: int) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((width, height), Image.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"input {path}: not a readable image ({exc})") from None
    return np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Softmax of logits along `axis` (shifted by the max, so large logits do not overflow)."""
    import numpy as np

    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def class_name(names: list[str] | None, index: int) -> str:
    """The name of class `index` from the model's class names, else `class N`."""
    return names[index] if names and index < len(names) else f"class {index}"


@dataclass(frozen=True)
class ClassProbability:
    """A classification row: class name (or `class N`), index, softmax probability in [0, 1]."""
    name: str
    index: int
    probability: float

    def to_json(self) -> dict:
        """{"class", "index", "probability"}: the `vtm predict --json` row."""
        return {"class": self.name, "index": self.index, "probability": self.probability}


@dataclass(frozen=True)
class ClassShare:
    """A segmentation row: class name (or `class N`), index, share of the mask's pixels in [0, 1]."""
    name: str
    index: int
    share: float

    def to_json(self) -> dict:
        """{"class", "index", "share"}: the `vtm predict --json` row."""
        return {"class": self.name, "index": self.index, "share": self.share}


@dataclass(frozen=True)
class Prediction:
    """One prediction (of the first sample of the input batch) and where it came from.

    task_type: classification or segmentation. Classification: `top` (the top_k most probable
    classes, best first) and `scores` (the raw logits, one per class). Segmentation: `shares` (one
    row per class), `preview` (at most 12 x 24 class indices, nearest-neighbour) and `mask_path`
    (the PNG mask, when one was asked for). served_by: `native` (a model server) or `local` (the
    registry bundle run here); source: the server's URL or the registry version; skipped: why the
    other path was not taken.

    Mapping access (`prediction["top"]`, `.get("mask_path")`) reads `to_json()`: the Serving tab
    shows predictions and its pinned demo's plain dicts alike."""
    task_type: str
    top: list[ClassProbability] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    shares: list[ClassShare] = field(default_factory=list)
    preview: list[list[int]] = field(default_factory=list)
    mask_path: str | None = None
    served_by: str = ""
    source: str = ""
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """What `vtm predict --json` prints, key for key in this order."""
        if self.task_type == "classification":
            data: dict[str, Any] = {"task_type": self.task_type, "top": [row.to_json() for row in self.top],
                                    "scores": list(self.scores)}
        else:
            data = {"task_type": self.task_type, "shares": [row.to_json() for row in self.shares],
                    "preview": self.preview}
            if self.mask_path:
                data["mask_path"] = self.mask_path
        return {**data, "served_by": self.served_by, "source": self.source, "skipped": list(self.skipped)}

    def lines(self) -> list[str]:
        """A small table, with where it came from: what `vtm predict` and a script step print."""
        lines = [f"served by: {self.served_by}" + (f" ({self.source})" if self.source else "")]
        lines += [f"  skipped {note}" for note in self.skipped]
        if self.task_type == "classification":
            lines += [f"  {row.name:<20} {row.probability:.4f}" for row in self.top]
        else:
            lines += [f"  {row.name:<20} {row.share:.1%} of pixels" for row in self.shares]
            if self.mask_path:
                lines.append(f"  mask: {self.mask_path}")
        return lines

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """to_json()'s value for key, else default (mapping access, see the class docstring)."""
        return self.to_json().get(key, default)


def summarize(task_type: str, outputs, class_names: list[str] | None = None, *, top_k: int = 3,
              mask_path: str | Path | None = None) -> Prediction:
    """Read raw model outputs (logits: (N, classes) or (N, classes, H, W)) of the first sample:
    a Prediction without its origin (served_by, source, skipped are the caller's). Writes the
    PNG mask to mask_path for segmentation. UserError for outputs of another shape."""
    import numpy as np

    logits = np.asarray(outputs, dtype=np.float64)
    if task_type == "classification":
        if logits.ndim != 2:
            raise UserError(f"expected classification outputs of shape (N, classes), got {logits.shape}")
        probs = softmax(logits, axis=1)[0]
        order = np.argsort(-probs, kind="stable")[:top_k]
        return Prediction(task_type, top=[ClassProbability(class_name(class_names, int(i)), int(i), float(probs[i]))
                                          for i in order], scores=logits[0].tolist())
    if task_type == "segmentation":
        if logits.ndim != 4:
            raise UserError(f"expected segmentation outputs of shape (N, classes, H, W), got {logits.shape}")
        mask = logits[0].argmax(axis=0)
        counts = np.bincount(mask.ravel(), minlength=logits.shape[1])
        return Prediction(task_type, shares=[ClassShare(class_name(class_names, i), i, float(count / mask.size))
                                             for i, count in enumerate(counts)], preview=preview(mask).tolist(),
                          mask_path=str(write_mask(mask, Path(mask_path))) if mask_path else None)
    raise UserError(f"unknown task type {task_type!r} (classification or segmentation)")


def preview(mask: np.ndarray, size: tuple[int, int] = PREVIEW_SIZE) -> np.ndarray:
    """Nearest-neighbour downsample of a class-index mask to a small grid for the terminal."""
    import numpy as np

    rows = np.linspace(0, mask.shape[0] - 1, min(size[0], mask.shape[0])).round().astype(int)
    cols = np.linspace(0, mask.shape[1] - 1, min(size[1], mask.shape[1])).round().astype(int)
    return mask[np.ix_(rows, cols)]


def write_mask(mask: np.ndarray, path: Path) -> Path:
    """Write a class-index mask (H, W) as a palette-coloured RGB PNG at `path` (through a .part
    file, so the final name never holds half a PNG); returns the path."""
    import numpy as np
    from PIL import Image

    palette = np.array([PALETTE[i % len(PALETTE)] for i in range(int(mask.max()) + 1)], dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(palette[mask]).save(tmp, format="PNG")
    tmp.replace(path)  # never a half-written PNG under the final name
    return path


def predict_local(model, inputs: np.ndarray) -> np.ndarray:
    """Run a torch model on a float32 batch (N, C, H, W) on the model's device, without
    gradients; returns its outputs as a numpy array."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return model(torch.from_numpy(inputs).to(device)).cpu().numpy()


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """`--shape C,H,W` (or CxHxW) -> (C, H, W); None for None; UserError otherwise."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise UserError(f"--shape expects C,H,W such as 3,32,32, got {text!r}")
    return tuple(int(part) for part in parts)
