"""torch.export for a Torch Standard v2 program, and the check that it computes what the model did.

Export: the model in eval mode, traced with `torch.export.export` on a fixed batch of 2 (a batch
of 1 would specialise the batch dimension to 1) with the batch dimension dynamic
(`Dim("batch", min=1)`). A model torch.export cannot trace raises ExportFailed with torch's
reason on one line.

Proof: the program and the reference (the eager model, or the program it was converted from) run
on the same fixed inputs, batches of 2 and 3 (the second proves the batch is dynamic); the largest
absolute difference over every output tensor is recorded and must stay below TOLERANCE.

Refused: a program with a training-mode batch norm (its outputs depend on the batch and it
updates running statistics on every call; `.eval()` cannot be applied to an ExportedProgram).

Format: https://pytorch.org/docs/stable/export.html (ExportedProgram, torch.export.save/load;
extra files are stored as text under `<archive>/extra/`).
"""
from __future__ import annotations

import io
import json
import logging
import time
import warnings
from contextlib import contextmanager, nullcontext, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtm_tui.core.standard.checkpoint import CheckpointError, clean
from vtm_tui.core.standard.spec import SPEC_FILE, ModelSpec

TOLERANCE = 1e-5
CONVERSION_FILE = "vtm_conversion.json"
EXAMPLE_SEED = 20240613
CHECK_BATCHES = (2, 3)


class ExportFailed(CheckpointError):
    """torch.export could not trace the model, or the program does not compute what the model
    did (exit code 2)."""


@dataclass
class Conversion:
    """What a conversion did and how well the program matches its source: source kind
    (checkpoint, lightning, torchscript, pt2, mlflow-pt2, mlflow-pickle, example), the largest
    absolute output difference on the check batches, the tolerance, the batch sizes checked,
    what had to be changed (notes), torch's version, and seconds taken (not stored in files)."""
    source: str
    max_abs_diff: float
    tolerance: float = TOLERANCE
    batches: list[int] = field(default_factory=lambda: list(CHECK_BATCHES))
    notes: list[str] = field(default_factory=list)
    torch_version: str = ""
    seconds: float = 0.0

    def to_json(self, *, with_seconds: bool = True) -> dict:
        """The manifest's `conversion` object (with_seconds False: the copy stored inside the
        .pt2, so the same model always gives the same bytes)."""
        data = {"source": self.source, "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance,
                "batches": list(self.batches), "notes": list(self.notes), "torch_version": self.torch_version}
        if with_seconds:
            data["seconds"] = round(self.seconds, 3)
        return data


@contextmanager
def quiet_torch(*, stderr: bool = False):
    """Silence torch's warnings and log records while exporting or loading (and, with stderr,
    what it prints there: a failed trace prints its partial graph); the reason vtm reports is
    one line. Loggers that torch creates meanwhile are not covered, so import torch first."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "torch" or name.startswith("torch.")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()) if stderr else nullcontext():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def example_batch(spec: ModelSpec, batch: int = 2, seed: int = EXAMPLE_SEED):
    """A fixed input batch (batch, C, H, W) of spec.input_dtype: seeded uniform pixels in [0, 1],
    normalised with the spec's mean and std, as an image would be."""
    import torch

    generator = torch.Generator().manual_seed(seed + batch)
    x = torch.rand((batch, *spec.input_shape), generator=generator)
    if spec.mean is not None:
        x = x - torch.tensor(spec.mean).view(-1, 1, 1)
    if spec.std is not None:
        x = x / torch.tensor(spec.std).view(-1, 1, 1)
    return x.to(getattr(torch, spec.input_dtype))


def export_model(model, spec: ModelSpec, *, name: str = "the model"):
    """The ExportedProgram of `model` (put in eval mode) for inputs of spec's shape with a
    dynamic batch; ExportFailed with torch's reason on one line."""
    import torch

    model.eval()
    x = example_batch(spec)
    try:
        with torch.no_grad(), quiet_torch(stderr=True):
            return torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as exc:
        raise ExportFailed(f"torch.export cannot trace {name}: {reason(exc)}") from None


def reason(exc: BaseException) -> str:
    """torch's reason for a failure, on one line: the first meaningful line of its message,
    prefixed by the exception's class name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    skip = ("Traceback", "File ", "For more information", "Set TORCH_LOGS", "from user code", "(Refer to")
    useful = [line for line in lines if not line.startswith(skip)]
    return f"{type(exc).__name__}: {clean(useful[0] if useful else repr(exc), 240)}"


def training_batch_norms(program) -> list[str]:
    """The nodes of an ExportedProgram that run batch norm in training mode (argument 5,
    `training`, true), by name; [] when none does."""
    found = []
    for node in program.graph.nodes:
        target = str(node.target)
        if node.op != "call_function" or "batch_norm" not in target or "no_training" in target:
            continue
        training = node.kwargs.get("training", node.args[5] if len(node.args) > 5 else False)
        if training is True:
            found.append(node.name)
    return found


def refuse_training_mode(program, where: str) -> None:
    """ExportFailed when the program has a training-mode batch norm (see the module docstring)."""
    nodes = training_batch_norms(program)
    if nodes:
        raise ExportFailed(f"{where}: the program was exported in training mode (batch norm {nodes[0]} uses "
                           f"batch statistics and updates its running statistics); export the model after "
                           f"model.eval()")


def tensors_of(value: Any) -> list:
    """Every tensor in an output (a tensor, or dicts/lists/tuples of them), in a fixed order."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in sorted(value, key=str) for t in tensors_of(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_of(item)]
    return []


