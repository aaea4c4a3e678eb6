"""The local loader: a model file, or a pulled bundle folder, turned into something that predicts,
with no training code around.

    program = load_program("downloads/clf/release/3")      # picks model-standard.pt2 first
    program.spec.describe(); program.describe()
    outputs = program.predict(batch)                       # (N, C, H, W) float array -> numpy outputs

What it loads:
- a Torch Standard v2 program (`.pt2`, torch.export): checked pickle-free before
  `torch.export.load` (pt2_safety.py), refused when it runs batch norm in training mode; its spec
  comes from the archive (`vtm_spec.json`), else from its own input and outputs;
- a TorchScript file, only when the caller trusts it (torch.jit.load has no safe mode);
- a v1 standard file, vtm's example checkpoints and bare state dicts of the example
  architectures (legacy.py), read with weights_only=True.

Device: None or "auto" picks CUDA when available. A .pt2 program is moved with torch's
`move_to_device_pass` (its weights are constants of the graph, `.to()` does not move them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from vtm_tui.core.standard import legacy
from vtm_tui.core.standard.checkpoint import CheckpointError, safe_load
from vtm_tui.core.standard.exporter import CONVERSION_FILE, quiet_torch, refuse_training_mode
from vtm_tui.core.standard.file_kinds import STANDARD_V2_FILE, file_kind
from vtm_tui.core.standard.spec import SPEC_FILE, STANDARD_V2_FORMAT, ConvertRequest, ModelSpec, select_output

PICK_ORDER = (STANDARD_V2_FILE, legacy.STANDARD_V1_FILE, "checkpoint.pt2", "checkpoint.pth", "checkpoint.pt",
              "checkpoint.ckpt")
PREDICT_BATCH = 64  # samples per forward pass (and per chunk read from a folder or .npy)
KIND_NAMES = {"pt2": "torch.export program", "torchscript": "TorchScript", "v1": "Torch Standard v1",
              "checkpoint": "checkpoint + example architecture"}


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


def pick_file(path: str | Path) -> Path:
    """A pulled bundle folder stands for its best model file (PICK_ORDER: the v2 program first);
    any other path for itself."""
    path = Path(path)
    if not path.is_dir() or file_kind_is_mlflow(path):
        return path
    for name in PICK_ORDER:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{path}: no {STANDARD_V2_FILE}, {legacy.STANDARD_V1_FILE} or checkpoint file in this folder")


def file_kind_is_mlflow(path: Path) -> bool:
    """True for an MLflow model folder (it has an MLmodel file)."""
    return (path / "MLmodel").is_file()


@dataclass
class LoadedProgram:
    """A model ready to predict: `module(x)` the loaded program or model (raw result), its spec,
    kind (pt2, torchscript, v1, checkpoint), format, file, device, and the conversion record stored with
    it (a v2 program's; None otherwise)."""
    module: Callable[..., Any]
    spec: ModelSpec
    kind: str
    format: str  # vtm-standard-v2, vtm-standard-v1, vtm-checkpoint-v1, state_dict, torchscript
    path: Path
    device: str
    conversion: dict | None = None
    notes: list[str] = field(default_factory=list)

    def forward(self, x):
        """The spec's output tensor for a torch batch x (N, C, H, W) on the program's device."""
        return select_output(self.module(x), self.spec.output_key, self.path.name)

    def predict(self, inputs, *, batch_size: int = PREDICT_BATCH, progress: Callable[[int, int], None] | None = None,
                cancel=None):
        """Outputs (numpy, float32) for a numpy batch (N, C, H, W), run batch_size samples at a
        time without gradients; progress(samples done, total) after each; a set `cancel`
        (threading.Event) stops between batches with KeyboardInterrupt."""
        import numpy as np

        chunks = (inputs[start:start + batch_size] for start in range(0, len(inputs), batch_size))
        results = list(self.predict_chunks(chunks, len(inputs), progress=progress, cancel=cancel))
        return np.concatenate(results) if results else np.zeros((0,), dtype=np.float32)

    def predict_chunks(self, chunks: Iterable, total: int, *, progress: Callable[[int, int], None] | None = None,
                       cancel=None) -> Iterator:
        """Outputs (numpy, float32) chunk by chunk for numpy chunks (n, C, H, W) of a batch of
        `total` samples, each chunk taken from `chunks` (read, when it is lazy) only when the one
        before was predicted, without gradients; progress(samples done, total) after each; a set
        `cancel` (threading.Event) stops between chunks with KeyboardInterrupt."""
        import numpy as np
        import torch

        dtype = getattr(torch, self.spec.input_dtype)
        done, pending = 0, iter(chunks)
        while True:
            if cancel is not None and cancel.is_set():  # before the next chunk is read
                raise KeyboardInterrupt("cancelled")
            chunk = next(pending, None)
            if chunk is None:
                return
            with torch.no_grad():
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device, dtype)
                output = self.forward(x).float().cpu().numpy()
            done += len(x)
            if progress:
                progress(done, total)
            yield output

    def describe(self) -> str:
        """`model-standard.pt2 (torch.export program, vtm-standard-v2) on cpu`."""
        return f"{self.path.name} ({KIND_NAMES.get(self.kind, self.kind)}, {self.format}) on {self.device}"

    def to_json(self) -> dict:
        """{"file", "kind", "format", "device", "spec", "conversion"}: what `vtm predict --json`
        reports as the program that ran."""
        return {"file": self.path.name, "kind": self.kind, "format": self.format, "device": self.device,
                "spec": self.spec.to_json(), "conversion": self.conversion}


