"""Faults of the tracking server, through the real `vtm` binary, real training processes and real
MLflow servers: killed mid-run (its whole process group), gone for good, unreachable at launch
(nothing listening; accepts and never answers), back during the run; the spool delivered by
`vtm mlflow up` / `vtm mlflow sync`."""
from __future__ import annotations

import json
import os
import signal
import time
import uuid

import numpy as np
from fixtures.vtm import DATA, REPO, VtmEnv, base_env, free_port, make_vtm_env

from vtm_tui.core.runs.progress import PROGRESS_PREFIX
from vtm_tui.core.tracking.spool import Spool
from vtm_tui.settings import Settings


def _printed(run) -> list[dict]:
    return [json.loads(line.split(PROGRESS_PREFIX, 1)[1]) for line in open(run.log_path)
            if line.startswith(PROGRESS_PREFIX)]


def _said(log: str, what: str) -> int:
    """How many log lines of vtm's (`[vtm] ...`) start with `what`."""
    return sum(line.startswith(f"[vtm] {what}") for line in log.splitlines())


def _tb(tb_dir, tag) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _history(client, run_id, key) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _assert_metrics_equal_tensorboard(client, mlflow_run_id, tb_dir, printed, keys):
    """Every epoch in MLflow exactly as printed, and TensorBoard holding the same values (float32)."""
    for key in keys:
        expected = [(p["epoch"], p[key]) for p in printed]
        assert _history(client, mlflow_run_id, key) == expected, key
        assert _tb(tb_dir, key.replace("_", "/", 1)) == [(e, float(np.float32(v))) for e, v in expected], key


def test_server_group_killed_mid_run_training_succeeds_and_up_delivers_everything(tmp_path):
    port = free_port()
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_MLFLOW_PORT=str(port),
                   TRAINING_CATALOG_PATH=str(REPO / "catalog.yaml"), VTM_CANCEL_GRACE="2")
    vtm = VtmEnv(tmp_path, env, Settings.load(cwd=tmp_path, environ=env))
    try:
        vtm.run("mlflow", "up", check=True)
        run = vtm.launch_json("classification", "--set", "epochs=6", "--set", "samples=800")
        vtm.wait_for(run.id, lambda r: r.progress.get("epoch", 0) >= 2 and r.mlflow_run_id, timeout=240)
        server = json.loads((tmp_path / ".vtm" / "mlflow" / "server.json").read_text())
        os.killpg(server["pid"], signal.SIGKILL)  # the whole group: mlflow, uvicorn and its workers

        run = vtm.wait_finished(run.id, timeout=400)
        assert (run.status, run.exit_code) == ("succeeded", 0), run.message
        log = open(run.log_path).read()
        assert _said(log, "MLflow unreachable at") == 1, log  # said once
        assert "vtm mlflow sync" in run.message and "spooled" in run.message
        printed = _printed(run)
        assert [p["epoch"] for p in printed] == [1, 2, 3, 4, 5, 6]
        spool = Spool.of_run(run.run_dir)
        assert any(r["kind"] == "metrics" for r in spool.records()) and spool.pending()

        result = vtm.run("mlflow", "up", check=True)
        assert f"run {run.id}: " in result.stdout and "status FINISHED" in result.stdout, result.stdout

        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{port}")
        mlflow_run = client.get_run(run.mlflow_run_id)
        assert mlflow_run.info.status == "FINISHED"
        tb_dir = tmp_path / "outputs" / "tensorboard" / mlflow_run.info.run_name
        _assert_metrics_equal_tensorboard(client, run.mlflow_run_id, tb_dir, printed,
                                          ["train_loss", "val_loss", "val_accuracy"])
        assert [a.path for a in client.list_artifacts(run.mlflow_run_id, "checkpoints")] == \
            ["checkpoints/best_checkpoint.pth"]
        import mlflow.pytorch
        import torch

        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        try:  # the model saved while the server was away is the run's logged model now
            model = mlflow.pytorch.load_model(f"runs:/{run.mlflow_run_id}/model")
        finally:
            mlflow.set_tracking_uri(None)
        assert model(torch.rand(3, 3, 32, 32)).shape == (3, 5)
        assert "delivered" in vtm.store.get(run.id).message

        again = vtm.run("mlflow", "sync", check=True)  # nothing left, nothing sent twice
        assert "nothing spooled" in again.stdout
        assert len(client.get_metric_history(run.mlflow_run_id, "val_loss")) == 6
    finally:
        vtm.run("mlflow", "down")


