"""Converting what users have into a Torch Standard v2 program (`model-standard.pt2`).

    convert_to_standard("best.ckpt", "model-standard.pt2",
                        ConvertRequest(architecture="./models.py:UNet", arch_kwargs={"num_classes": 3},
                                       input_shape=(3, 64, 64)))

Sources (file_kinds.file_kind tells them apart):
- a state-dict checkpoint (.pth/.pt, a Lightning .ckpt, vtm's own) plus an architecture
  (`MODULE_OR_FILE:CALLABLE` and keyword arguments, or one of vtm's examples), unwrapped and
  fitted as checkpoint.py describes, exported and proved (exporter.py);
- a TorchScript file, only with trust_torchscript: loaded with torch.jit.load, which has no
  safe mode (it runs the file's code: convert only files you trust), converted with torch's
  TorchScript-to-ExportedProgram converter and proved against the scripted module;
- a .pt2 archive (MLflow's default format for a logged PyTorch model, or the user's own):
  checked pickle-free (pt2_safety.py) before it is loaded, then saved again with its spec;
- an MLflow model folder: its data/model.pt2 as above; its pickle format (data/model.pth) only
  with allow_pickle, because loading it runs the file's code.

The spec (spec.py) comes from the request, the file's metadata, and the model's own outputs on a
fixed batch (task type from their rank, number of classes from their class dimension).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtm_tui.core.standard import exporter, legacy
from vtm_tui.core.standard.checkpoint import CheckpointError, find_state_dict, fit_state_dict, read_checkpoint
from vtm_tui.core.standard.exporter import Conversion, ExportFailed, reason
from vtm_tui.core.standard.file_kinds import file_kind
from vtm_tui.core.standard.spec import ConvertRequest, ModelSpec, SpecError, output_key_of, select_output

TORCHSCRIPT_TRUST_NOTE = ("loaded with torch.jit.load: TorchScript has no safe loading mode and runs the file's "
                          "code; convert only TorchScript files you trust")


@dataclass
class StandardResult:
    """A written standard program: its path, spec and conversion record."""
    path: Path
    spec: ModelSpec
    conversion: Conversion

    def to_json(self) -> dict:
        """{"program": file name, "spec": ..., "conversion": ...}."""
        return {"program": self.path.name, "spec": self.spec.to_json(), "conversion": self.conversion.to_json()}


def input_shape_of_program(program) -> tuple[int, ...] | None:
    """(C, H, W) of an ExportedProgram's first user input, when those dimensions are fixed
    numbers in its graph; None otherwise."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is None or len(shape) != 4:
                return None
            try:
                return tuple(int(dim) for dim in shape[1:])
            except TypeError:  # a symbolic size
                return None
    return None


def infer_spec(run, request: ConvertRequest, input_shape, *, defaults: dict | None = None,
               where: str = "the model") -> ModelSpec:
    """The spec of a model callable: the request's fields, then `defaults` (the file's
    metadata), then what its outputs on a fixed batch of 2 say (task type from their rank,
    classes from dimension 1). SpecError when the outputs contradict the request."""
    import torch

    defaults = dict(defaults or {})
    if input_shape is None:
        raise SpecError(f"{where}: the input shape is unknown: give --input-shape C,H,W (e.g. 3,224,224)")
    fields = {**{k: v for k, v in defaults.items() if v is not None}, **request.spec_fields(),
              "input_shape": tuple(input_shape)}
    probe = ModelSpec("classification", fields["input_shape"], 1, input_dtype=fields.get("input_dtype", "float32"),
                      mean=fields.get("mean"), std=fields.get("std"))
    with torch.no_grad():
        try:
            value = run(exporter.example_batch(probe))
        except Exception as exc:
            raise ExportFailed(f"{where} fails on an input of shape (2, {', '.join(map(str, input_shape))}): "
                               f"{reason(exc)}") from None
    output = select_output(value, request.output_key, where)
    fields["output_key"] = output_key_of(value, request.output_key)
    rank_task = {2: "classification", 4: "segmentation"}.get(output.dim())
    if rank_task is None:
        raise SpecError(f"{where}: its output has shape {tuple(output.shape)}, neither (N, classes) "
                        f"(classification) nor (N, classes, H, W) (segmentation)")
    for key, found in (("task_type", rank_task), ("num_classes", int(output.shape[1]))):
        given = request.spec_fields().get(key)
        if given is not None and str(given) != str(found):
            raise SpecError(f"{where}: its outputs say {key} = {found}, but {given} was given")
        fields[key] = found
    names = fields.get("class_names")
    if names is not None and len(names) != fields["num_classes"]:
        if "class_names" in request.spec_fields():
            raise SpecError(f"{where}: {len(names)} class names given for {fields['num_classes']} classes")
        fields.pop("class_names")
    fields.update(architecture=request.architecture or defaults.get("architecture"),
                  arch_kwargs=request.arch_kwargs or defaults.get("arch_kwargs") or {})
    return ModelSpec(**fields)