def max_abs_diff(reference, program, spec: ModelSpec, batches=CHECK_BATCHES) -> float:
    """The largest absolute difference between the outputs of two callables on the fixed check
    batches (NaN where both are NaN counts as equal). ExportFailed when either fails or their
    outputs differ in structure or shape."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            x = example_batch(spec, batch)
            try:
                expected, got = tensors_of(reference(x)), tensors_of(program(x))
            except Exception as exc:
                raise ExportFailed(f"the program fails on a batch of {batch}: {reason(exc)}") from None
            shapes = [tuple(t.shape) for t in expected], [tuple(t.shape) for t in got]
            if not expected or shapes[0] != shapes[1]:
                raise ExportFailed(f"the program's outputs {shapes[1]} differ from the model's {shapes[0]} "
                                   f"on a batch of {batch}")
            for a, b in zip(expected, got, strict=True):
                a, b = a.detach().double().cpu(), b.detach().double().cpu()
                diff = (a - b).abs()
                diff[a.isnan() & b.isnan()] = 0.0
                value = float(diff.max()) if diff.numel() else 0.0
                if value != value:  # NaN: one side finite, the other not
                    raise ExportFailed("the program's outputs are not finite where the model's are")
                worst = max(worst, value)
    return worst


def prove(reference, program, spec: ModelSpec, conversion: Conversion) -> Conversion:
    """Fill conversion.max_abs_diff by comparing program with reference; ExportFailed when it
    is not below conversion.tolerance."""
    conversion.max_abs_diff = max_abs_diff(reference, program, spec)
    if not conversion.max_abs_diff < conversion.tolerance:
        raise ExportFailed(f"the exported program differs from the model by {conversion.max_abs_diff:.3g} "
                           f"(max abs difference; must be below {conversion.tolerance:g})")
    return conversion


def save_program(program, spec: ModelSpec, conversion: Conversion, path: str | Path) -> Path:
    """Write the ExportedProgram with the spec (SPEC_FILE) and the conversion record
    (CONVERSION_FILE) as extra files. The archive's inner folder is named after the file, so
    the same program saved under the same name gives the same bytes."""
    import torch

    path = Path(path)
    extra = {SPEC_FILE: json.dumps(spec.to_json(), sort_keys=True),
             CONVERSION_FILE: json.dumps(conversion.to_json(with_seconds=False), sort_keys=True)}
    torch.export.save(program, path, extra_files=extra)
    return path


def save_proved(program, reference, spec: ModelSpec, conversion: Conversion, dst: str | Path, *,
                started: float | None = None) -> Conversion:
    """Prove `program` against `reference` (a callable: the eager model, or the program as it was
    loaded), refuse a training-mode batch norm, save it with the spec and the conversion record,
    load the file back and prove that too. conversion gets the larger of the two differences,
    torch's version and the seconds since `started`. The file is written under the same name in a
    temporary folder beside dst and moved onto dst (os.replace) only once proved: dst is never
    seen half-written, and a file already there stays as it was on any failure. ExportFailed on
    any failure (one line naming dst when it cannot be written)."""
    import os
    import shutil
    import tempfile

    import torch

    started = time.monotonic() if started is None else started
    dst = Path(dst)
    refuse_training_mode(program, dst.name)
    prove(reference, program.module(), spec, conversion)
    in_memory = conversion.max_abs_diff
    conversion.torch_version = str(torch.__version__)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent))
    except OSError as exc:
        raise ExportFailed(f"{dst}: cannot write the program there ({reason(exc)})") from None
    try:
        part = folder / dst.name  # the same name: the archive's inner folder is named after it
        try:
            save_program(program, spec, conversion, part)
        except Exception as exc:
            raise ExportFailed(f"{dst}: cannot write the program ({reason(exc)})") from None
        saved = torch.export.load(part)  # written just now by this process
        prove(reference, saved.module(), spec, conversion)
        try:
            os.replace(part, dst)
        except OSError as exc:
            raise ExportFailed(f"{dst}: cannot write the program there ({reason(exc)})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    conversion.max_abs_diff = max(in_memory, conversion.max_abs_diff)
    conversion.seconds = time.monotonic() - started
    return conversion


def export_and_prove(model, spec: ModelSpec, conversion: Conversion, dst: str | Path, *,
                     name: str = "the model") -> Conversion:
    """Export `model`, then save_proved against it; returns the conversion with its difference,
    torch version and seconds. ExportFailed on any failure (dst is then not left behind)."""
    started = time.monotonic()
    program = export_model(model, spec, name=name)
    return save_proved(program, model, spec, conversion, dst, started=started)
