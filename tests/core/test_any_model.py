"""Any model: the user's own architectures and checkpoint layouts, TorchScript, pt2 archives with
pickle payloads, models torch.export cannot trace, and inputs preprocessed by the spec
(vtm_tui.core.standard, vtm_tui.core.serving.inputs)."""
from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.user_project import MODELS, user_models
from fixtures.vtm import VTM_BIN, base_env
from torch import nn

from vtm_tui.core.standard import (
    ArchitectureError,
    CheckpointError,
    ConvertRequest,
    ExportFailed,
    UnsafeCheckpoint,
    UnsafeProgram,
    convert_to_standard,
    load_program,
)
from vtm_tui.core.standard.checkpoint import find_state_dict, fit_state_dict, read_checkpoint
from vtm_tui.core.standard.spec import SpecError

SIZE = 16


def _unet(seed: int = 0):
    torch.manual_seed(seed)
    model = user_models().build_model("unet", num_classes=3, width=4)
    model.train()
    with torch.no_grad():  # move the BatchNorm running statistics off their initial values
        model(torch.rand(4, 3, SIZE, SIZE))
    return model.eval()


UNET = dict(architecture=f"{MODELS}:UNetSegmenter", arch_kwargs={"num_classes": 3, "width": 4},
            input_shape=(3, SIZE, SIZE))


# ---------------------------------------------------------------------------
# Checkpoint layouts and architectures
# ---------------------------------------------------------------------------


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + key: value for key, value in state.items()}


@pytest.mark.parametrize("layout, nested, prefix", [
    (lambda s: {"epoch": 12, "state_dict": _prefixed(s, "module.")}, "state_dict", "module."),  # DataParallel/DDP
    (lambda s: {"model_state_dict": s, "optimizer_state_dict": {}}, "model_state_dict", ""),
    (lambda s: {"ema": s, "epoch": 3}, "ema", ""),
    (lambda s: {"net": {"state_dict": _prefixed(s, "_orig_mod.")}}, "net.state_dict", "_orig_mod."),  # compile
    (lambda s: _prefixed(s, "model."), "", "model."),
    (lambda s: _prefixed(s, "module._orig_mod."), "", "module._orig_mod."),
])
def test_state_dicts_are_found_and_fitted_whatever_their_nesting_and_prefix(layout, nested, prefix):
    state = {k: v.clone() for k, v in _unet().state_dict().items()}
    found, where = find_state_dict(layout(state), "ckpt")
    fresh = user_models().build_model("unet", num_classes=3, width=4)
    report = fit_state_dict(fresh, found, "ckpt", "UNet")
    assert (where, report.prefix, report.left_out) == (nested, prefix, [])
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in state)


def test_a_lightning_module_s_other_weights_are_left_out_and_named(tmp_path):
    model = _unet()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["criterion.weight"] = torch.ones(3)  # a loss with class weights, saved by the LightningModule too
    fresh = user_models().build_model("unet", num_classes=3, width=4)
    report = fit_state_dict(fresh, state, "best.ckpt")
    assert report.prefix == "model." and report.left_out == ["criterion.weight"]
    assert report.notes() == ["stripped the key prefix 'model.'",
                              "left out 1 keys outside 'model.': criterion.weight"]


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({self.marker!r}).touch()",))


