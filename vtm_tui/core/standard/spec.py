"""The input/output spec of a Torch Standard v2 program: what a caller must feed it and how to read
what comes back, so that predicting on a PNG matches what training fed the model.

    ModelSpec(task_type="segmentation", input_shape=(3, 64, 64), mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), output_key="out", num_classes=21, class_names=[...])

Preprocessing of an image (torchvision's ToTensor + Normalize convention): decode, convert to the
channel order (RGB or BGR), resize to `resize` (H, W; default the input's H, W), centre-crop to
the input's H, W, scale the 8-bit values to [0, 1], then `(x - mean) / std` per channel, as
`input_dtype`. Arrays (.npy, .pt) are model inputs already and are fed as they are.

Outputs: a tensor, or a dict whose `output_key` holds it (torchvision segmentation's "out");
`output_kind` says whether the values are logits or probabilities. Classification outputs are
(N, num_classes), segmentation outputs (N, num_classes, H, W).

The spec travels as JSON (to_json / from_json): inside the .pt2 as the extra file
`vtm_spec.json`, in bundle.json and in the registry manifest. No torch at import time.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from vtm_tui.errors import UserError

STANDARD_V2_FORMAT = "vtm-standard-v2"
SPEC_FILE = "vtm_spec.json"  # the extra file inside model-standard.pt2
TASK_TYPES = ("classification", "segmentation")
OUTPUT_KINDS = ("logits", "probabilities")
CHANNEL_ORDERS = ("RGB", "BGR")
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64")


class SpecError(UserError):
    """A spec field that is missing, malformed or contradicts the model (exit code 2)."""


def parse_ints(text: str, name: str, count: int | None = None) -> tuple[int, ...]:
    """`"3,32,32"` (or `3x32x32`) -> (3, 32, 32): positive integers; SpecError naming `name`
    (the option, e.g. --input-shape) otherwise."""
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts) or (count and len(parts) != count):
        shape = ",".join(["N"] * count) if count else "N,N,..."
        raise SpecError(f"{name} expects {count or 'several'} positive integers like {shape}, got {text!r}")
    return tuple(int(p) for p in parts)


def parse_floats(text: str, name: str) -> tuple[float, ...]:
    """`"0.485,0.456,0.406"` -> floats; SpecError naming `name` otherwise."""
    try:
        values = tuple(float(p) for p in str(text).split(","))
    except ValueError:
        raise SpecError(f"{name} expects numbers separated by commas, got {text!r}") from None
    return values


def parse_json_object(text: str | None, name: str) -> dict:
    """A JSON object given on the command line (e.g. --arch-kwargs '{"num_classes": 5}'); {} for
    None or empty; SpecError naming `name` otherwise."""
    if text in (None, ""):
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SpecError(f"{name}: expected a JSON object like {{\"num_classes\": 5}}, got {text!r}")
    return value


@dataclass
class ModelSpec:
    """What a standard program takes and gives (see the module docstring for the meaning).

    task_type: classification | segmentation; input_shape: (C, H, W) of one sample;
    input_dtype: a torch float dtype name; channel_order: RGB | BGR; resize: (H, W) an image is
    resized to before the centre crop (None: the input's H, W); mean/std: one value per channel,
    applied after scaling pixels to [0, 1]; output_kind: logits | probabilities; output_key: the
    dict key holding the output (None: the program returns a tensor); num_classes: the output's
    class dimension; class_names: one per class; architecture and arch_kwargs: where the network
    came from (informational: a loader never imports it)."""
    task_type: str
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    input_dtype: str = "float32"
    channel_order: str = "RGB"
    resize: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    output_kind: str = "logits"
    output_key: str | None = None
    architecture: str | None = None
    arch_kwargs: dict = field(default_factory=dict)
    format: str = STANDARD_V2_FORMAT

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(v) for v in self.input_shape)
        self.resize = tuple(int(v) for v in self.resize) if self.resize else None
        self.mean = tuple(float(v) for v in self.mean) if self.mean is not None else None
        self.std = tuple(float(v) for v in self.std) if self.std is not None else None
        self.class_names = [str(c) for c in self.class_names] or [f"class_{i}" for i in range(int(self.num_classes))]
        self.num_classes = int(self.num_classes)
        self.check()

    def check(self) -> None:
        """SpecError for a field out of its range (task type, shape, dtype, channel order, output
        kind, mean/std length and sign, class name count)."""
        def bad(what: str) -> SpecError:
            return SpecError(f"model spec: {what}")

        if self.task_type not in TASK_TYPES:
            raise bad(f"task type {self.task_type!r} is not one of {', '.join(TASK_TYPES)}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise bad(f"input shape {self.input_shape} is not C,H,W of positive integers")
        if self.input_dtype not in INPUT_DTYPES:
            raise bad(f"input dtype {self.input_dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise bad(f"channel order {self.channel_order!r} is not one of {', '.join(CHANNEL_ORDERS)}")
        if self.output_kind not in OUTPUT_KINDS:
            raise bad(f"output kind {self.output_kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise bad(f"resize {self.resize} is not H,W of positive integers")
        channels = self.input_shape[0]
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) not in (1, channels):
                raise bad(f"{name} has {len(value)} values; give 1 or one per channel ({channels})")
        if self.std is not None and any(v <= 0 for v in self.std):
            raise bad("std values must be positive")
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            raise bad(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the model's input."""
        return self.input_shape[1], self.input_shape[2]

    def to_json(self) -> dict:
        """A JSON object of every field (tuples as lists), the form stored in vtm_spec.json,
        bundle.json and the manifest."""
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict, where: str = "spec") -> "ModelSpec":
        """The spec of a JSON object written by to_json (unknown keys are ignored, so a newer
        writer's extra fields do not break an older reader); SpecError naming `where`."""
        if not isinstance(data, dict):
            raise SpecError(f"{where}: the model spec is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: malformed model spec ({exc})") from None

    def describe(self) -> str:
        """One line for people: `classification 3x32x32 float32 RGB, mean [..] std [..] -> logits
        (5 classes)`."""
        text = f"{self.task_type} {'x'.join(map(str, self.input_shape))} {self.input_dtype} {self.channel_order}"
        if self.resize and tuple(self.resize) != self.image_size:
            text += f", resize {self.resize[0]}x{self.resize[1]} + centre crop"
        if self.mean is not None or self.std is not None:
            text += f", mean {list(self.mean or (0.0,))} std {list(self.std or (1.0,))}"
        out = self.output_kind + (f"[{self.output_key!r}]" if self.output_key else "")
        return f"{text} -> {out} ({self.num_classes} classes)"