def _convert_checkpoint(src: Path, dst: Path, request: ConvertRequest) -> StandardResult:
    from vtm_tui.core.standard.user_arch import build_network, is_example

    checkpoint = read_checkpoint(src)
    meta = legacy.describe(checkpoint.obj)
    state, nested = find_state_dict(checkpoint.obj, str(src))
    notes = [f"weights under {nested!r}"] if nested else []
    if checkpoint.stand_ins:
        notes.append(f"not loaded (inert stand-ins): {', '.join(checkpoint.stand_ins)}")
    arch = request.architecture
    if arch is None or is_example(arch):
        fields = legacy.example_spec(meta, task_type=request.task_type, architecture=arch,
                                     num_classes=request.num_classes, where=str(src))
        model, report = legacy.build_example(fields, state, str(src))
        notes += report.notes()
        defaults = legacy.spec_of(fields).to_json()
        input_shape = request.input_shape or tuple(fields["input_shape"])
    else:
        model = build_network(arch, request.arch_kwargs, num_classes=request.num_classes, base_dir=request.base_dir)
        notes += fit_state_dict(model, state, str(src), arch).notes()
        defaults = {"class_names": meta.get("class_names")}
        input_shape = request.input_shape or meta.get("input_shape")
    model.eval()
    spec = infer_spec(model, request, input_shape, defaults=defaults, where=str(src))
    kind = "lightning" if checkpoint.is_lightning else "checkpoint"
    conversion = Conversion(source=kind, max_abs_diff=float("nan"), notes=notes)
    exporter.export_and_prove(model, spec, conversion, dst, name=f"{spec.architecture or src.name}")
    return StandardResult(dst, spec, conversion)


def _convert_torchscript(src: Path, dst: Path, request: ConvertRequest) -> StandardResult:
    import time

    import torch

    if not request.trust_torchscript:
        raise CheckpointError(f"{src} is TorchScript, which runs its own code when loaded: pass --trust-torchscript "
                              f"if you trust it")
    started = time.monotonic()
    try:
        scripted = torch.jit.load(str(src), map_location="cpu").eval()
    except Exception as exc:
        raise CheckpointError(f"{src}: not a loadable TorchScript file ({reason(exc)})") from None
    spec = infer_spec(scripted, request, request.input_shape, defaults={"architecture": f"torchscript:{src.name}"},
                      where=str(src))
    try:
        from torch._export.converter import TS2EPConverter  # the converter torch.export's own error names

        with exporter.quiet_torch(stderr=True):
            program = TS2EPConverter(scripted, (exporter.example_batch(spec),)).convert()
    except Exception as exc:
        raise ExportFailed(f"{src}: torch cannot convert this TorchScript to an ExportedProgram: "
                           f"{reason(exc)}") from None
    conversion = Conversion(source="torchscript", max_abs_diff=float("nan"), notes=[TORCHSCRIPT_TRUST_NOTE])
    exporter.save_proved(program, scripted, spec, conversion, dst, started=started)
    return StandardResult(dst, spec, conversion)


