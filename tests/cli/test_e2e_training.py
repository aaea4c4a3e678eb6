"""The two-command promise: the shipped classification task, launched headless against vtm's
embedded tracking server, is recorded identically in the run store, MLflow and TensorBoard."""
from __future__ import annotations

import json

import numpy as np
from fixtures.vtm import VtmEnv, base_env

from vtm_tui.core.runs.progress import PROGRESS_PREFIX
from vtm_tui.settings import Settings


def test_launch_classification_wait_against_embedded_server(tmp_path, embedded_server):
    env = base_env(VTM_HOME=str(embedded_server.home), VTM_MLFLOW_PORT=str(embedded_server.port))
    vtm = VtmEnv(tmp_path, env, Settings.load(cwd=tmp_path, environ=env))
    assert vtm.settings.embedded_tracking

    result = vtm.run("launch", "classification", "--set", "epochs=2", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded (exit code 0)" in result.stdout
    run = vtm.store.list()[0]
    assert (run.task, run.status, run.exit_code) == ("classification", "succeeded", 0)
    assert run.env["MLFLOW_TRACKING_URI"] == embedded_server.uri

    printed = [json.loads(line.split(PROGRESS_PREFIX, 1)[1])
               for line in open(run.log_path) if line.startswith(PROGRESS_PREFIX)]
    assert [p["epoch"] for p in printed] == [1, 2]
    assert run.progress == printed[-1]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(embedded_server.uri)
    mlflow_run = client.get_run(run.mlflow_run_id)
    assert mlflow_run.info.status == "FINISHED"
    for key in ("val_accuracy", "val_loss", "train_loss"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.mlflow_run_id, key))
        assert history == [(p["epoch"], p[key]) for p in printed], key

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = tmp_path / "outputs" / "tensorboard" / mlflow_run.info.run_name
    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = [(e.step, e.value) for e in events.Scalars("val/accuracy")]
    # event files store float32: the printed value rounded to float32 is exactly what is there
    assert scalars == [(p["epoch"], float(np.float32(p["val_accuracy"]))) for p in printed]
