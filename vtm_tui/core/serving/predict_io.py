"""Inputs and outputs of a prediction, shared by the native (/invocations) and local paths.

Inputs: an image file (PNG/JPEG, resized to the model's input size, RGB scaled to [0, 1] like
the training data), a `.npy` array or a `.pt` tensor (read with weights_only), or random data.
Outputs: classification -> top-k classes with probabilities; segmentation -> per-class pixel
share, a PNG mask on disk and a small preview grid of class indices.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    import numpy as np

    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def class_name(names: list[str] | None, index: int) -> str:
    return names[index] if names and index < len(names) else f"class {index}"


def summarize(task_type: str, outputs, class_names: list[str] | None = None, *, top_k: int = 3,
              mask_path: str | Path | None = None) -> dict:
    """Turn raw model outputs (logits) of the first sample into a readable, JSON-able result."""
    import numpy as np

    logits = np.asarray(outputs, dtype=np.float64)
    if task_type == "classification":
        if logits.ndim != 2:
            raise UserError(f"expected classification outputs of shape (N, classes), got {logits.shape}")
        probs = softmax(logits, axis=1)[0]
        order = np.argsort(-probs, kind="stable")[:top_k]
        return {"task_type": task_type,
                "top": [{"class": class_name(class_names, int(i)), "index": int(i),
                         "probability": float(probs[i])} for i in order],
                "scores": logits[0].tolist()}
    if task_type == "segmentation":
        if logits.ndim != 4:
            raise UserError(f"expected segmentation outputs of shape (N, classes, H, W), got {logits.shape}")
        mask = logits[0].argmax(axis=0)
        counts = np.bincount(mask.ravel(), minlength=logits.shape[1])
        result = {"task_type": task_type,
                  "shares": [{"class": class_name(class_names, i), "index": i,
                              "share": float(count / mask.size)} for i, count in enumerate(counts)],
                  "preview": preview(mask).tolist()}
        if mask_path:
            result["mask_path"] = str(write_mask(mask, Path(mask_path)))
        return result
    raise UserError(f"unknown task type {task_type!r} (classification or segmentation)")


def preview(mask: np.ndarray, size: tuple[int, int] = PREVIEW_SIZE) -> np.ndarray:
    """Nearest-neighbour downsample of a class-index mask to a small grid for the terminal."""
    import numpy as np

    rows = np.linspace(0, mask.shape[0] - 1, min(size[0], mask.shape[0])).round().astype(int)
    cols = np.linspace(0, mask.shape[1] - 1, min(size[1], mask.shape[1])).round().astype(int)
    return mask[np.ix_(rows, cols)]


def write_mask(mask: np.ndarray, path: Path) -> Path:
    import numpy as np
    from PIL import Image

    palette = np.array([PALETTE[i % len(PALETTE)] for i in range(int(mask.max()) + 1)], dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(palette[mask]).save(tmp, format="PNG")
    tmp.replace(path)  # never a half-written PNG under the final name
    return path


def predict_local(model, inputs: np.ndarray) -> np.ndarray:
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


def result_lines(result: dict) -> list[str]:
    """A prediction as a small table, with where it came from (what `vtm predict` prints)."""
    lines = [f"served by: {result['served_by']}" + (f" ({result['source']})" if result.get("source") else "")]
    lines += [f"  skipped {note}" for note in result.get("skipped", [])]
    if result["task_type"] == "classification":
        lines += [f"  {row['class']:<20} {row['probability']:.4f}" for row in result["top"]]
    else:
        lines += [f"  {row['class']:<20} {row['share']:.1%} of pixels" for row in result["shares"]]
        if result.get("mask_path"):
            lines.append(f"  mask: {result['mask_path']}")
    return lines