def standardize_program(src: Path, dst: Path, request: ConvertRequest, source: str = "pt2") -> StandardResult:
    """A .pt2 someone else exported (MLflow's logged model, the user's own): checked pickle-free,
    loaded, given a spec (its own vtm spec when it has one and the request sets nothing), saved
    again and proved against itself as loaded."""
    import json
    import time

    import torch

    from vtm_tui.core.standard.pt2_safety import check_pt2_archive
    from vtm_tui.core.standard.spec import SPEC_FILE

    started = time.monotonic()
    check_pt2_archive(src)
    extra = {SPEC_FILE: ""}
    try:
        program = torch.export.load(src, extra_files=extra)
    except Exception as exc:
        raise CheckpointError(f"{src}: not a loadable .pt2 program ({reason(exc)})") from None
    exporter.refuse_training_mode(program, str(src))
    defaults = {}
    if extra.get(SPEC_FILE):
        try:
            defaults = {k: v for k, v in json.loads(extra[SPEC_FILE]).items() if k != "format"}
        except ValueError:
            defaults = {}
    shape = request.input_shape or defaults.pop("input_shape", None) or input_shape_of_program(program)
    module = program.module()
    spec = infer_spec(module, request, shape, defaults=defaults, where=str(src))
    conversion = Conversion(source=source, max_abs_diff=float("nan"))
    exporter.save_proved(program, module, spec, conversion, dst, started=started)
    return StandardResult(dst, spec, conversion)


def _convert_mlflow_folder(src: Path, dst: Path, request: ConvertRequest) -> StandardResult:
    data = src / "data"
    if (data / "model.pt2").is_file():
        return standardize_program(data / "model.pt2", dst, request, source="mlflow-pt2")
    pickled = data / "model.pth"
    if not pickled.is_file():
        raise CheckpointError(f"{src}: an MLflow model without data/model.pt2 or data/model.pth: not a PyTorch model")
    if not request.allow_pickle:
        raise CheckpointError(f"{src}: this MLflow model is in the pickle format; loading it runs the file's code. "
                              f"Pass --allow-pickle if you trust it, or log it again in MLflow's default pt2 format")
    import torch

    try:
        model = torch.load(pickled, map_location="cpu", weights_only=False)  # allowed explicitly: runs its code
    except Exception as exc:
        raise CheckpointError(f"{pickled}: cannot load ({reason(exc)})") from None
    if not isinstance(model, torch.nn.Module):
        raise CheckpointError(f"{pickled}: holds {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    spec = infer_spec(model, request, request.input_shape, defaults={"architecture": type(model).__name__},
                      where=str(src))
    conversion = Conversion(source="mlflow-pickle", max_abs_diff=float("nan"),
                            notes=["loaded MLflow's pickle format with --allow-pickle (ran the file's code)"])
    exporter.export_and_prove(model, spec, conversion, dst, name=type(model).__name__)
    return StandardResult(dst, spec, conversion)


def convert_to_standard(src: str | Path, dst: str | Path, request: ConvertRequest | None = None) -> StandardResult:
    """Write the Torch Standard v2 program for `src` (any source of the module docstring) to
    dst; returns its spec and conversion record. Errors (exit code 2): CheckpointError (unreadable,
    refused, TorchScript without request.trust_torchscript, weights that do not fit), SpecError,
    ArchitectureError, ExportFailed (torch.export cannot trace it, or the program differs from the
    model by 1e-5 or more). dst is written only when the conversion proved itself."""
    src, dst = Path(src), Path(dst)
    request = request or ConvertRequest()
    kind = file_kind(src)
    convert = {"pt2": standardize_program, "torchscript": _convert_torchscript,
               "mlflow-model": _convert_mlflow_folder}.get(kind, _convert_checkpoint)
    import torch  # noqa: F401 - imported before torch's loggers are quietened, so they exist

    with exporter.quiet_torch():
        return convert(src, dst, request)
