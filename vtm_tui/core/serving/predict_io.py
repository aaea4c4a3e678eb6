"""Outputs of a prediction, shared by the native (/invocations) and local paths (inputs are
inputs.py's).

A Prediction: classification -> top-k classes with probabilities (softmax of the logits, or the
outputs themselves when the model gives probabilities) and the raw outputs; segmentation ->
per-class pixel share, a PNG mask on disk and a small preview grid of class indices; both for
the first sample, plus one SampleResult per sample of a batch. It says which path served it, what
was skipped, and, locally, which program ran with which spec.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from vtm_tui.core.serving.inputs import IMAGE_SUFFIXES
from vtm_tui.errors import UserError

# numpy is imported inside the functions: the Serving tab imports PALETTE at start-up.
if TYPE_CHECKING:
    import numpy as np

# One colour per class index for masks and previews (background first).
PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]
PREVIEW_SIZE = (12, 24)  # rows, columns of the preview grid


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
class SampleResult:
    """One sample of a batch: its input name; classification: the best class and its
    probability; segmentation: the largest class other than the first (background) by pixel
    share, every class's share, and where its mask PNG went."""
    input: str
    top: ClassProbability | None = None
    shares: list[ClassShare] = field(default_factory=list)
    mask_path: str | None = None

    def to_json(self) -> dict:
        """{"input", and "top" or "shares" (+ "mask_path")}: a row of `vtm predict --json`'s samples."""
        data: dict[str, Any] = {"input": self.input}
        if self.top is not None:
            data["top"] = self.top.to_json()
        else:
            data["shares"] = [row.to_json() for row in self.shares]
            if self.mask_path:
                data["mask_path"] = self.mask_path
        return data

    def line(self) -> str:
        """`cat.png  red 0.9132` or `a.png  circle 12.5% of pixels (mask: masks/a.png)`."""
        if self.top is not None:
            return f"{self.input:<24} {self.top.name:<20} {self.top.probability:.4f}"
        main = max(self.shares[1:] or self.shares, key=lambda row: row.share)
        mask = f" (mask: {self.mask_path})" if self.mask_path else ""
        return f"{self.input:<24} {main.name:<20} {main.share:.1%} of pixels{mask}"


