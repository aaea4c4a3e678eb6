"""The test-only user project (tests/user_project/): a user's own train.py and networks, as vtm sees them.

Groundwork for "any model architecture": the user's script trains in a subprocess and saves its
checkpoint the usual ways; the networks export with torch.export (dynamic batch) and the saved
.pt2 predicts in a fresh process that has no copy of the user's code on sys.path.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from fixtures.user_project import TRAIN, user_models

from vtm_tui.core.runs.progress import MetaLine, ProgressLine, parse_line

SIZE = 16  # image side: divisible by 4 for the UNet
FAST = ["--epochs", "1", "--samples", "24", "--image_size", str(SIZE), "--batch_size", "8", "--width", "4",
        "--num_classes", "3", "--no_mlflow"]


def _user_models():
    return user_models()


def _train(tmp_path: Path, *args: str, tracking_uri: str | None = None) -> tuple[dict, Path, float]:
    """Run the user's script as vtm does; (its last progress record plus any run meta, output dir, seconds)."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    argv = [*FAST, *args]
    if tracking_uri:
        env.update(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_EXPERIMENT_NAME="user-project")
        argv.remove("--no_mlflow")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(TRAIN), *argv, "--output_dir", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    parsed = [parse_line(line) for line in proc.stdout.splitlines()]
    progress = [p.data for p in parsed if isinstance(p, ProgressLine)]
    metas = [p.data for p in parsed if isinstance(p, MetaLine)]
    assert len(metas) == (1 if tracking_uri else 0), proc.stdout  # run meta only when logging to MLflow
    assert [p["epoch"] for p in progress] == [1] and progress[0]["total_epochs"] == 1, proc.stdout
    return {**progress[-1], **(metas[0] if metas else {})}, out, seconds


def _is_state_dict(value, prefix: str = "") -> bool:
    return (isinstance(value, dict) and bool(value) and all(isinstance(t, torch.Tensor) for t in value.values())
            and all(key.startswith(prefix) for key in value))


@pytest.mark.parametrize("arch, fmt", [
    ("resnet", "plain"),
    ("unet", "wrapped"),
    ("resnet", "dataparallel"),
    ("unet", "compile"),
])
def test_the_user_script_trains_one_epoch_and_saves_its_checkpoint(tmp_path, arch, fmt):
    progress, out, seconds = _train(tmp_path, "--arch", arch, "--checkpoint_format", fmt)
    metric = "val_accuracy" if arch == "resnet" else "val_miou"
    assert 0.0 <= progress[metric] <= 1.0 and progress["train_loss"] > 0
    assert seconds < 120, f"one tiny epoch took {seconds:.0f}s"

    raw = torch.load(out / "checkpoint.pth", weights_only=True)  # all of these are tensors and plain values
    prefix = {"dataparallel": "module.", "compile": "_orig_mod."}.get(fmt, "")
    if fmt == "wrapped":
        assert set(raw) == {"epoch", "model_state_dict", "optimizer_state_dict"} and raw["epoch"] == 1
        assert set(raw["optimizer_state_dict"]) == {"state", "param_groups"}
        state = raw["model_state_dict"]
    else:
        state = raw
    assert _is_state_dict(state, prefix), sorted(state)[:5]
    # the bare names load into a fresh network: the prefix is all that differs
    model = _user_models().build_model(arch, num_classes=3, width=4)
    model.load_state_dict({key.removeprefix(prefix): value for key, value in state.items()})
    if arch == "resnet":
        assert any(".downsample." in key for key in state) and any(key.endswith("running_var") for key in state)


class _Opaque:
    """Stands in for a global that torch's weights_only unpickler refuses: calls nothing, keeps the arguments."""

    def __new__(cls, *args, **kwargs):
        made = object.__new__(cls)
        made.args = args
        return made

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


def _load_without_running_code(path: Path) -> dict:
    """A checkpoint read by the weights_only unpickler, each refused global (found statically, never
    imported) replaced by an inert stand-in: the tensors come back, nothing in the file runs."""
    refused = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    stand_ins = [(type(name, (_Opaque,), {}), name) for name in refused]
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, weights_only=True, map_location="cpu")


@pytest.mark.parametrize("arch, hparams", [("resnet", "plain"), ("unet", "rich")])
def test_a_lightning_trainer_writes_a_real_ckpt(tmp_path, arch, hparams):
    pytest.importorskip("pytorch_lightning")
    progress, out, _ = _train(tmp_path, "--arch", arch, "--checkpoint_format", "lightning", "--limit_batches", "2",
                              "--lightning_hparams", hparams)
    assert "val_accuracy" in progress if arch == "resnet" else "val_miou" in progress
    ckpt = out / "best.ckpt"
    raw = torch.load(ckpt, weights_only=False)  # trusted here: the test wrote it
    assert {"epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
            "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters"} <= set(raw)
    assert raw["epoch"] == 0 and raw["global_step"] == 2 and raw["pytorch-lightning_version"].startswith("2.")
    expected = {"arch": arch, "num_classes": 3, "width": 4, "learning_rate": 0.01}
    assert {k: v for k, v in raw["hyper_parameters"].items() if k in expected} == expected
    assert any(key.startswith("ModelCheckpoint") for key in raw["callbacks"])
    assert _is_state_dict(raw["state_dict"], "model.")

    refused = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    if hparams == "plain":
        assert refused == set() and set(torch.load(ckpt, weights_only=True)) == set(raw)
    else:  # a Path and a numpy float among the hyper-parameters: the whole file is refused
        assert "pathlib.PosixPath" in refused and any(name.endswith("multiarray.scalar") for name in refused)
        with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
            torch.load(ckpt, weights_only=True)
    state = _load_without_running_code(ckpt)["state_dict"]
    assert state.keys() == raw["state_dict"].keys()
    model = _user_models().build_model(arch, num_classes=3, width=4)
    model.load_state_dict({key.removeprefix("model."): value for key, value in state.items()})


