"""Torch Standard files and the local loader (vtm_tui.core.standard.loader)."""
from __future__ import annotations

import hashlib

import pytest
import torch
from fixtures.ftp import write_checkpoint

from vtm_tui.core.standard.architectures import TinySegNet
from vtm_tui.core.standard.loader import (
    STANDARD_FORMAT,
    CheckpointError,
    UnsafeCheckpoint,
    convert_to_standard,
    load_model,
    safe_load,
)
from vtm_tui.train.common import checkpoint_dict


def test_convert_then_load_gives_the_same_model(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=4)
    meta = convert_to_standard(ckpt, tmp_path / "model-standard.pt")
    assert meta == {"format": STANDARD_FORMAT, "task_type": "classification", "architecture": "SmallCNN",
                    "num_classes": 4, "image_size": 16, "input_shape": [3, 16, 16],
                    "class_names": ["c0", "c1", "c2", "c3"]}
    # plain torch reads it safely: tensors and plain values only
    raw = torch.load(tmp_path / "model-standard.pt", weights_only=True)
    assert set(raw) == {"format", "task_type", "architecture", "num_classes", "image_size", "input_shape",
                        "class_names", "state_dict"}
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())

    model, info = load_model(tmp_path / "model-standard.pt")
    original, _ = load_model(ckpt)  # the vtm checkpoint loads as well
    x = torch.rand(2, 3, 16, 16, device=info["device"])
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
        cpu_model, _ = load_model(tmp_path / "model-standard.pt", device="cpu")
        assert torch.allclose(cpu_model(x.cpu()), model(x).cpu(), atol=1e-5)
    assert not model.training
    assert info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(model.parameters()).device.type == info["device"]
    assert info["format"] == STANDARD_FORMAT and info["path"].endswith("model-standard.pt")
    assert load_model(ckpt, device="cpu")[1]["metric"] == {"val_accuracy": 0.5}


def test_conversion_is_deterministic(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth")
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        convert_to_standard(ckpt, tmp_path / sub / "model-standard.pt")
    digests = {hashlib.sha256((tmp_path / s / "model-standard.pt").read_bytes()).hexdigest() for s in "ab"}
    assert len(digests) == 1  # so re-publishing the same checkpoint is recognised as a no-op


def test_segmentation_checkpoint(tmp_path):
    model = TinySegNet(3, 24)
    torch.save(checkpoint_dict(task_type="segmentation", model=model, num_classes=3, image_size=24,
                               class_names=["bg", "a", "b"], epoch=2, metric={"val_miou": 0.4}), tmp_path / "s.pth")
    convert_to_standard(tmp_path / "s.pth", tmp_path / "model-standard.pt")
    loaded, info = load_model(tmp_path / "model-standard.pt", device="cpu")
    assert info["architecture"] == "TinySegNet" and info["class_names"] == ["bg", "a", "b"]
    assert loaded(torch.rand(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_plain_state_dict_needs_architecture_and_classes(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=3)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="architecture is unknown"):
        load_model(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="number of classes"):
        load_model(tmp_path / "weights.pt", architecture="SmallCNN")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "weights.pt", architecture="SmallCNN", num_classes=7)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_model(tmp_path / "weights.pt", architecture="ResNet9000", num_classes=3)
    model, info = load_model(tmp_path / "weights.pt", architecture="SmallCNN", num_classes=3)
    assert info["format"] == "state_dict" and info["task_type"] == "classification"
    model, info = load_model(tmp_path / "weights.pt", task_type="classification", num_classes=3, device="cpu")
    assert info["architecture"] == "SmallCNN"
    meta = convert_to_standard(tmp_path / "weights.pt", tmp_path / "model-standard.pt",
                               task_type="classification", num_classes=3)
    assert meta["class_names"] == ["class_0", "class_1", "class_2"]
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")  # common training-loop layout
    assert load_model(tmp_path / "wrapped.pt", architecture="SmallCNN", num_classes=3)[1]["num_classes"] == 3


def test_arguments_that_contradict_the_file_are_refused(tmp_path):
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=3)
    with pytest.raises(CheckpointError, match="num_classes = 3"):
        convert_to_standard(ckpt, tmp_path / "s.pt", num_classes=5)
    with pytest.raises(CheckpointError, match="task_type"):
        load_model(ckpt, task_type="segmentation")


def test_a_pulled_folder_loads_its_standard_file_or_its_checkpoint(tmp_path):
    ckpt = write_checkpoint(tmp_path / "x" / "checkpoint.pth")
    assert load_model(tmp_path / "x")[1]["format"] == "vtm-checkpoint-v1"
    convert_to_standard(ckpt, tmp_path / "x" / "model-standard.pt")
    assert load_model(tmp_path / "x")[1]["format"] == STANDARD_FORMAT
    with pytest.raises(CheckpointError, match="no model-standard.pt"):
        load_model(tmp_path)


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
    for path in ("evil.pth", "config.pth", "whole-module.pt"):
        for call in (lambda p: safe_load(p), lambda p: load_model(p, architecture="SmallCNN", num_classes=3),
                     lambda p: convert_to_standard(p, tmp_path / "s.pt", architecture="SmallCNN", num_classes=3)):
            with pytest.raises(UnsafeCheckpoint, match="refused") as err:
                call(tmp_path / path)
            assert "weights_only=False" in str(err.value)  # says it will not, never suggests it
    assert not marker.exists()
    assert not (tmp_path / "s.pt").exists()


def test_unreadable_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"definitely not torch")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_model(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.pth")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_model(tmp_path / "list.pt", architecture="SmallCNN", num_classes=3)
