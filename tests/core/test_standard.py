"""Torch Standard programs of vtm's own example models, and the files vtm wrote before them:
conversion to model-standard.pt2 (torch.export), the local loader, v1 files and vtm checkpoints
that keep loading, and refusals (vtm_tui.core.standard)."""
from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
import torch
from fixtures.ftp import write_checkpoint
from torch import nn

from vtm_tui.core.standard import (
    CheckpointError,
    ConvertRequest,
    UnsafeCheckpoint,
    convert_to_standard,
    load_program,
    safe_load,
)
from vtm_tui.core.standard.architectures import SmallCNN, TinySegNet
from vtm_tui.train.common import checkpoint_dict


def _outputs(program, x: torch.Tensor):
    return torch.from_numpy(program.predict(x.numpy()))


def test_convert_then_load_gives_the_same_model(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=4)
    result = convert_to_standard(ckpt, tmp_path / "model-standard.pt2")
    assert result.spec.to_json() == {
        "format": "vtm-standard-v2", "task_type": "classification", "input_shape": [3, 16, 16], "num_classes": 4,
        "class_names": ["c0", "c1", "c2", "c3"], "input_dtype": "float32", "channel_order": "RGB", "resize": None,
        "mean": None, "std": None, "output_kind": "logits", "output_key": None, "architecture": "SmallCNN",
        "arch_kwargs": {"num_classes": 4, "image_size": 16}}
    assert result.conversion.source == "checkpoint" and result.conversion.max_abs_diff < 1e-5
    assert result.conversion.batches == [2, 3] and result.conversion.torch_version == torch.__version__

    # the archive carries its spec and conversion record as JSON: no pickle besides torch's sample inputs
    names = zipfile.ZipFile(tmp_path / "model-standard.pt2").namelist()
    assert "model-standard/extra/vtm_spec.json" in names and "model-standard/extra/vtm_conversion.json" in names
    program = load_program(tmp_path / "model-standard.pt2")
    assert program.kind == "pt2" and program.format == "vtm-standard-v2" and program.spec == result.spec
    assert program.conversion["max_abs_diff"] == result.conversion.max_abs_diff
    assert program.device == ("cuda" if torch.cuda.is_available() else "cpu")

    original = load_program(ckpt, device="cpu")  # the vtm checkpoint loads as well
    assert original.kind == "checkpoint" and original.format == "vtm-checkpoint-v1"
    for batch in (1, 2, 7):  # the batch dimension is dynamic
        x = torch.rand(batch, 3, 16, 16)
        assert torch.allclose(_outputs(program, x), _outputs(original, x), atol=1e-5)
    assert "metric: {'val_accuracy': 0.5}" in original.notes


def test_conversion_is_deterministic(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth")
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        convert_to_standard(ckpt, tmp_path / sub / "model-standard.pt2")
    digests = {hashlib.sha256((tmp_path / s / "model-standard.pt2").read_bytes()).hexdigest() for s in "ab"}
    assert len(digests) == 1  # so re-publishing the same checkpoint is recognised as a no-op


def test_segmentation_checkpoint(tmp_path):
    model = TinySegNet(3, 24)
    torch.save(checkpoint_dict(task_type="segmentation", model=model, num_classes=3, image_size=24,
                               class_names=["bg", "a", "b"], epoch=2, metric={"val_miou": 0.4}), tmp_path / "s.pth")
    result = convert_to_standard(tmp_path / "s.pth", tmp_path / "model-standard.pt2")
    program = load_program(tmp_path / "model-standard.pt2", device="cpu")
    assert program.spec.task_type == "segmentation" and program.spec.class_names == ["bg", "a", "b"]
    assert result.spec.architecture == "TinySegNet"
    assert program.predict(torch.rand(3, 3, 24, 24).numpy()).shape == (3, 3, 24, 24)


@pytest.mark.parametrize("layout", ["dataparallel", "compile", "model_state_dict"])
def test_wrapped_checkpoints_of_the_example_convert(tmp_path, layout):
    """The issue's reproduction: a DataParallel state dict under "state_dict" failed with Missing key(s) /
    Unexpected key(s); torch.compile's `_orig_mod.` keys likewise."""
    torch.manual_seed(1)
    model = SmallCNN(3, 32)
    if layout == "dataparallel":
        torch.save({"epoch": 12, "state_dict": nn.DataParallel(model).state_dict()}, tmp_path / "best.pth")
    elif layout == "compile":
        torch.save(torch.compile(model, backend="eager").state_dict(), tmp_path / "best.pth")
    else:
        torch.save({"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": {}},
                   tmp_path / "best.pth")
    result = convert_to_standard(tmp_path / "best.pth", tmp_path / "model-standard.pt2",
                                 ConvertRequest(task_type="classification", num_classes=3))
    prefix = {"dataparallel": "module.", "compile": "_orig_mod."}.get(layout)
    assert (f"stripped the key prefix {prefix!r}" in result.conversion.notes) == bool(prefix)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model.eval()(x)
    assert torch.allclose(_outputs(load_program(tmp_path / "model-standard.pt2"), x), expected, atol=1e-5)


def test_plain_state_dict_needs_architecture_and_classes(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=3)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="architecture is unknown: give it as --arch"):
        load_program(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="number of classes"):
        load_program(tmp_path / "weights.pt", architecture="SmallCNN")
    with pytest.raises(CheckpointError, match=r"do not fit SmallCNN\(num_classes=7\): shape mismatch 2: "
                                              r"classifier.weight \(3, 32\) vs \(7, 32\)"):
        load_program(tmp_path / "weights.pt", architecture="SmallCNN", num_classes=7)
    with pytest.raises(CheckpointError, match="unknown architecture 'ResNet9000'"):
        load_program(tmp_path / "weights.pt", architecture="ResNet9000", num_classes=3)
    program = load_program(tmp_path / "weights.pt", architecture="SmallCNN", num_classes=3)
    assert program.format == "state_dict" and program.spec.task_type == "classification"
    program = load_program(tmp_path / "weights.pt", task_type="classification", num_classes=3, device="cpu")
    assert program.spec.architecture == "SmallCNN"
    result = convert_to_standard(tmp_path / "weights.pt", tmp_path / "model-standard.pt2",
                                 ConvertRequest(task_type="classification", num_classes=3))
    assert result.spec.class_names == ["class_0", "class_1", "class_2"]