def _json_or_none(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _load_pt2(path: Path, device, input_shape) -> LoadedProgram:
    import torch

    from vtm_tui.core.standard.exporter import reason
    from vtm_tui.core.standard.pt2_safety import check_pt2_archive

    check_pt2_archive(path)
    extra = {SPEC_FILE: "", CONVERSION_FILE: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable .pt2 program ({reason(exc)})") from None
    refuse_training_mode(program, str(path))
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module = program.module()
    notes = []
    stored = _json_or_none(extra.get(SPEC_FILE))
    if isinstance(stored, dict) and stored.get("format") == STANDARD_V2_FORMAT:
        spec = ModelSpec.from_json(stored, f"{path}: {SPEC_FILE}")
    else:
        from vtm_tui.core.standard.convert import infer_spec, input_shape_of_program

        spec = infer_spec(lambda x: module(x.to(device)), ConvertRequest(),
                          input_shape or input_shape_of_program(program), where=str(path))
        notes.append("no vtm spec in the archive: inferred from its input and outputs")
    conversion = _json_or_none(extra.get(CONVERSION_FILE))
    return LoadedProgram(module, spec, "pt2", STANDARD_V2_FORMAT, path, str(device), conversion, notes)


def _load_torchscript(path: Path, device, input_shape) -> LoadedProgram:
    import torch

    from vtm_tui.core.standard.convert import infer_spec

    scripted = torch.jit.load(str(path), map_location=device).eval()
    spec = infer_spec(lambda x: scripted(x.to(device)), ConvertRequest(), input_shape, where=str(path))
    return LoadedProgram(scripted, spec, "torchscript", "torchscript", path, str(device), None,
                         ["TorchScript, loaded because you trust it (torch.jit.load runs the file's code)"])


def load_program(path: str | Path, device=None, *, trust_torchscript: bool = False,
                 input_shape: tuple[int, int, int] | None = None, task_type: str | None = None,
                 architecture: str | None = None, num_classes: int | None = None) -> LoadedProgram:
    """Load what `path` holds (see the module docstring) on `device` (None: CUDA when available).

    trust_torchscript: allow torch.jit.load (it runs the file's code). input_shape (C, H, W): for
    a program or TorchScript file that does not say. task_type / architecture / num_classes: for
    a bare state dict of an example architecture. Errors: CheckpointError (missing, unreadable,
    refused: UnsafeCheckpoint / UnsafeProgram), SpecError, ExportFailed (training mode)."""
    path = pick_file(path)
    target = pick_device(device)
    kind = file_kind(path)
    if kind == "pt2":
        with quiet_torch():
            return _load_pt2(path, target, input_shape)
    if kind == "torchscript":
        if not trust_torchscript:
            raise CheckpointError(f"{path}: a TorchScript file: torch.jit.load has no safe mode (it runs the "
                                  f"file's code); vtm loads it only when you say you trust it (--trust-torchscript), "
                                  f"or convert it once with --convert-standard --trust-torchscript")
        with quiet_torch():
            return _load_torchscript(path, target, input_shape)
    if kind == "mlflow-model":
        raise CheckpointError(f"{path}: an MLflow model folder: predict with its data/model.pt2, or publish it "
                              f"with --convert-standard")
    obj = safe_load(path)
    model, spec, meta = legacy.load_legacy(obj, str(path), task_type=task_type, architecture=architecture,
                                           num_classes=num_classes)
    model = model.to(target).eval()
    fmt = meta.get("format") or "state_dict"
    return LoadedProgram(model, spec, "v1" if fmt == legacy.STANDARD_V1_FORMAT else "checkpoint", fmt, path,
                         str(target), None, [f"{k}: {meta[k]}" for k in ("epoch", "metric") if k in meta])
