"""The example training scripts and TrainingLogger, run as real subprocesses against a SQLite MLflow store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vtm_tui.core.runs.progress import MetaLine, ProgressLine, parse_line

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "vtm-train-tests"
SCRIPT_TIMEOUT = 300


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite tracking store with the test experiment's artifacts inside the tmp dir."""
    base = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(base / "artifacts").as_uri())
    return {"uri": uri, "base": base, "client": client}


@pytest.fixture
def tracking(store, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    yield store
    mlflow.set_tracking_uri(None)


def _env(store, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "VTM_RUN_ID")}
    env.update(MLFLOW_TRACKING_URI=store["uri"], PYTHONUNBUFFERED="1", **extra)
    return env


def _run(argv: list[str], store, cwd: Path, **env) -> tuple[dict, list[dict], subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=_env(store, **env),
        capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
    )
    print(f"{argv[:2]} took {time.perf_counter() - started:.1f}s")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    parsed = [parse_line(line) for line in proc.stdout.splitlines()]
    metas = [p.data for p in parsed if isinstance(p, MetaLine)]
    progress = [p.data for p in parsed if isinstance(p, ProgressLine)]
    assert len(metas) == 1, proc.stdout
    return metas[0], progress, proc


def _tb_scalars(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(event.step, event.value) for event in acc.Scalars(tag)]


def _as_float32(value: float) -> float:
    import numpy as np

    return float(np.float32(value))  # TensorBoard event files hold scalars as float32