def test_server_gone_for_good_run_succeeds_and_sync_delivers_later(tmp_path, embedded_server, tcp_proxy):
    proxy = tcp_proxy(embedded_server.port)
    proxy.up()
    experiment = f"gone-{uuid.uuid4().hex[:8]}"
    vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=proxy.uri, TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    run = vtm.launch_json("logger", "--set", "epochs=8", "--set", "sleep=0.5", "--set", f"experiment={experiment}")
    run = vtm.wait_for(run.id, lambda r: r.progress.get("epoch", 0) >= 2 and r.mlflow_run_id)
    proxy.down()  # never back while the run lasts

    run = vtm.wait_finished(run.id)
    assert (run.status, run.exit_code) == ("succeeded", 0), run.message
    assert f"vtm mlflow sync {run.id}" in run.message
    printed = _printed(run)
    assert [p["epoch"] for p in printed] == list(range(1, 9))
    from mlflow.tracking import MlflowClient

    direct = MlflowClient(embedded_server.uri)
    assert direct.get_run(run.mlflow_run_id).info.status == "RUNNING"
    assert len(direct.get_metric_history(run.mlflow_run_id, "train_loss")) < 8

    assert vtm.run("mlflow", "sync", str(run.id)).returncode == 2  # still away: one line, exit 2
    proxy.up()
    result = vtm.run("mlflow", "sync", check=True)
    assert f"run {run.id}: " in result.stdout and "status FINISHED" in result.stdout, result.stdout
    mlflow_run = direct.get_run(run.mlflow_run_id)
    assert mlflow_run.info.status == "FINISHED"
    tb_dir = tmp_path / "outputs" / "tensorboard" / mlflow_run.info.run_name
    _assert_metrics_equal_tensorboard(direct, run.mlflow_run_id, tb_dir, printed, ["train_loss", "val_accuracy"])
    assert [a.path for a in direct.list_artifacts(run.mlflow_run_id, "checkpoints")] == ["checkpoints/checkpoint.txt"]
    assert "nothing spooled" in vtm.run("mlflow", "sync", check=True).stdout
    assert "MLflow spool delivered" in vtm.store.get(run.id).message