@dataclass(frozen=True)
class Prediction:
    """One prediction (of the first sample of the input batch) and where it came from.

    task_type: classification or segmentation. Classification: `top` (the top_k most probable
    classes, best first) and `scores` (the raw outputs, one per class). Segmentation: `shares` (one
    row per class), `preview` (at most 12 x 24 class indices, nearest-neighbour) and `mask_path`
    (the PNG mask, when one was asked for). served_by: `native` (a model server) or `local` (the
    registry bundle run here); source: the server's URL or the registry version; skipped: why the
    other path was not taken; samples: one SampleResult per sample (a batch: more than one);
    program: the program that ran locally (file, kind, format, device, spec, spec_line,
    conversion), None for a server.

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
    samples: list[SampleResult] = field(default_factory=list)
    program: dict | None = None  # local path: LoadedProgram.to_json() (file, kind, format, device, spec, ...)

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
        data = {**data, "served_by": self.served_by, "source": self.source, "skipped": list(self.skipped)}
        if self.program is not None:
            data["program"] = self.program
        if len(self.samples) > 1:
            data["samples"] = [sample.to_json() for sample in self.samples]
        return data

    def lines(self) -> list[str]:
        """A small table, with where it came from: what `vtm predict` and a script step print."""
        lines = [f"served by: {self.served_by}" + (f" ({self.source})" if self.source else "")]
        lines += [f"  skipped {note}" for note in self.skipped]
        if self.program:
            lines.append(f"  program: {self.program.get('file')} ({self.program.get('format')}) on "
                         f"{self.program.get('device')}")
            if self.program.get("spec_line"):
                lines.append(f"  spec: {self.program['spec_line']}")
        if len(self.samples) > 1:
            return lines + [f"  {sample.line()}" for sample in self.samples]
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
              mask_path: str | Path | None = None, output_kind: str = "logits",
              names: list[str] | None = None) -> Prediction:
    """Read raw model outputs ((N, classes) or (N, classes, H, W); logits unless output_kind is
    "probabilities"): a Prediction of the first sample plus one SampleResult per sample, without
    its origin (served_by, source, skipped, program are the caller's). Segmentation masks go to
    mask_path as PNG: the file itself for one sample; for a batch, a folder of `<input>.png`
    (mask_path, or mask_path without its .png suffix).
    UserError for outputs of another shape."""
    import numpy as np

    outputs = np.asarray(outputs, dtype=np.float64)
    names = names or [f"sample {i}" for i in range(len(outputs))]
    return summarize_chunks(task_type, [outputs], class_names, top_k=top_k, mask_path=mask_path,
                            output_kind=output_kind, names=names)


def summarize_chunks(task_type: str, chunks: Iterable, class_names: list[str] | None = None, *, top_k: int = 3,
                     mask_path: str | Path | None = None, output_kind: str = "logits",
                     names: list[str]) -> Prediction:
    """summarize() over outputs that come a chunk at a time (each (n, classes) or (n, classes,
    H, W), in sample order; `names` has one name per sample of all chunks): each chunk is read
    into its SampleResults (and mask PNGs) and let go before the next, so only the rows are kept."""
    import numpy as np

    samples: list[SampleResult] = []
    first: Prediction | None = None
    batch_folder = Path(mask_path).with_suffix("") if mask_path and Path(mask_path).suffix == ".png" else (
        Path(mask_path) if mask_path else None)
    for chunk in chunks:
        logits = np.asarray(chunk, dtype=np.float64)
        if task_type == "classification":
            if logits.ndim != 2:
                raise UserError(f"expected classification outputs of shape (N, classes), got {logits.shape}")
            probs = logits if output_kind == "probabilities" else softmax(logits, axis=1)
            if first is None and len(probs):
                order = np.argsort(-probs[0], kind="stable")[:top_k]
                first = Prediction(task_type, top=[ClassProbability(class_name(class_names, int(i)), int(i),
                                                                    float(probs[0][i])) for i in order],
                                   scores=logits[0].tolist())
            for row in probs:
                best = int(np.argmax(row))
                samples.append(SampleResult(names[len(samples)], top=ClassProbability(
                    class_name(class_names, best), best, float(row[best]))))
        elif task_type == "segmentation":
            if logits.ndim != 4:
                raise UserError(f"expected segmentation outputs of shape (N, classes, H, W), got {logits.shape}")
            masks = logits.argmax(axis=1)
            for mask in masks:
                i = len(samples)
                counts = np.bincount(mask.ravel(), minlength=logits.shape[1])
                shares = [ClassShare(class_name(class_names, c), c, float(n / mask.size))
                          for c, n in enumerate(counts)]
                written = None
                if mask_path:
                    target = Path(mask_path) if len(names) == 1 else batch_folder / mask_file_name(names[i], i)
                    written = str(write_mask(mask, target))
                samples.append(SampleResult(names[i], shares=shares, mask_path=written))
                if first is None:
                    first = Prediction(task_type, preview=preview(mask).tolist())
        else:
            raise UserError(f"unknown task type {task_type!r} (classification or segmentation)")
    if first is None:
        raise UserError("the model gave no outputs (an empty batch)")
    if task_type == "segmentation":
        return dataclasses.replace(first, shares=samples[0].shares, mask_path=samples[0].mask_path, samples=samples)
    return dataclasses.replace(first, samples=samples)


def mask_file_name(name: str, index: int) -> str:
    """The PNG name of a batch sample's mask: `img3.png` for an image input `img3.jpg`,
    `x.npy[3].png` for an array sample; path separators replaced."""
    stem = name.rsplit(".", 1)[0] if name.lower().endswith(IMAGE_SUFFIXES) else name
    return (stem.replace("/", "_").replace("\\", "_") or str(index)) + ".png"


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


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """`--shape C,H,W` (or CxHxW) -> (C, H, W); None for None; UserError otherwise."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise UserError(f"--shape expects C,H,W such as 3,32,32, got {text!r}")
    return tuple(int(part) for part in parts)