def _check_run(store, meta, progress, *, epochs, metric_names, out_dir, params, architecture, vtm_run_id=None):
    import mlflow.pytorch
    import torch

    from vtm_tui.core.standard.architectures import build_model

    client = store["client"]
    run_id = meta["mlflow_run_id"]
    assert meta["tracking_uri"] == store["uri"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert meta["experiment_id"] == run.info.experiment_id == client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert meta["run_name"] == run.info.run_name
    for key, value in params.items():
        assert run.data.params[key] == value
    if vtm_run_id is not None:
        assert run.data.tags["vtm.run_id"] == vtm_run_id
    else:
        assert "vtm.run_id" not in run.data.tags

    # Epochs are numbered 1..N, in the progress lines, MLflow steps and TensorBoard steps alike.
    assert [p["epoch"] for p in progress] == list(range(1, epochs + 1))
    assert all(p["total_epochs"] == epochs for p in progress)
    tb_dir = out_dir / "tensorboard" / run.info.run_name
    for name in metric_names:
        printed = [p[name] for p in progress]
        assert all(isinstance(v, float) for v in printed)
        history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == list(zip(range(1, epochs + 1), printed, strict=True))
        tag = name.replace("_", "/", 1)
        expected = [(e, _as_float32(v)) for e, v in zip(range(1, epochs + 1), printed, strict=True)]
        assert _tb_scalars(tb_dir, tag) == expected

    ckpt_file = out_dir / "checkpoints" / run_id / "best_checkpoint.pth"
    assert ckpt_file.is_file()
    assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best_checkpoint.pth"]
    downloaded = client.download_artifacts(run_id, "checkpoints/best_checkpoint.pth", str(out_dir / "dl"))
    ckpt = torch.load(downloaded, weights_only=True)
    assert ckpt["format"] == "vtm-checkpoint-v1"
    assert ckpt["architecture"] == architecture
    assert ckpt["input_shape"] == [3, ckpt["image_size"], ckpt["image_size"]]
    assert len(ckpt["class_names"]) == ckpt["num_classes"]
    assert 1 <= ckpt["epoch"] <= epochs
    (best_name, best_value), = ckpt["metric"].items()
    assert best_value == max(p[best_name] for p in progress)
    rebuilt = build_model(ckpt["architecture"], ckpt["num_classes"], ckpt["image_size"])
    rebuilt.load_state_dict(ckpt["state_dict"])

    model = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    size = ckpt["image_size"]
    x = torch.rand(3, 3, size, size)  # a batch size the input example did not have
    rebuilt.eval()
    with torch.no_grad():
        out = model(x)
        assert out.shape[0] == 3 and out.shape[1] == ckpt["num_classes"]
        if ckpt["epoch"] == epochs:  # the logged model is the last epoch's
            torch.testing.assert_close(out, rebuilt(x))
    return run


def test_tb_tag():
    from vtm_tui.train.logger import tb_tag

    assert tb_tag("val_accuracy") == "val/accuracy"
    assert tb_tag("val_pixel_accuracy") == "val/pixel_accuracy"
    assert tb_tag("loss") == "loss"


def test_classification_module(tracking, tmp_path):
    out = tmp_path / "out"
    meta, progress, _ = _run(
        ["-m", "vtm_tui.train.classification", "--epochs", "2", "--samples", "64",
         "--experiment_name", EXPERIMENT, "--output_dir", str(out)],
        tracking, cwd=tmp_path, VTM_RUN_ID="vtm-42",
    )
    assert len(progress) == 2
    assert set(progress[0]) == {"epoch", "total_epochs", "train_loss", "val_loss", "val_accuracy"}
    _check_run(
        tracking, meta, progress, epochs=2, out_dir=out,
        metric_names=["train_loss", "val_loss", "val_accuracy"],
        params={"epochs": "2", "samples": "64", "batch_size": "32", "learning_rate": "0.001",
                "num_classes": "5", "image_size": "32", "seed": "42", "device": "auto"},
        architecture="SmallCNN", vtm_run_id="vtm-42",
    )


def test_segmentation_script_path(tracking, tmp_path):
    out = tmp_path / "out"
    meta, progress, _ = _run(
        [str(ROOT / "vtm_tui" / "train" / "segmentation.py"), "--epochs", "1", "--samples", "32",
         "--experiment_name", EXPERIMENT, "--output_dir", str(out), "--run_name", "seg-smoke"],
        tracking, cwd=tmp_path,
    )
    assert meta["run_name"] == "seg-smoke"
    assert len(progress) == 1
    assert set(progress[0]) == {"epoch", "total_epochs", "train_loss", "val_loss", "val_miou", "val_pixel_accuracy"}
    assert 0.0 <= progress[0]["val_miou"] <= 1.0 and 0.0 <= progress[0]["val_pixel_accuracy"] <= 1.0
    _check_run(
        tracking, meta, progress, epochs=1, out_dir=out,
        metric_names=["train_loss", "val_loss", "val_miou", "val_pixel_accuracy"],
        params={"epochs": "1", "samples": "32", "num_classes": "3", "image_size": "64", "run_name": "seg-smoke"},
        architecture="TinySegNet",
    )


_LOGGER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from vtm_tui.train import TrainingLogger
    with TrainingLogger(experiment_name=sys.argv[1], params={"mode": sys.argv[2]}, tb_dir=sys.argv[3]) as tl:
        tl.log_epoch(1, 3, {"train_loss": 0.5})
        print("READY", flush=True)
        if sys.argv[2] == "fail":
            raise ValueError("boom")
        if sys.argv[2] == "wait":
            time.sleep(120)
    """
)


@pytest.mark.parametrize(
    ("mode", "signum", "status"),
    [("ok", None, "FINISHED"), ("fail", None, "FAILED"),
     ("wait", signal.SIGINT, "KILLED"), ("wait", signal.SIGTERM, "KILLED")],
)
def test_run_status(tracking, tmp_path, mode, signum, status):
    tb_dir = tmp_path / "tb" / "{run_name}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOGGER_SCRIPT, EXPERIMENT, mode, str(tb_dir)],
        cwd=tmp_path, env=_env(tracking), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("READY"):
                break
        if signum is not None:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    meta = next(p.data for p in map(parse_line, lines) if isinstance(p, MetaLine))
    assert (proc.returncode == 0) == (status == "FINISHED"), err
    run = tracking["client"].get_run(meta["mlflow_run_id"])
    assert run.info.status == status, err
    assert run.data.params["mode"] == mode
    assert _tb_scalars(tmp_path / "tb" / run.info.run_name, "train/loss") == [(1, 0.5)]