def test_server_that_hangs_at_start_and_returns_mid_run_gets_everything_live(tmp_path, embedded_server, tcp_proxy):
    """The training helper on its own (no vtm run): a server that accepts and never answers costs
    it one bounded wait, training goes on, and once the server answers the spool is delivered
    during the run (the MLflow run is created then) and the rest is logged live."""
    import subprocess
    import sys

    proxy = tcp_proxy(embedded_server.port)
    proxy.hang()
    experiment = f"hang-{uuid.uuid4().hex[:8]}"
    env = base_env(MLFLOW_TRACKING_URI=proxy.uri, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(DATA / "logger_train.py"), "--epochs", "12", "--sleep", "1",
                             "--retry", "1", "--experiment", experiment], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "MLflow unreachable at" in line:
                assert time.monotonic() - started < 60, "the helper waited too long on a hung server"
                proxy.up()
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines)
    assert _said(text, "MLflow unreachable at") == 1 and _said(text, "MLflow reachable again") == 1, text
    metas = [json.loads(line.split("::", 1)[1]) for line in lines if line.startswith("VTM_RUN_META::")]
    run_id = next(m["mlflow_run_id"] for m in metas if m.get("mlflow_run_id"))
    printed = [json.loads(line.split(PROGRESS_PREFIX, 1)[1]) for line in lines if line.startswith(PROGRESS_PREFIX)]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(embedded_server.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name in text
    assert run.data.params == {"epochs": "12", "sleep": "1.0"}
    tb_dir = tmp_path / "outputs" / "tensorboard" / run.info.run_name
    _assert_metrics_equal_tensorboard(client, run_id, tb_dir, printed, ["train_loss", "val_accuracy"])
    spool = next((tmp_path / "outputs" / "mlflow-spool").iterdir())
    assert Spool(spool).pending() == 0


def test_unreachable_tracking_uri_at_launch_is_one_line_within_seconds(tmp_path):
    import socket

    vtm = make_vtm_env(tmp_path, TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    with socket.socket() as hung:  # accepts connections (the kernel does) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        for port in (free_port(), hung.getsockname()[1]):
            uri = f"http://127.0.0.1:{port}"
            vtm.env["MLFLOW_TRACKING_URI"] = uri
            started = time.monotonic()
            result = vtm.run("launch", "fake", "--set", "epochs=1", "--wait")
            assert time.monotonic() - started < 15
            assert result.returncode == 2, result
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1
            assert lines[0].startswith(f"vtm: error: cannot reach the MLflow tracking server at {uri}: ")
            assert "--no-tracking" in lines[0] and "Traceback" not in result.stdout + result.stderr
        assert vtm.store.list() == []  # nothing started

        # By choice: MLflow off, TensorBoard on, what MLflow would have got kept in the spool.
        result = vtm.run("launch", "logger", "--set", "epochs=2", "--set", "sleep=0", "--no-tracking", "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        run = vtm.store.list()[0]
        assert "MLflow is off for this run" in open(run.log_path).read()
        assert "MLflow off for this run" in run.message and "mlflow-spool" in run.message
        assert Spool.of_run(run.run_dir).header()["tracking"] == "off"
        tb_dirs = list((tmp_path / "outputs" / "tensorboard").iterdir())
        assert len(tb_dirs) == 1 and _tb(tb_dirs[0], "train/loss") == [(1, 1.0), (2, 0.5)]
        assert "nothing spooled" in vtm.run("mlflow", "sync").stdout  # --no-tracking spools go only by name
        steps = tmp_path / "steps.yaml"
        steps.write_text("steps:\n  - launch: {task: fake, set: {epochs: 1}, no_tracking: true, wait: true}\n")
        assert vtm.run("--script", str(steps)).returncode == 0

        # The catalog's default (mlflow.onUnreachable: no-tracking): starts, and says why.
        result = vtm.run("launch", "logger", "--set", "epochs=1", "--set", "sleep=0", "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cannot reach the MLflow tracking server" in result.stderr and "MLflow off" in result.stderr


def test_failed_run_names_its_real_cause_and_its_own_mlflow_run_is_closed_once_the_server_is_back(
        tmp_path, embedded_server, tcp_proxy):
    proxy = tcp_proxy(embedded_server.port)
    proxy.up()
    vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=proxy.uri, TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    run = vtm.launch_json("fake_impatient", "--set", "epochs=20", "--set", "sleep=0.5", "--set", "fail_at=4",
                          "--set", "mlflow_quiet=true")
    run = vtm.wait_for(run.id, lambda r: r.mlflow_run_id and r.progress.get("epoch", 0) >= 1)
    proxy.down()
    run = vtm.wait_finished(run.id)
    assert (run.status, run.exit_code) == ("failed", 1)
    assert run.message.startswith("RuntimeError: boom at epoch 4 (exit code 1)"), run.message
    assert f"vtm mlflow sync {run.id}" in run.message
    from mlflow.tracking import MlflowClient

    direct = MlflowClient(embedded_server.uri)
    assert direct.get_run(run.mlflow_run_id).info.status == "RUNNING"  # the script could not end it
    proxy.up()
    vtm.run("mlflow", "sync", str(run.id), check=True)
    assert direct.get_run(run.mlflow_run_id).info.status == "FAILED"
    assert vtm.store.get(run.id).message.startswith("RuntimeError: boom at epoch 4 (exit code 1)")


def test_a_missing_tls_ca_file_stops_only_the_system_metrics_way_to_mlflow(tmp_path):
    """MLFLOW_TRACKING_SERVER_CERT_PATH names no file: the supervisor cannot make its MLflow poster
    for the system metrics. That is one line in the log and the message; the samples still go to
    the run store and the training runs, supervised, to its end."""
    import http.server
    import threading

    # Answers HTTP where the client speaks TLS: launch's probe counts that as a live server.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    missing = tmp_path / "no-such-ca.pem"
    try:
        vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"https://127.0.0.1:{server.server_address[1]}",
                           MLFLOW_TRACKING_SERVER_CERT_PATH=str(missing), VTM_SYSTEM_METRICS_INTERVAL="0.2",
                           TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
        run = vtm.launch_json("busy", "--set", "epochs=6", "--set", "epoch_seconds=0.3")
        run = vtm.wait_finished(run.id, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    said = f"system metrics not sent to MLflow: MLFLOW_TRACKING_SERVER_CERT_PATH {missing}: No such file or directory"
    assert run.status == "succeeded" and run.exit_code == 0, run
    assert run.message == said
    log = open(run.log_path).read()
    assert _said(log, said) == 1 and "finished" in log
    assert len(vtm.store.system_samples(run.id)) >= 3