def test_lightning_hyper_parameter_objects_are_read_as_inert_stand_ins(tmp_path):
    """A Lightning .ckpt keeps its hyper-parameters as Python objects (a Path, a numpy float): the
    weights load, the objects become stand-ins that run nothing, their names are reported. The
    same objects in any other checkpoint are refused."""
    marker = tmp_path / "PWNED"
    model = _unet()
    hparams = {"data_dir": tmp_path, "pixel_mean": np.float64(0.4), "hook": _Payload(marker)}
    ckpt = {"epoch": 0, "global_step": 2, "pytorch-lightning_version": "2.6.6", "hyper_parameters": hparams,
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    torch.save(ckpt, tmp_path / "best.ckpt")
    plain = {k: v for k, v in ckpt.items() if k != "pytorch-lightning_version"}
    torch.save(plain, tmp_path / "not-lightning.pth")

    read = read_checkpoint(tmp_path / "best.ckpt")
    assert read.is_lightning and "pathlib.PosixPath" in read.stand_ins and "builtins.eval" in read.stand_ins
    result = convert_to_standard(tmp_path / "best.ckpt", tmp_path / "model-standard.pt2", ConvertRequest(**UNET))
    assert result.conversion.source == "lightning" and result.conversion.max_abs_diff < 1e-5
    assert any(note.startswith("not loaded (inert stand-ins): builtins.eval") for note in result.conversion.notes)
    with pytest.raises(UnsafeCheckpoint, match="refused"):
        convert_to_standard(tmp_path / "not-lightning.pth", tmp_path / "x.pt2", ConvertRequest(**UNET))
    assert not marker.exists()


def test_architectures_from_a_file_or_a_module_and_their_errors(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "nets").mkdir(parents=True)
    (project / "blocks.py").write_text("from torch import nn\n\ndef head(c, k):\n    return nn.Conv2d(c, k, 1)\n")
    (project / "models.py").write_text(
        "import torch\nfrom torch import nn\nfrom blocks import head\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=2, width=4):\n"
        "        super().__init__()\n        self.body = nn.Conv2d(3, width, 3, padding=1)\n"
        "        self.head = head(width, num_classes)\n"
        "    def forward(self, x):\n        return self.head(torch.relu(self.body(x))).mean((2, 3))\n"
        "def not_a_model():\n    return 42\n")
    (project / "nets" / "__init__.py").write_text("from models import Net\n")
    torch.manual_seed(0)
    sys.path.insert(0, str(project))
    try:
        import models as user_file_models
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("models", None)
        sys.modules.pop("blocks", None)
    reference = user_file_models.Net(num_classes=5, width=4).eval()
    torch.save({"model": reference.state_dict()}, tmp_path / "w.pth")
    request = dict(input_shape=(3, 8, 8), num_classes=5, base_dir=str(project))
    # a file of the user's tree, relative to base_dir, importing a sibling module; num_classes passed on
    result = convert_to_standard(tmp_path / "w.pth", tmp_path / "a.pt2",
                                 ConvertRequest(architecture="./models.py:Net", **request))
    assert result.spec.task_type == "classification" and result.spec.num_classes == 5
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        assert np.allclose(load_program(tmp_path / "a.pt2").predict(x.numpy()), reference(x).numpy(), atol=1e-5)
    # a module importable from the project folder
    convert_to_standard(tmp_path / "w.pth", tmp_path / "b.pt2", ConvertRequest(architecture="nets:Net", **request))
    for arch, message in (("./missing.py:Net", "no such file"), ("./models.py:Nope", "has no 'Nope'"),
                          ("no_such_package.sub:Net", "cannot import 'no_such_package.sub'"),
                          ("./models.py:not_a_model", "returned int, not a torch.nn.Module"),
                          ("models.py", "expected MODULE_OR_FILE:CALLABLE")):
        with pytest.raises(ArchitectureError, match=message):
            convert_to_standard(tmp_path / "w.pth", tmp_path / "c.pt2", ConvertRequest(architecture=arch, **request))
    with pytest.raises(ArchitectureError, match=r"Net\(depth=3, num_classes=5\) failed: TypeError: .*'depth'"):
        convert_to_standard(tmp_path / "w.pth", tmp_path / "c.pt2",
                            ConvertRequest(architecture="./models.py:Net", arch_kwargs={"depth": 3}, **request))
    with pytest.raises(SpecError, match="outputs say num_classes = 5, but 4 was given"):
        convert_to_standard(tmp_path / "w.pth", tmp_path / "c.pt2",
                            ConvertRequest(architecture="./models.py:Net", arch_kwargs={"num_classes": 5},
                                           **{**request, "num_classes": 4}))
    assert not (tmp_path / "c.pt2").exists()


def test_dict_outputs_need_a_key_only_when_it_is_ambiguous(tmp_path):
    model = _unet()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    result = convert_to_standard(tmp_path / "w.pth", tmp_path / "a.pt2", ConvertRequest(**UNET))
    assert result.spec.output_key == "out" and result.spec.task_type == "segmentation"  # torchvision's convention
    aux = convert_to_standard(tmp_path / "w.pth", tmp_path / "b.pt2", ConvertRequest(**UNET, output_key="aux"))
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model(x)
    assert np.allclose(load_program(aux.path).predict(x.numpy()), expected["aux"].numpy(), atol=1e-5)
    with pytest.raises(SpecError, match="returns a dict without 'logits' \\(its keys: out, aux\\)"):
        convert_to_standard(tmp_path / "w.pth", tmp_path / "c.pt2", ConvertRequest(**UNET, output_key="logits"))


# ---------------------------------------------------------------------------
# What torch.export cannot do, and programs vtm refuses
# ---------------------------------------------------------------------------

UNTRACEABLE = """
import torch
from torch import nn

class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        if y.sum() > 0:  # control flow on a tensor's value
            return y
        return -y
"""


def test_a_model_torch_export_cannot_trace_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    (tmp_path / "nets.py").write_text(UNTRACEABLE)
    torch.manual_seed(0)
    torch.save(nn.Conv2d(3, 2, 1).state_dict(), tmp_path / "plain.pth")
    torch.save({f"conv.{k}": v for k, v in nn.Conv2d(3, 2, 1).state_dict().items()}, tmp_path / "bad.pth")
    with pytest.raises(ExportFailed, match="torch.export cannot trace ./nets.py:DataDependent: "
                                           "GuardOnDataDependentSymNode: Could not guard on data-dependent"):
        convert_to_standard(tmp_path / "bad.pth", tmp_path / "x.pt2",
                            ConvertRequest(architecture="./nets.py:DataDependent", input_shape=(3, 8, 8),
                                           base_dir=str(tmp_path)))
    registry = tmp_path / "registry"
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_REGISTRY_URL=str(registry))
    result = subprocess.run([VTM_BIN, "registry", "publish", "bad.pth", "--model", "bad", "--convert-standard",
                             "--arch", "./nets.py:DataDependent", "--input-shape", "3,8,8"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("vtm: error: torch.export cannot trace ./nets.py:DataDependent: ")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not registry.exists() or not [p for p in registry.rglob("*")]  # no version folder, no .incoming file
    assert not (tmp_path / "x.pt2").exists()


def test_a_program_exported_in_training_mode_is_refused(tmp_path):
    model = _unet().train()
    program = torch.export.export(model, (torch.rand(2, 3, SIZE, SIZE),))
    torch.export.save(program, tmp_path / "train-mode.pt2")
    with pytest.raises(ExportFailed, match="exported in training mode .*export the model after model.eval"):
        load_program(tmp_path / "train-mode.pt2")


class _Evil:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def _tsave(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _crafted(src: Path, dst: Path, replace: dict, add: dict | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def _evil_archives(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Three .pt2 archives made from a real one, each with a payload where torch.export.load
    unpickles (the sample inputs, an opaque constant, a weight marked use_pickle); name -> (archive, marker)."""
    model = _unet()
    torch.export.save(torch.export.export(model, (torch.rand(2, 3, SIZE, SIZE),)), tmp_path / "model.pt2")
    src = tmp_path / "model.pt2"
    names = zipfile.ZipFile(src).namelist()
    touch = "__import__('pathlib').Path({!r}).touch()"
    out = {}
    marker = tmp_path / "PWNED-sample_inputs"
    code = touch.format(str(marker)) + f" or ((__import__('torch').zeros(2, 3, {SIZE}, {SIZE}),), {{}})"
    out["sample_inputs"] = (_crafted(src, tmp_path / "evil_sample_inputs.pt2",
                                     {"model/data/sample_inputs/model.pt": _tsave(_Evil(code))}), marker)
    marker = tmp_path / "PWNED-opaque"
    config = {"config": {"evil": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}}}
    out["opaque"] = (_crafted(src, tmp_path / "evil_opaque.pt2",
                              {"model/data/constants/model_constants_config.json": json.dumps(config).encode()},
                              {"model/data/constants/opaque_obj_0": pickle.dumps(_Evil(touch.format(str(marker))))}),
                     marker)
    marker = tmp_path / "PWNED-weight"
    weights = json.loads(zipfile.ZipFile(src).read("model/data/weights/model_weights_config.json"))
    first = next(k for k, v in weights["config"].items() if v["path_name"] == "weight_0")
    weights["config"][first]["use_pickle"] = True
    shape = tuple(model.state_dict()[first].shape)
    code = touch.format(str(marker)) + f" or __import__('torch').zeros({shape})"
    out["weight"] = (_crafted(src, tmp_path / "evil_weight.pt2",
                              {"model/data/weights/model_weights_config.json": json.dumps(weights).encode(),
                               "model/data/weights/weight_0": _tsave(_Evil(code))}), marker)
    assert "model/data/sample_inputs/model.pt" in names and "model/data/weights/weight_0" in names
    return out


def test_pt2_archives_with_a_pickle_payload_are_refused_and_the_payload_never_runs(tmp_path):
    archives = _evil_archives(tmp_path)
    # The archives are real attacks: plain torch.export.load runs their payloads (in a child process).
    for name, (archive, marker) in archives.items():
        subprocess.run([sys.executable, "-c", f"import torch\ntry:\n torch.export.load({str(archive)!r})\n"
                        "except Exception:\n pass\n"], cwd=tmp_path, capture_output=True, timeout=120,
                       env={k: v for k, v in base_env().items() if k != "PYTHONPATH"})
        assert marker.exists(), f"{name}: the crafted payload did not run under torch.export.load"
        marker.unlink()
    registry = tmp_path / "registry"
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_REGISTRY_URL=str(registry))
    for name, (archive, marker) in archives.items():
        record = {"sample_inputs": "data/sample_inputs/model.pt", "opaque": "data/constants/opaque_obj_0",
                  "weight": "data/weights/weight_0"}[name]
        for call, args in ((load_program, (archive,)), (convert_to_standard, (archive, tmp_path / "out.pt2"))):
            with pytest.raises(UnsafeProgram, match=f"refused: record model/{record} is not plain"):
                call(*args)
        for argv in (["registry", "publish", str(archive), "--model", "evil"],
                     ["predict", str(archive), "--random"]) if name == "sample_inputs" else ():
            result = subprocess.run([VTM_BIN, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 2 and "refused: record" in result.stderr, (argv, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
        assert not marker.exists(), name
    assert not registry.exists() or not [p for p in registry.rglob("*") if p.is_file()]
    assert load_program(tmp_path / "model.pt2").kind == "pt2"  # the untouched archive loads


def test_a_pt2_archive_with_a_repeated_record_name_is_refused_in_either_order(tmp_path):
    """Two payload configs of one name, one marking weight_0 pickled: a check that keeps one of
    them and torch's reader that takes the other would disagree; vtm refuses both orders."""
    (archive, marker), = [v for k, v in _evil_archives(tmp_path).items() if k == "weight"]
    config_name = "model/data/weights/model_weights_config.json"
    pickled = zipfile.ZipFile(archive).read(config_name)
    safe = json.loads(pickled)
    for entry in safe["config"].values():
        entry["use_pickle"] = False
    orders = {"pickled-first": (pickled, json.dumps(safe).encode()),
              "pickled-last": (json.dumps(safe).encode(), pickled)}
    runs = []
    for order, (first, second) in orders.items():
        dst = tmp_path / f"twice-{order}.pt2"
        with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                if info.filename == config_name:
                    zout.writestr(info, first)
                    with pytest.warns(UserWarning, match="Duplicate name"):
                        zout.writestr(info, second)
                else:
                    zout.writestr(info, zin.read(info))
        assert [i.filename for i in zipfile.ZipFile(dst).infolist()].count(config_name) == 2
        subprocess.run([sys.executable, "-c", f"import torch\ntry:\n torch.export.load({str(dst)!r})\n"
                        "except Exception:\n pass\n"], cwd=tmp_path, capture_output=True, timeout=120,
                       env={k: v for k, v in base_env().items() if k != "PYTHONPATH"})
        runs.append(marker.exists())
        marker.unlink(missing_ok=True)
        for call, args in ((load_program, (dst,)), (convert_to_standard, (dst, tmp_path / "out.pt2"))):
            with pytest.raises(UnsafeProgram, match=f"refused: record {config_name} appears twice"):
                call(*args)
        assert not marker.exists(), order
    assert any(runs), "in neither order did torch.export.load unpickle the payload: the archive proves nothing"


def _patch_record(src: Path, dst: Path, name: str, flag_or: int = 0, method: int | None = None,
                  flip_byte: bool = False) -> Path:
    """A copy of src whose record `name` has extra general-purpose flag bits, another compression
    method or one data byte flipped (both the local header and the central directory entry)."""
    import struct
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as archive:
        info = archive.getinfo(name)
        start = archive.start_dir
    local = info.header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    if flip_byte:
        data[local + 30 + name_len + extra_len] ^= 0xFF
    central = data.index(b"PK\x01\x02", start)
    while data[central + 46:central + 46 + len(name.encode())] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    for offset, flag_at, method_at in ((local, 6, 8), (central, 8, 10)):
        flag = struct.unpack_from("<H", data, offset + flag_at)[0]
        struct.pack_into("<H", data, offset + flag_at, flag | flag_or)
        if method is not None:
            struct.pack_into("<H", data, offset + method_at, method)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("damage, reason", [
    (dict(flip_byte=True), "Bad CRC-32"), (dict(flag_or=0x1), "encrypted"),
    (dict(method=99), "compression method is not supported")])
def test_a_pt2_archive_with_a_damaged_record_is_one_line(tmp_path, damage, reason):
    torch.export.save(torch.export.export(nn.Linear(3, 2), (torch.rand(1, 3),)), tmp_path / "model.pt2")
    record = "model/models/model.json"
    bad = _patch_record(tmp_path / "model.pt2", tmp_path / "bad.pt2", record, **damage)
    with pytest.raises(UnsafeProgram, match=f"bad.pt2: record {record} cannot be read .*{reason}") as caught:
        load_program(bad)
    assert "\n" not in str(caught.value)
    if damage.get("flip_byte"):
        env = base_env(VTM_HOME=str(tmp_path / ".vtm"))
        result = subprocess.run([VTM_BIN, "predict", str(bad), "--random"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "cannot be read" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# TorchScript and MLflow's pickle format: only when trusted
# ---------------------------------------------------------------------------


def test_torchscript_converts_and_loads_only_when_trusted(tmp_path):
    model = _unet()
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.jit.save(torch.jit.trace(model, (x,), strict=False), tmp_path / "traced.pt")
    torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    # Untrusted, a TorchScript file is refused before torch.jit.load reads it: one whose code
    # torch.jit.load would fail to compile gets the same refusal, and only when trusted is it loaded
    with zipfile.ZipFile(tmp_path / "traced.pt") as archive:
        code = [n for n in archive.namelist() if "/code/" in n and n.endswith(".py")]
    _crafted(tmp_path / "traced.pt", tmp_path / "broken.pt", {n: b"def forward(self, x):\n  return (((\n"
                                                                for n in code})
    untrusted = "is TorchScript, which runs its own code when loaded: pass --trust-torchscript if you trust it"
    for name in ("traced.pt", "broken.pt"):
        with pytest.raises(CheckpointError, match=f"{name} {untrusted}"):
            convert_to_standard(tmp_path / name, tmp_path / "refused.pt2", ConvertRequest(input_shape=(3, SIZE, SIZE)))
        with pytest.raises(CheckpointError, match=untrusted):  # a catalog's defaults cannot grant trust
            convert_to_standard(tmp_path / name, tmp_path / "refused.pt2", ConvertRequest(input_shape=(
                3, SIZE, SIZE)).merged(ConvertRequest(trust_torchscript=True)))
    assert not (tmp_path / "refused.pt2").exists()
    with pytest.raises(CheckpointError, match="broken.pt: not a loadable TorchScript file"):
        convert_to_standard(tmp_path / "broken.pt", tmp_path / "refused.pt2", ConvertRequest(trust_torchscript=True))
    result = convert_to_standard(tmp_path / "traced.pt", tmp_path / "model-standard.pt2",
                                 ConvertRequest(input_shape=(3, SIZE, SIZE), trust_torchscript=True))
    assert result.conversion.source == "torchscript" and result.conversion.max_abs_diff < 1e-5
    assert "TorchScript has no safe loading mode" in result.conversion.notes[0]
    with torch.no_grad():
        expected = model(torch.rand(5, 3, SIZE, SIZE).mul(0).add(0.5))["out"].numpy()
    assert np.allclose(load_program(result.path).predict(np.full((5, 3, SIZE, SIZE), 0.5, np.float32)),
                       expected, atol=1e-5)
    with pytest.raises(CheckpointError, match="TorchScript file: torch.jit.load has no safe mode"):
        load_program(tmp_path / "traced.pt")
    trusted = load_program(tmp_path / "traced.pt", trust_torchscript=True, input_shape=(3, SIZE, SIZE))
    assert trusted.kind == "torchscript" and np.allclose(trusted.predict(np.full((5, 3, SIZE, SIZE), 0.5, np.float32)),
                                                         expected, atol=1e-5)
    # torch's converter cannot take this scripted UNet: its reason, on one line
    with pytest.raises(ExportFailed, match="torch cannot convert this TorchScript to an ExportedProgram: Runtime"):
        convert_to_standard(tmp_path / "scripted.pt", tmp_path / "s.pt2",
                            ConvertRequest(input_shape=(3, SIZE, SIZE), trust_torchscript=True))


def test_publishing_or_predicting_torchscript_through_vtm_needs_trust(tmp_path):
    """`vtm registry publish X.pt --convert-standard`, a script's registry_publish and `vtm predict`
    of a TorchScript registry bundle load it only with --trust-torchscript (trustTorchScript)."""
    torch.jit.save(torch.jit.trace(_unet(), (torch.rand(2, 3, SIZE, SIZE),), strict=False), tmp_path / "traced.pt")
    registry = tmp_path / "registry"
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_REGISTRY_URL=str(registry))

    def vtm(*argv):
        return subprocess.run([VTM_BIN, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    shape = ["--input-shape", f"3,{SIZE},{SIZE}"]
    refused = vtm("registry", "publish", "traced.pt", "--model", "ts", "--convert-standard", *shape)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == ("vtm: error: traced.pt is TorchScript, which runs its own code when "
                                      "loaded: pass --trust-torchscript if you trust it")
    assert not registry.exists() or not [p for p in registry.rglob("*") if p.is_file()]
    steps = tmp_path / "steps.yaml"
    steps.write_text("steps:\n  - registry_publish: {file: traced.pt, modelName: ts, convertToTorchStandard: true}\n")
    script = vtm("--script", str(steps))
    assert script.returncode == 2 and "pass --trust-torchscript if you trust it" in script.stderr + script.stdout
    published = vtm("registry", "publish", "traced.pt", "--model", "ts", "--convert-standard", *shape,
                    "--trust-torchscript", "--set-latest")
    assert published.returncode == 0 and "standard program: model-standard.pt2 (from torchscript)" in published.stdout
    steps.write_text("steps:\n  - registry_publish: {file: traced.pt, modelName: ts, convertToTorchStandard: true,"
                     " trustTorchScript: true}\n")
    script = vtm("--script", str(steps))
    assert script.returncode == 2 and "input shape is unknown" in script.stderr + script.stdout  # trusted: loaded
    assert vtm("registry", "publish", "traced.pt", "--model", "plain").returncode == 0  # as is: not loaded
    predict = ["predict", "--model", "plain", "--stage", "dev", "--random", "--shape", f"3,{SIZE},{SIZE}", "--json"]
    refused = vtm(*predict)
    assert refused.returncode == 2 and "(--trust-torchscript)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    trusted = vtm(*predict, "--trust-torchscript")
    assert trusted.returncode == 0, trusted.stderr
    assert "registry plain/dev/v1, checkpoint.pt" in json.loads(trusted.stdout)["source"]


def test_an_mlflow_pickle_model_needs_allow_pickle(tmp_path):
    folder = tmp_path / "mlflow-model"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: data\n")
    model = _unet()
    torch.save(model, folder / "data" / "model.pth")  # MLflow's pickle format: the whole module
    with pytest.raises(CheckpointError, match="pickle format; loading it runs the file's code. Pass --allow-pickle"):
        convert_to_standard(folder, tmp_path / "a.pt2", ConvertRequest(input_shape=(3, SIZE, SIZE)))
    result = convert_to_standard(folder, tmp_path / "a.pt2", ConvertRequest(input_shape=(3, SIZE, SIZE),
                                                                            allow_pickle=True))
    assert result.conversion.source == "mlflow-pickle" and result.spec.output_key == "out"


# ---------------------------------------------------------------------------
# Inputs preprocessed by the spec; batches
# ---------------------------------------------------------------------------


def test_an_image_is_preprocessed_as_the_spec_says(tmp_path):
    from PIL import Image

    from vtm_tui.core.serving.inputs import load_inputs
    from vtm_tui.core.standard.spec import ModelSpec

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)  # H=20, W=24
    Image.fromarray(pixels).save(tmp_path / "a.png")
    spec = ModelSpec("classification", (3, 16, 16), 2, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     resize=(20, 24), channel_order="BGR")
    got = load_inputs(str(tmp_path / "a.png"), spec.input_shape, spec=spec)
    top, left = 2, 4  # centre crop of 16x16 out of 20x24 (no resizing: resize equals the image)
    crop = pixels[top:top + 16, left:left + 16].astype(np.float32) / 255.0
    # BGR: channel 0 is blue, normalised with the spec's first mean/std (as the model was trained)
    expected = (crop[:, :, ::-1].transpose(2, 0, 1) - np.array(spec.mean).reshape(3, 1, 1)) / np.array(
        spec.std).reshape(3, 1, 1)
    assert got.names == ["a.png"] and got.array.shape == (1, 3, 16, 16) and got.array.dtype == np.float32
    assert np.allclose(got.array[0], expected, atol=1e-6)


def test_an_odd_centre_crop_takes_torchvision_s_offsets(tmp_path):
    """torchvision's center_crop: top = int(round((h - crop_h) / 2.0)) (Python's round), so a
    difference of 3 starts the crop at 2 and one of 5 at 2 (not 3 // 2 = 1 and 5 // 2 = 2)."""
    from PIL import Image

    from vtm_tui.core.serving.inputs import load_inputs
    from vtm_tui.core.standard.spec import ModelSpec

    pixels = np.random.default_rng(5).integers(0, 256, (19, 21, 3), dtype=np.uint8)  # H=19, W=21
    Image.fromarray(pixels).save(tmp_path / "odd.png")
    spec = ModelSpec("classification", (3, 16, 16), 2, resize=(19, 21))  # no resizing: the image's own size
    got = load_inputs(str(tmp_path / "odd.png"), spec.input_shape, spec=spec).array[0]
    top, left = int(round(3 / 2.0)), int(round(5 / 2.0))
    assert (top, left) == (2, 2)
    expected = pixels[top:top + 16, left:left + 16].astype(np.float32).transpose(2, 0, 1) / 255.0
    assert np.allclose(got, expected, atol=1e-6)


def test_a_program_that_cannot_be_written_is_one_line_and_never_half_written(tmp_path, monkeypatch):
    torch.manual_seed(0)
    torch.save(nn.Conv2d(3, 2, 1).state_dict(), tmp_path / "w.pth")
    request = ConvertRequest(architecture="torch.nn:Conv2d", input_shape=(3, 4, 4),
                             arch_kwargs={"in_channels": 3, "out_channels": 2, "kernel_size": 1})
    (tmp_path / "a-folder.pt2").mkdir()
    for dst, where in ((tmp_path / "a-folder.pt2", "a-folder.pt2: cannot write the program there"),
                       (tmp_path / "missing" / "m.pt2", "m.pt2: cannot write the program there")):
        with pytest.raises(ExportFailed, match=where) as caught:
            convert_to_standard(tmp_path / "w.pth", dst, request)
        assert "\n" not in str(caught.value)
    # a disk that fills halfway through torch.export.save (a fault made here by hand): the
    # program already at dst is left as it was, and no temporary file stays behind
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "model-standard.pt2"
    dst.write_bytes(b"the previous program")
    real_save = torch.export.save

    def disk_full(program, f, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.export, "save", disk_full)
    with pytest.raises(ExportFailed, match=r"model-standard.pt2: cannot write the program \(OSError: .*No space"):
        convert_to_standard(tmp_path / "w.pth", dst, request)
    assert dst.read_bytes() == b"the previous program" and [p.name for p in dst.parent.iterdir()] == [dst.name]
    monkeypatch.setattr(torch.export, "save", real_save)
    assert convert_to_standard(tmp_path / "w.pth", dst, request).path == dst
    assert load_program(dst).kind == "pt2" and [p.name for p in dst.parent.iterdir()] == [dst.name]

    from vtm_tui.core.serving.fallback import predict_file
    from vtm_tui.errors import UserError

    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(UserError, match="input .*empty.npy: not a plain numeric .npy array"):
        predict_file(str(dst), source=str(tmp_path / "empty.npy"))
    result = subprocess.run([VTM_BIN, "predict", str(dst), "--input", "empty.npy"], cwd=tmp_path,
                            env=base_env(VTM_HOME=str(tmp_path / ".vtm")), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "empty.npy: not a plain numeric .npy array" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_of_images_is_a_batch_with_masks_and_progress(tmp_path):
    from PIL import Image

    from vtm_tui.core.serving.fallback import predict_file

    model = _unet()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    program = convert_to_standard(tmp_path / "w.pth", tmp_path / "model-standard.pt2",
                                  ConvertRequest(**UNET, class_names=["bg", "disc", "square"]))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        Image.fromarray(np.full((SIZE, SIZE, 3), 40 * i, np.uint8)).save(images / f"img{i}.png")
    (images / "notes.txt").write_text("not an image")
    seen = []
    result = predict_file(str(program.path), source=str(images), mask_path=str(tmp_path / "masks"),
                          outputs_path=str(tmp_path / "out.npy"), progress=lambda d, t: seen.append((d, t)))
    assert [s.input for s in result.samples] == [f"img{i}.png" for i in range(5)] and seen[-1] == (5, 5)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"img{i}.png" for i in range(5)]
    outputs = np.load(tmp_path / "out.npy")
    batch = np.stack([np.full((3, SIZE, SIZE), 40 * i / 255.0, np.float32) for i in range(5)])
    with torch.no_grad():
        assert np.allclose(outputs, model(torch.from_numpy(batch))["out"].numpy(), atol=1e-5)
    data = result.to_json()
    assert data["program"]["spec"]["class_names"] == ["bg", "disc", "square"] and len(data["samples"]) == 5
    assert result.lines()[1].startswith("  program: model-standard.pt2 (vtm-standard-v2) on ")
    assert result.lines()[2] == "  spec: " + program.spec.describe()


def _unet_program_and_images(tmp_path, count: int):
    from PIL import Image

    torch.save(_unet().state_dict(), tmp_path / "w.pth")
    program = convert_to_standard(tmp_path / "w.pth", tmp_path / "model-standard.pt2",
                                  ConvertRequest(**UNET, class_names=["bg", "disc", "square"]))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (SIZE + i, SIZE, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    return load_program(program.path), images


def test_a_folder_larger_than_the_batch_predicts_in_chunks_like_one_image_at_a_time(tmp_path):
    """7 images, 3 at a time: the same rows, masks and saved outputs as each image predicted alone;
    progress after each chunk up to the total; a .npy batch (float64, memory-mapped) likewise."""
    from vtm_tui.core.serving.fallback import predict_program

    program, images = _unet_program_and_images(tmp_path, 7)
    seen = []
    result = predict_program(program, str(images), mask_path=str(tmp_path / "masks"), batch_size=3,
                             outputs_path=str(tmp_path / "out.npy"), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 7), (6, 7), (7, 7)] and not (tmp_path / "out.npy.part").exists()
    alone = [predict_program(program, str(images / f"img{i}.png"), mask_path=str(tmp_path / f"one{i}.png"),
                             outputs_path=str(tmp_path / f"one{i}.npy")) for i in range(7)]
    assert [s.input for s in result.samples] == [f"img{i}.png" for i in range(7)]
    assert [s.shares for s in result.samples] == [one.samples[0].shares for one in alone]
    assert result.shares == alone[0].shares and result.preview == alone[0].preview
    for i in range(7):
        assert (tmp_path / "masks" / f"img{i}.png").read_bytes() == (tmp_path / f"one{i}.png").read_bytes()
    outputs = np.load(tmp_path / "out.npy")
    assert outputs.shape == (7, 3, SIZE, SIZE) and outputs.dtype == np.float32
    assert np.allclose(outputs, np.concatenate([np.load(tmp_path / f"one{i}.npy") for i in range(7)]), atol=1e-5)
    batch = np.random.default_rng(1).random((5, 3, SIZE, SIZE))  # float64: converted per chunk
    np.save(tmp_path / "x.npy", batch)
    from_npy = predict_program(program, str(tmp_path / "x.npy"), batch_size=2, outputs_path=str(tmp_path / "y.npy"))
    assert [s.input for s in from_npy.samples] == [f"x.npy[{i}]" for i in range(5)]
    assert np.allclose(np.load(tmp_path / "y.npy"), program.predict(batch.astype(np.float32)), atol=1e-6)


def test_a_folder_is_read_a_chunk_at_a_time_before_each_prediction(tmp_path, monkeypatch):
    """Streaming: when the first chunk is predicted, no more than one chunk's images have been
    decoded (not the whole folder), and progress still reaches the total."""
    from vtm_tui.core.serving import inputs as inputs_module
    from vtm_tui.core.serving.fallback import predict_program

    program, images = _unet_program_and_images(tmp_path, 7)
    decoded, decoded_at_forward = [], []
    real_preprocess, real_forward = inputs_module.preprocess_image, program.forward

    def counting_preprocess(path, shape, spec=None):
        decoded.append(path.name)
        return real_preprocess(path, shape, spec)

    def counting_forward(x):
        decoded_at_forward.append(len(decoded))
        return real_forward(x)

    monkeypatch.setattr(inputs_module, "preprocess_image", counting_preprocess)
    program.forward = counting_forward
    seen = []
    result = predict_program(program, str(images), batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert decoded_at_forward == [3, 6, 7] and decoded == [f"img{i}.png" for i in range(7)]
    assert seen[-1] == (7, 7) and len(result.samples) == 7


def test_a_batch_s_masks_named_like_a_png_go_to_a_folder_of_that_name(tmp_path):
    """The Serving tab asks for `last-mask.png`: one sample writes that file, a batch a folder
    `last-mask/` of one PNG per input (not a folder called last-mask.png)."""
    from vtm_tui.core.serving.predict_io import summarize

    outputs = np.zeros((2, 3, 4, 4), np.float32)
    outputs[1, 2] = 1.0  # the second input is all class 2
    result = summarize("segmentation", outputs, ["bg", "a", "b"], mask_path=str(tmp_path / "last-mask.png"),
                       names=["x.png", "y.png"])
    assert sorted(p.name for p in (tmp_path / "last-mask").iterdir()) == ["x.png", "y.png"]
    assert not (tmp_path / "last-mask.png").exists()
    assert [s.mask_path for s in result.samples] == [str(tmp_path / "last-mask" / n) for n in ("x.png", "y.png")]
    single = summarize("segmentation", outputs[1:], ["bg", "a", "b"], mask_path=str(tmp_path / "one.png"))
    assert single.samples[0].mask_path == str(tmp_path / "one.png") and (tmp_path / "one.png").is_file()
