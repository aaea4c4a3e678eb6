"""The model spec rows of the Registry tab's publish, publish-best and convert dialogs: the network
(`MODULE_OR_FILE:CALLABLE` and its keyword arguments) and the input/output spec (input shape,
class names, mean / std, output key), read into core's ConvertRequest, and the switch that
allows converting a TorchScript file (torch.jit.load runs its code; off each time a dialog opens).

Empty fields are left to the file (vtm's checkpoints say what they are), the catalog task's
`model:` block, or the model's own outputs; a malformed one is a ValueError the dialog shows.
"""
from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Switch

# (key, label, placeholder): the rows, in order
SPEC_ROWS = (
    ("arch", "  architecture", "MODULE_OR_FILE:CALLABLE, e.g. ./models.py:UNet"),
    ("arch_kwargs", "  arch kwargs", 'JSON, e.g. {"num_classes": 5}'),
    ("input_shape", "  input shape", "C,H,W, e.g. 3,224,224"),
    ("class_names", "  class names", "comma-separated"),
    ("mean", "  mean", "per channel, of pixels in [0, 1]"),
    ("std", "  std", "per channel"),
    ("output_key", "  output key", "of a dict output (default: out)"),
)


def field_row(label: str, control: Widget) -> Horizontal:
    """A dialog row: a fixed-width label and its control."""
    return Horizontal(Label(label, classes="dialog-label"), control, classes="dialog-row")


class SpecFields(Vertical):
    """The spec rows; `values` (key -> text) fills them, `fallback` is what an empty field means
    (shown as the placeholder's prefix), `prefix` makes the ids unique: `{prefix}-arch`, ..."""

    DEFAULT_CSS = "SpecFields { height: auto; }"

    def __init__(self, prefix: str, values: dict[str, str] | None = None, fallback: str = "from the file",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix, self.values, self.fallback = prefix, dict(values or {}), fallback

    def compose(self) -> ComposeResult:
        for key, label, hint in SPEC_ROWS:
            placeholder = f"{self.fallback}; {hint}" if key in ("arch", "input_shape") else hint
            yield field_row(label, Input(self.values.get(key, ""), placeholder=placeholder, compact=True,
                                         id=f"{self.prefix}-{key.replace('_', '-')}"))
        yield field_row("  trust TorchScript", Switch(False, id=f"{self.prefix}-trust-torchscript",
                                                     tooltip="converting a TorchScript file runs its code: "
                                                             "only for files you trust"))

    def field(self, key: str) -> Input:
        """The Input of a row (key as in SPEC_ROWS)."""
        return self.query_one(f"#{self.prefix}-{key.replace('_', '-')}", Input)

    def texts(self) -> dict[str, str]:
        """key -> the text typed (stripped), for the dialog to remember."""
        return {key: self.field(key).value.strip() for key, _, _ in SPEC_ROWS}

    def trusts_torchscript(self) -> bool:
        """The trust-TorchScript switch: a TorchScript file may be converted (runs its code)."""
        return self.query_one(f"#{self.prefix}-trust-torchscript", Switch).value

    def set_enabled(self, enabled: bool) -> None:
        """Enable the rows and the switch (conversion on) or grey them out."""
        for key, _, _ in SPEC_ROWS:
            self.field(key).disabled = not enabled
        self.query_one(f"#{self.prefix}-trust-torchscript", Switch).disabled = not enabled

    def request(self, base_dir, *, task_type: str | None = None, num_classes: int | None = None):
        """A core.standard ConvertRequest of the rows (a relative architecture file is looked up
        from base_dir); ValueError with the message of a malformed field."""
        from vtm_tui.core.standard.spec import ConvertRequest, SpecError, parse_floats, parse_ints, parse_json_object

        text = self.texts()
        try:
            return ConvertRequest(
                task_type=task_type, num_classes=num_classes, architecture=text["arch"] or None,
                arch_kwargs=parse_json_object(text["arch_kwargs"], "arch kwargs"),
                input_shape=parse_ints(text["input_shape"], "input shape", 3) if text["input_shape"] else None,
                class_names=[n.strip() for n in text["class_names"].split(",")] if text["class_names"] else None,
                mean=parse_floats(text["mean"], "mean") if text["mean"] else None,
                std=parse_floats(text["std"], "std") if text["std"] else None,
                output_key=text["output_key"] or None, trust_torchscript=self.trusts_torchscript(),
                base_dir=str(base_dir))
        except SpecError as exc:
            raise ValueError(str(exc)) from None


def spec_texts(manifest) -> dict[str, str]:
    """The rows' texts for a registry version: its architecture when it names a callable, and
    its recorded spec's shape, classes, mean/std and output key."""
    spec = manifest.spec or {}
    arch = spec.get("architecture") or manifest.architecture or ""

    def joined(values) -> str:
        return ",".join(str(v) for v in values) if values else ""

    user_arch = ":" in arch  # vtm's examples need no architecture: their checkpoints say it
    return {"arch": arch if user_arch else "",
            "arch_kwargs": json.dumps(spec["arch_kwargs"]) if user_arch and spec.get("arch_kwargs") else "",
            "input_shape": joined(spec.get("input_shape")), "class_names": joined(spec.get("class_names")),
            "mean": joined(spec.get("mean")), "std": joined(spec.get("std")),
            "output_key": spec.get("output_key") or ""}
