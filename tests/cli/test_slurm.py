"""The Slurm engine against a real single-node cluster started for this session."""
from __future__ import annotations

import json
import re
import time

import pytest
from fixtures.vtm import DATA, REPO, make_vtm_env

from vtm_tui.core import procs


@pytest.fixture
def slurm_env(tmp_path, embedded_server, slurm_cluster):
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri,
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"), SLURM_CONF=str(slurm_cluster.conf))
    yield env
    for run in env.store.active():
        env.run("runs", "cancel", str(run.id), "--wait", timeout=120)


def _pids_in_log(path: str) -> list[int]:
    text = open(path).read()
    return [int(pid) for pid in re.findall(r"(?:pid=|GRANDCHILD_PID=)(\d+)", text)]


def test_classification_on_slurm_succeeds_with_live_progress_and_mlflow_metrics(slurm_env):
    slurm_env.env["TRAINING_CATALOG_PATH"] = str(REPO / "catalog.yaml")
    run = slurm_env.launch_json("classification", "--engine", "slurm", "--set", "epochs=4",
                                "--set", "samples=4096")
    assert run.engine == "slurm" and run.job_id
    seen = set()
    deadline = time.monotonic() + 240
    while (record := slurm_env.store.get(run.id)).active:
        assert time.monotonic() < deadline, record
        seen.add((record.status, record.job_state, record.progress.get("epoch")))
        time.sleep(0.1)
    assert (record.status, record.exit_code, record.job_state) == ("succeeded", 0, "COMPLETED")
    assert record.node == "localhost"
    assert any(status == "running" and state == "RUNNING" and epoch in (1, 2, 3)
               for status, state, epoch in seen), seen
    from mlflow.tracking import MlflowClient

    history = MlflowClient(slurm_env.env["MLFLOW_TRACKING_URI"]).get_metric_history(
        record.mlflow_run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert record.progress["val_accuracy"] == [m.value for m in history if m.step == 4][0]
    listed = slurm_env.run("runs", check=True).stdout
    assert f"slurm {record.job_id} COMPLETED localhost" in listed


def test_gres_gpu_job_sees_cuda_visible_devices(slurm_env):
    run = slurm_env.launch_json("fake_gpu", "--set", "epochs=1", "--set", "sleep=0", "--set", "show_env=true")
    run = slurm_env.wait_finished(run.id)
    assert run.status == "succeeded", run
    assert re.search(r"^CUDA_VISIBLE_DEVICES=\d", open(run.log_path).read(), re.M)


def test_cancel_pending_and_running_jobs(slurm_env):
    held = slurm_env.launch_json("fake_held", "--set", "epochs=1")
    held = slurm_env.wait_for(held.id, lambda r: r.job_state == "PENDING")
    running = slurm_env.launch_json("fake", "--engine", "slurm", "--set", "epochs=500",
                                    "--set", "sleep=0.2", "--set", "spawn_child=true")
    running = slurm_env.wait_for(running.id, lambda r: r.status == "running" and r.progress.get("epoch"))
    pids = _pids_in_log(running.log_path)
    assert len(pids) == 2  # the script and its grandchild
    for run in (held, running):
        result = slurm_env.run("runs", "cancel", str(run.id), "--wait", timeout=120)
        assert result.returncode == 0, result.stderr
    held, running = slurm_env.store.get(held.id), slurm_env.store.get(running.id)
    assert (held.status, held.job_state) == ("cancelled", "CANCELLED")
    assert (running.status, running.job_state) == ("cancelled", "CANCELLED")
    deadline = time.monotonic() + 30
    while any(procs.cmdline(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in pids if procs.cmdline(pid)], "processes left behind"


def test_failing_job_reports_failed_with_exit_code(slurm_env):
    run = slurm_env.launch_json("fake", "--engine", "slurm", "--set", "epochs=3", "--set", "sleep=0",
                                "--set", "fail_at=2")
    run = slurm_env.wait_finished(run.id)
    assert (run.status, run.exit_code, run.job_state) == ("failed", 1, "FAILED")
    assert "RuntimeError: boom at epoch 2" in open(run.log_path).read()
    shown = json.loads(slurm_env.run("runs", "show", str(run.id), "--json", check=True).stdout)
    assert shown["exit_code"] == 1 and shown["job_id"] == run.job_id


def test_follower_is_reattached_after_it_dies(slurm_env):
    run = slurm_env.launch_json("fake", "--engine", "slurm", "--set", "epochs=15", "--set", "sleep=0.3")
    run = slurm_env.wait_for(run.id, lambda r: r.status == "running")
    import os
    import signal

    os.kill(run.supervisor_pid, signal.SIGKILL)
    listed = json.loads(slurm_env.run("runs", "--json", check=True).stdout)[0]
    assert listed["status"] == "running" and listed["supervisor_pid"] != run.supervisor_pid
    run = slurm_env.wait_finished(run.id)
    assert (run.status, run.progress["epoch"]) == ("succeeded", 15)
