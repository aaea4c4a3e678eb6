"""Runs through the real `vtm` binary: detached supervisors, cancel, crash, lost, CLI contract."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from vtm_tui.core import procs


def _started(run) -> bool:
    return run.status == "running" and run.progress.get("epoch", 0) >= 1


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_run_outlives_killed_waiting_cli(vtm_env, sig):
    # SIGHUP as a dropped SSH session delivers it: default disposition, even when this test
    # itself runs under nohup (which children would otherwise inherit as "ignored")
    waiting = vtm_env.popen("launch", "fake", "--set", "epochs=6", "--set", "sleep=0.4", "--wait",
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not vtm_env.store.list():
        assert time.monotonic() < deadline, "the run was never recorded"
        time.sleep(0.1)
    run_id = vtm_env.store.list()[0].id
    vtm_env.wait_for(run_id, _started)
    waiting.send_signal(sig)
    assert waiting.wait(10) != 0  # the CLI itself died
    run = vtm_env.wait_finished(run_id)
    assert (run.status, run.exit_code, run.progress["epoch"]) == ("succeeded", 0, 6)
    listed = json.loads(vtm_env.run("runs", "--json", check=True).stdout)
    assert [(r["id"], r["status"], r["exit_code"]) for r in listed] == [(run_id, "succeeded", 0)]
    assert "succeeded" in vtm_env.run("runs", check=True).stdout


def test_cancel_stops_whole_group_and_kills_mlflow_run(vtm_env):
    run = vtm_env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.3",
                              "--set", "mlflow=true", "--set", "spawn_child=true")
    run = vtm_env.wait_for(run.id, lambda r: _started(r) and r.mlflow_run_id)
    grandchild = int(re.search(r"GRANDCHILD_PID=(\d+)", open(run.log_path).read()).group(1))
    result = vtm_env.run("runs", "cancel", str(run.id), "--wait", check=True)
    assert "cancelled" in result.stdout
    run = vtm_env.store.get(run.id)
    assert run.status == "cancelled"
    assert run.exit_code == -signal.SIGINT  # the first, gentle step reached the script itself
    assert not procs.group_alive(run.child_pid)
    assert procs.cmdline(grandchild) is None
    from mlflow.tracking import MlflowClient

    assert MlflowClient(vtm_env.env["MLFLOW_TRACKING_URI"]).get_run(run.mlflow_run_id).info.status == "KILLED"


def test_cancel_escalates_to_sigkill_when_signals_are_ignored(vtm_env):
    run = vtm_env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.2",
                              "--set", "ignore_signals=true")
    vtm_env.wait_for(run.id, _started)
    vtm_env.run("runs", "cancel", str(run.id), check=True)
    run = vtm_env.wait_finished(run.id, timeout=30)
    assert (run.status, run.exit_code) == ("cancelled", -signal.SIGKILL)
    assert not procs.group_alive(run.child_pid)


def test_crashing_script_is_failed_with_exit_code_and_log(vtm_env):
    run = vtm_env.launch_json("fake", "--set", "epochs=5", "--set", "sleep=0.1",
                              "--set", "fail_at=2", "--set", "mlflow=true")
    run = vtm_env.wait_finished(run.id)
    assert (run.status, run.exit_code) == ("failed", 1)
    assert run.progress["epoch"] == 1
    logs = vtm_env.run("runs", "logs", str(run.id), check=True).stdout
    assert "RuntimeError: boom at epoch 2" in logs
    from mlflow.tracking import MlflowClient

    assert MlflowClient(vtm_env.env["MLFLOW_TRACKING_URI"]).get_run(run.mlflow_run_id).info.status == "FAILED"


def test_killed_supervisor_shows_lost(offline_env):
    run = offline_env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.2")
    run = offline_env.wait_for(run.id, _started)
    os.kill(run.supervisor_pid, signal.SIGKILL)
    try:
        listed = {}
        deadline = time.monotonic() + 10
        while listed.get("status") != "lost" and time.monotonic() < deadline:
            listed = json.loads(offline_env.run("runs", "--json", check=True).stdout)[0]
            time.sleep(0.2)
        assert listed["status"] == "lost"
        assert "supervisor" in listed["message"]
    finally:
        procs.signal_group(run.child_pid, signal.SIGKILL)


def test_malformed_and_interleaved_progress_lines_are_log_lines(offline_env):
    run = offline_env.launch_json("fake", "--set", "epochs=3", "--set", "sleep=0", "--set", "noise=true")
    run = offline_env.wait_finished(run.id)
    assert (run.status, run.exit_code) == ("succeeded", 0)
    assert run.progress["epoch"] == 3 and run.progress["total_epochs"] == 3
    assert [p["epoch"] for p in offline_env.store.points(run.id)] == [1, 2, 3]
    log = open(run.log_path, "rb").read()
    assert log.count(b'VTM_PROGRESS::{"epoch": \n') == 3
    assert log.count(b'VTM_PROGRESS::{"epoch": 99}VTM_PROGRESS::{"epoch": 98}') == 3
    assert b"\x00" in log  # the log is a byte-for-byte copy of the output


def test_two_runs_at_once_keep_their_own_logs_and_records(offline_env):
    first = offline_env.launch_json("fake", "--set", "epochs=4", "--set", "sleep=0.1", "--set", "tag=alpha")
    second = offline_env.launch_json("fake", "--set", "epochs=6", "--set", "sleep=0.1", "--set", "tag=beta")
    first, second = offline_env.wait_finished(first.id), offline_env.wait_finished(second.id)
    assert first.status == second.status == "succeeded"
    alpha, beta = open(first.log_path).read(), open(second.log_path).read()
    assert "alpha epoch 4 done" in alpha and "beta" not in alpha
    assert "beta epoch 6 done" in beta and "alpha" not in beta
    assert (first.progress["tag"], first.progress["epoch"]) == ("alpha", 4)
    assert (second.progress["tag"], second.progress["epoch"]) == ("beta", 6)
    assert first.log_path != second.log_path


def test_gpus_sets_cuda_visible_devices(offline_env):
    refused = offline_env.run("launch", "fake", "--gpus", "0,1")  # no NVML, no VTM_GPUS: no GPU to hand out
    assert refused.returncode == 2 and "GPU 0 is not here; vtm may hand out no GPU" in refused.stderr
    offline_env.env["VTM_GPUS"] = "0,1"
    run = offline_env.launch_json("fake", "--set", "epochs=1", "--set", "sleep=0",
                                  "--set", "show_env=true", "--gpus", "0,1")
    run = offline_env.wait_finished(run.id)
    assert run.env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert "CUDA_VISIBLE_DEVICES=0,1" in open(run.log_path).read()


def test_rerun_clones_arguments_with_changes(offline_env):
    run = offline_env.launch_json("fake", "--set", "epochs=2", "--set", "sleep=0", "--set", "tag=one")
    offline_env.wait_finished(run.id)
    result = offline_env.run("runs", "rerun", str(run.id), "--set", "epochs=1", "--wait", check=True)
    assert "succeeded" in result.stdout
    again = offline_env.store.list()[0]
    assert again.id != run.id
    assert again.field_values == {**run.field_values, "epochs": 1}
    assert again.progress["epoch"] == 1 and again.progress["tag"] == "one"


def test_wait_exit_code_is_one_for_a_failed_run(offline_env):
    result = offline_env.run("launch", "fake", "--set", "fail_at=1", "--set", "sleep=0", "--wait")
    assert result.returncode == 1
    assert "failed (exit code 1)" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["launch", "nope"], "unknown task 'nope'"),
    (["launch", "fake", "--set", "epochs=x"], "epochs"),
    (["launch", "fake", "--set", "epochs=-1"], "epochs"),
    (["launch", "fake", "--set", "novalue"], "NAME=VALUE"),
    (["launch", "fake", "--set", "bogus=1"], "bogus"),
    (["launch", "hidden"], "disabled"),
    (["launch", "fake", "--gpus", "first"], "--gpus"),
    (["runs", "show", "999"], "no run with id '999'"),
    (["runs", "cancel", "abc"], "no run with id 'abc'"),
    (["launch"], "the following arguments are required: task"),
])
def test_usage_and_input_errors_exit_2_without_traceback(offline_env, args, fragment):
    result = offline_env.run(*args)
    assert result.returncode == 2, result
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert offline_env.store.list() == []  # nothing started


def test_script_runs_steps_and_stops_at_first_failure(offline_env):
    good = offline_env.cwd / "good.yaml"
    good.write_text(
        "steps:\n"
        "  - launch: {task: fake, set: {epochs: 2, sleep: 0}, as: first}\n"
        "  - wait: first\n"
        "  - launch: {task: fake, set: {epochs: 100, sleep: 0.2}, as: long}\n"
        "  - cancel: long\n"
        "  - wait: long\n")
    result = offline_env.run("--script", str(good))
    # the last step waits on a run that was cancelled: the script fails with exit code 1
    assert result.returncode == 1, result.stdout + result.stderr
    statuses = [run.status for run in reversed(offline_env.store.list())]
    assert statuses == ["succeeded", "cancelled"]
    assert "step 5" in result.stdout and "cancelled" in result.stdout

    bad = offline_env.cwd / "bad.yaml"
    bad.write_text(
        "steps:\n"
        "  - launch: {task: fake, set: {epochs: 1, sleep: 0, fail_at: 1}, wait: true}\n"
        "  - launch: {task: fake, set: {epochs: 1}}\n")
    result = offline_env.run("--script", str(bad))
    assert result.returncode == 1
    assert len(offline_env.store.list()) == 3  # the step after the failure never ran


@pytest.mark.parametrize("text, fragment", [
    ("steps:\n  - launhc: {task: fake}\n", "bad.yaml:2: unknown step 'launhc'"),
    ("steps: [\n", "not valid YAML"),
    ("steps:\n  - launch: {task: fake, set: {epochs: zero}}\n", "bad.yaml:2: step 1 (launch) failed: epochs"),
    ("steps:\n  - wait: nothing\n", "unknown run reference 'nothing'"),
    ("steps:\n  - launch: {task: fake, colour: red}\n", "unknown key(s) colour"),
    ("jobs: []\n", "expected a `steps:` list"),
])
def test_script_input_errors_exit_2(offline_env, text, fragment):
    path = offline_env.cwd / "bad.yaml"
    path.write_text(text)
    result = offline_env.run("--script", str(path))
    assert result.returncode == 2, result
    assert fragment in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