def _export(model: torch.nn.Module, example: torch.Tensor):
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}})


def _outputs(value) -> dict[str, torch.Tensor]:
    return value if isinstance(value, dict) else {"logits": value}


@pytest.mark.parametrize("arch", ["resnet", "unet"])
def test_torch_export_round_trips_with_a_dynamic_batch(tmp_path, arch):
    torch.manual_seed(0)
    model = _user_models().build_model(arch, num_classes=3, width=4)
    model.train()
    with torch.no_grad():  # move the BatchNorm running statistics off their initial values
        model(torch.rand(8, 3, SIZE, SIZE))
    model.eval()

    ep = _export(model, torch.rand(2, 3, SIZE, SIZE))  # batch 2: a batch of 1 would specialise to 1
    spec = {"format": "vtm-test", "arch": arch, "input_shape": [3, SIZE, SIZE]}
    path = tmp_path / "model.pt2"
    torch.export.save(ep, path, extra_files={"vtm_spec.json": json.dumps(spec)})

    names = zipfile.ZipFile(path).namelist()
    assert "model/extra/vtm_spec.json" in names and "model/models/model.json" in names
    assert any(name.startswith("model/data/weights/weight_") for name in names)

    extra = {"vtm_spec.json": ""}
    loaded = torch.export.load(path, extra_files=extra)
    assert json.loads(extra["vtm_spec.json"]) == spec
    module = loaded.module()
    for batch in (1, 2, 5):
        x = torch.rand(batch, 3, SIZE, SIZE)
        with torch.no_grad():
            expected, got = _outputs(model(x)), _outputs(module(x))
        assert set(got) == set(expected) == ({"out", "aux"} if arch == "unet" else {"logits"})
        for key, value in expected.items():
            assert got[key].shape == value.shape and value.shape[0] == batch
            assert torch.allclose(got[key], value, atol=1e-5), (key, (got[key] - value).abs().max())

    # A fresh process, in an empty folder, with no copy of the user's code on sys.path, predicts the same.
    x = torch.rand(3, 3, SIZE, SIZE)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(_outputs(model(x)), tmp_path / "expected.pt")
    code = (
        "import sys, torch\n"
        "assert not any('user_project' in p for p in sys.path)\n"
        "m = torch.export.load('model.pt2').module()\n"
        "x = torch.load('x.pt', weights_only=True)\n"
        "e = torch.load('expected.pt', weights_only=True)\n"
        "y = m(x)\n"
        "y = y if isinstance(y, dict) else {'logits': y}\n"
        "assert all(torch.allclose(y[k], e[k], atol=1e-5) for k in e), 'outputs differ'\n"
        "assert 'models' not in sys.modules and 'vtm_test_user_models' not in sys.modules\n"
        "print('SAME', sorted(y))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "SAME" in proc.stdout, proc.stderr


def test_the_user_script_logs_a_pt2_model_to_mlflow(tmp_path, monkeypatch):
    """MLflow 3 stores `log_model(name="model")` as a LoggedModel whose data/model.pt2 is a torch.export
    archive; a dict output needs an explicit signature (MLflow infers one only for a single tensor)."""
    pytest.importorskip("mlflow")
    import mlflow.pytorch
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("user-project", artifact_location=(tmp_path / "art").as_uri())
    progress, out, _ = _train(tmp_path, "--arch", "unet", "--checkpoint_format", "wrapped", tracking_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(progress["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["val_miou"] == progress["val_miou"]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["checkpoints"]  # the model is not here
    logged_models = {m.name: m for m in (client.get_logged_model(o.model_id) for o in run.outputs.model_outputs)}
    assert set(logged_models) == {"model", "model_out"}  # the dict-output net, and its servable "out" view
    logged = logged_models["model"]
    assert logged.model_id.startswith("m-")
    files = {a.path for a in client.list_logged_model_artifacts(logged.model_id, "data")}
    assert files == {"data/model.pt2"}

    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, dst_path=str(tmp_path / "dl"),
                                                tracking_uri=uri)
    mlmodel = (Path(local) / "MLmodel").read_text()
    assert '"name": "out"' in mlmodel and '"name": "aux"' in mlmodel and "model_id: " + logged.model_id in mlmodel
    names = zipfile.ZipFile(Path(local) / "data" / "model.pt2").namelist()
    assert "model/models/model.json" in names and "model/data/sample_inputs/model.pt" in names

    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)  # MLflow checks the archive first
    module = mlflow.pytorch.load_model(local)
    with torch.no_grad():
        result = module(torch.rand(1, 3, SIZE, SIZE))  # batch 1, though logged with a batch of 2
    assert set(result) == {"out", "aux"} and result["out"].shape == (1, 3, SIZE, SIZE)