@dataclass
class ConvertRequest:
    """What a user tells a conversion (the CLI's --task, --num-classes, --arch, --arch-kwargs,
    --input-shape, --class-names, --mean, --std, --channel-order, --resize, --output-key,
    --output-kind, --allow-pickle, --trust-torchscript; a catalog task's `model:` block). None:
    take it from the file, the architecture's defaults or the program's outputs.

    architecture: `MODULE_OR_FILE:CALLABLE` (e.g. `torchvision.models:resnet50` or
    `./models.py:UNet`, a file relative to base_dir) or an example name (SmallCNN, TinySegNet).
    allow_pickle: an MLflow model in the pickle format may be loaded (this runs the file's code).
    trust_torchscript: a TorchScript file may be loaded with torch.jit.load to convert it (this
    runs the file's code); only the caller sets it, never a catalog's defaults."""
    task_type: str | None = None
    num_classes: int | None = None
    architecture: str | None = None
    arch_kwargs: dict = field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None
    class_names: list[str] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str | None = None
    resize: tuple[int, int] | None = None
    output_key: str | None = None
    output_kind: str | None = None
    input_dtype: str | None = None
    allow_pickle: bool = False
    trust_torchscript: bool = False
    base_dir: str | None = None  # where a relative architecture file is looked up (default: cwd)

    def merged(self, defaults: "ConvertRequest | None") -> "ConvertRequest":
        """This request with its unset fields (None, empty) taken from `defaults` (a catalog
        task's model block); allow_pickle stays this request's unless unset; base_dir is the one of
        whichever request the architecture comes from (a block's file is relative to its catalog);
        trust_torchscript is only ever this request's."""
        if defaults is None:
            return self
        values = {}
        for f in dataclasses.fields(self):
            mine = getattr(self, f.name)
            values[f.name] = mine if mine not in (None, {}, []) else getattr(defaults, f.name)
        values["allow_pickle"] = self.allow_pickle or defaults.allow_pickle
        if not self.architecture and defaults.architecture:
            values["base_dir"] = defaults.base_dir or self.base_dir
        values["trust_torchscript"] = self.trust_torchscript
        return ConvertRequest(**values)

    def spec_fields(self) -> dict:
        """The ModelSpec fields this request sets (for building a spec over inferred values)."""
        keys = ("task_type", "num_classes", "input_shape", "class_names", "mean", "std", "channel_order",
                "resize", "output_key", "output_kind", "input_dtype")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def select_output(value, key: str | None, where: str = "the model"):
    """The output tensor of a model's result: the tensor itself, or `value[key]` of a dict (or of
    a tuple/list, key a decimal index). Without a key a dict gives its "out" (torchvision's
    segmentation models) or its only entry. SpecError naming the keys when that is ambiguous."""
    import torch

    if isinstance(value, torch.Tensor):
        if key is not None:
            raise SpecError(f"{where} returns a tensor, not a dict: drop the output key {key!r}")
        return value
    if isinstance(value, dict):
        keys = [str(k) for k in value]
        if key is None:
            key = "out" if "out" in value else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise SpecError(f"{where} returns a dict with keys {', '.join(keys)}: name the one to use "
                                f"with --output-key")
        if key not in value:
            raise SpecError(f"{where} returns a dict without {key!r} (its keys: {', '.join(keys)})")
        chosen = value[key]
    elif isinstance(value, (tuple, list)):
        if key is None or not str(key).isdigit() or int(key) >= len(value):
            raise SpecError(f"{where} returns {len(value)} outputs: name the one to use with --output-key 0..."
                            f"{len(value) - 1}")
        chosen = value[int(key)]
    else:
        raise SpecError(f"{where} returns {type(value).__name__}, not a tensor or a dict of tensors")
    if not isinstance(chosen, torch.Tensor):
        raise SpecError(f"{where}: output {key!r} is {type(chosen).__name__}, not a tensor")
    return chosen


def output_key_of(value, key: str | None) -> str | None:
    """The key select_output uses for `value` (None for a tensor output)."""
    import torch

    if isinstance(value, torch.Tensor):
        return None
    if isinstance(value, dict) and key is None:
        return "out" if "out" in value else next(iter(value), None)
    return key