def test_arguments_that_contradict_the_file_are_refused(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=3)
    with pytest.raises(CheckpointError, match="num_classes = 3"):
        convert_to_standard(ckpt, tmp_path / "s.pt2", ConvertRequest(num_classes=5))
    with pytest.raises(CheckpointError, match="task_type"):
        load_program(ckpt, task_type="segmentation")
    assert not (tmp_path / "s.pt2").exists()


def _v1_file(path, model, num_classes: int, image_size: int):
    """A Torch Standard v1 file exactly as vtm wrote them before v2 (tensors and plain values)."""
    torch.save({"format": "vtm-standard-v1", "task_type": "classification", "architecture": "SmallCNN",
                "num_classes": num_classes, "image_size": image_size, "input_shape": [3, image_size, image_size],
                "class_names": [f"k{i}" for i in range(num_classes)],
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}, path)
    return path


def test_v1_files_keep_loading(tmp_path):
    model = SmallCNN(4, 16).eval()
    program = load_program(_v1_file(tmp_path / "model-standard.pt", model, 4, 16), device="cpu")
    assert (program.kind, program.format) == ("v1", "vtm-standard-v1")
    assert program.spec.class_names == ["k0", "k1", "k2", "k3"] and program.spec.input_shape == (3, 16, 16)
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(_outputs(program, x), model(x), atol=1e-6)


def test_a_pulled_folder_loads_its_standard_program_first(tmp_path):
    folder = tmp_path / "x"
    ckpt = write_checkpoint(folder / "checkpoint.pth")
    assert load_program(folder).format == "vtm-checkpoint-v1"
    _v1_file(folder / "model-standard.pt", SmallCNN(3, 16), 3, 16)
    assert load_program(folder).format == "vtm-standard-v1"
    convert_to_standard(ckpt, folder / "model-standard.pt2")
    assert load_program(folder).format == "vtm-standard-v2"
    with pytest.raises(CheckpointError, match="no model-standard.pt2"):
        load_program(tmp_path)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _Config:  # an innocent but non-allow-listed object, as a Namespace in a checkpoint would be
    lr = 0.1


def test_unsafe_checkpoints_are_refused_and_the_payload_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    model_state = torch.load(write_checkpoint(tmp_path / "best.pth"), weights_only=True)["state_dict"]
    torch.save({"state_dict": model_state, "x": _Payload(marker)}, tmp_path / "evil.pth")
    torch.save({"state_dict": model_state, "config": _Config()}, tmp_path / "config.pth")
    torch.save(TinySegNet(2, 8), tmp_path / "whole-module.pt")  # torch.save(model): a pickled class
    request = ConvertRequest(architecture="SmallCNN", num_classes=3)
    for path in ("evil.pth", "config.pth", "whole-module.pt"):
        for call in (lambda p: safe_load(p), lambda p: load_program(p, architecture="SmallCNN", num_classes=3),
                     lambda p: convert_to_standard(p, tmp_path / "s.pt2", request)):
            with pytest.raises(UnsafeCheckpoint, match="refused") as err:
                call(tmp_path / path)
            assert "weights_only=False" in str(err.value)  # says it will not, never suggests it
    assert not marker.exists()
    assert not (tmp_path / "s.pt2").exists()


def test_unreadable_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"definitely not torch")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_program(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_program(tmp_path / "missing.pth")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_program(tmp_path / "list.pt", architecture="SmallCNN", num_classes=3)


def test_the_spec_round_trips_and_checks_its_fields():
    from vtm_tui.core.standard.spec import ModelSpec, SpecError

    spec = ModelSpec("segmentation", (3, 64, 48), 2, class_names=["bg", "fg"], mean=(0.5,), std=(0.25, 0.25, 0.25),
                     resize=(72, 54), channel_order="BGR", output_key="out")
    assert ModelSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.describe() == ("segmentation 3x64x48 float32 BGR, resize 72x54 + centre crop, mean [0.5] std "
                               "[0.25, 0.25, 0.25] -> logits['out'] (2 classes)")
    for bad, message in ((dict(task_type="detection"), "task type"), (dict(input_shape=(3, 0, 4)), "input shape"),
                         (dict(std=(0.0,)), "std values"), (dict(mean=(1, 2)), "mean has 2 values"),
                         (dict(class_names=["a"]), "1 class names for 2 classes"),
                         (dict(output_kind="scores"), "output kind")):
        with pytest.raises(SpecError, match=message):
            ModelSpec(**{**dict(task_type="segmentation", input_shape=(3, 8, 8), num_classes=2), **bad})
    with pytest.raises(SpecError, match="where.json: malformed"):
        ModelSpec.from_json({"task_type": "classification"}, "where.json")
