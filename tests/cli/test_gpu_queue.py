"""The GPU queue through the real `vtm` binary and detached supervisors, on this CPU box: no NVML,
VTM_GPUS=0,1 is the inventory. Each run is the busy_train.py stand-in, held until its own stop
file exists, so the tests decide when a device comes free."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from fixtures.vtm import DATA, make_vtm_env

from vtm_tui.core import procs, proctable


@pytest.fixture
def gpu_env(tmp_path):
    env = make_vtm_env(tmp_path, VTM_GPUS="0,1", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"), VTM_SYSTEM_METRICS_INTERVAL="0")
    yield env
    for proc in env.procs:
        if proc.poll() is None:
            proc.kill()
    for path in tmp_path.glob("stop-*"):
        path.unlink()
    for run in env.store.active():
        env.run("runs", "cancel", str(run.id), "--wait", timeout=60)
    for run in env.store.list():  # the script of a run whose supervisor a test killed
        if run.child_pid and procs.group_alive(run.child_pid):
            procs.signal_group(run.child_pid, signal.SIGKILL)


def launch(env, tag: str, *args: str) -> int:
    """Launch a held run (it ends once stop-TAG exists); its id."""
    result = env.run("launch", "busy", "--set", f"tag={tag}", "--set", "epoch_seconds=0.2",
                     "--set", f"until_file={env.cwd / f'stop-{tag}'}", *args, "--json", check=True)
    return json.loads(result.stdout)["id"]


def release(env, tag: str) -> None:
    (env.cwd / f"stop-{tag}").touch()


def devices_seen(env, run_id: int) -> str:
    """The CUDA_VISIBLE_DEVICES the run's script printed."""
    run = env.wait_for(run_id, lambda r: "CUDA_VISIBLE_DEVICES=" in _log(r), timeout=60)
    return re.search(r"CUDA_VISIBLE_DEVICES=(\S*)", _log(run)).group(1)


def _log(run) -> str:
    try:
        return open(run.log_path).read()
    except FileNotFoundError:
        return ""


def running(env, run_id: int):
    return env.wait_for(run_id, lambda r: r.status == "running" and r.child_pid, timeout=60)


def still_queued(env, *run_ids: int, seconds: float = 2.0) -> None:
    """The runs stay queued, with no process started, for a few polls of their supervisors."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for run_id in run_ids:
            run = env.store.get(run_id)
            assert (run.status, run.child_pid, run.gpus) == ("queued", None, None), run
        time.sleep(0.2)


def test_three_one_gpu_runs_on_two_gpus(gpu_env):
    first, second, third = (launch(gpu_env, tag, "--num-gpus", "1") for tag in ("a", "b", "c"))
    running(gpu_env, first), running(gpu_env, second)
    seen = {first: devices_seen(gpu_env, first), second: devices_seen(gpu_env, second)}
    assert sorted(seen.values()) == ["0", "1"]  # disjoint
    still_queued(gpu_env, third)
    listing = gpu_env.run("runs", check=True).stdout
    assert re.search(r"queue place 1, waits for: 1 GPU: 0 free of 2; GPU 0: held by run \d; GPU 1: held by run \d",
                     listing), listing
    queued = next(r for r in json.loads(gpu_env.run("runs", "--json", check=True).stdout) if r["id"] == third)
    assert queued["queue"]["place"] == 1 and queued["queue"]["request"] == "1 GPU"

    release(gpu_env, "b")
    assert gpu_env.wait_finished(second).status == "succeeded"
    running(gpu_env, third)
    assert devices_seen(gpu_env, third) == seen[second]  # on the freed device
    assert gpu_env.store.get(third).gpus == seen[second]
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in _log(gpu_env.store.get(third))
    release(gpu_env, "a"), release(gpu_env, "c")
    assert [gpu_env.wait_finished(run).status for run in (first, third)] == ["succeeded", "succeeded"]


def test_a_run_for_gpu_1_waits_while_gpu_0_is_free(gpu_env):
    holder = launch(gpu_env, "a", "--gpus", "1")
    assert devices_seen(gpu_env, holder) == "1"
    waiter = launch(gpu_env, "b", "--gpus", "1")
    still_queued(gpu_env, waiter)
    assert "waits for: GPU 1: held by run" in gpu_env.run("runs", check=True).stdout
    other = launch(gpu_env, "c", "--num-gpus", "1")  # GPU 0 is not kept for the run that cannot use it
    assert devices_seen(gpu_env, other) == "0"
    still_queued(gpu_env, waiter)
    release(gpu_env, "a")
    assert devices_seen(gpu_env, waiter) == "1"
    cpu = launch(gpu_env, "d", "--gpus", "cpu")  # no queue: CPU only, whatever the GPUs do
    assert devices_seen(gpu_env, cpu) == ""
    assert gpu_env.store.get(cpu).gpu_request is None


def test_priority_then_first_come_first_served(gpu_env):
    holders = [launch(gpu_env, tag, "--num-gpus", "1") for tag in ("h0", "h1")]
    for run in holders:
        running(gpu_env, run)
    early = launch(gpu_env, "early", "--num-gpus", "1")
    late = launch(gpu_env, "late", "--num-gpus", "1")
    urgent = launch(gpu_env, "urgent", "--num-gpus", "1", "--priority", "5")
    still_queued(gpu_env, early, late, urgent)
    listed = {r["id"]: r["queue"]["place"] for r in json.loads(gpu_env.run("runs", "--json", check=True).stdout)
              if "queue" in r}
    assert listed == {urgent: 1, early: 2, late: 3}
    release(gpu_env, "h0")
    running(gpu_env, urgent)
    still_queued(gpu_env, early, late)
    release(gpu_env, "h1")
    running(gpu_env, early)
    still_queued(gpu_env, late)
    release(gpu_env, "urgent")
    running(gpu_env, late)


def test_a_cancelled_queued_run_never_starts(gpu_env):
    holders = [launch(gpu_env, tag, "--num-gpus", "1") for tag in ("h0", "h1")]
    for run in holders:
        running(gpu_env, run)
    queued = launch(gpu_env, "q", "--num-gpus", "1")
    still_queued(gpu_env, queued)
    assert "cancel requested" in gpu_env.run("runs", "cancel", str(queued), check=True).stdout
    run = gpu_env.wait_finished(queued, timeout=30)
    assert (run.status, run.child_pid, run.message) == ("cancelled", None, "cancelled before it started")
    release(gpu_env, "h0")
    gpu_env.wait_finished(holders[0])
    time.sleep(1.5)  # a few polls of any supervisor that might still be waiting
    run = gpu_env.store.get(queued)
    assert (run.status, run.child_pid, run.gpus) == ("cancelled", None, None)
    assert "starting" not in _log(run)


def test_the_queue_outlives_a_killed_launcher(gpu_env):
    holders = [launch(gpu_env, tag, "--num-gpus", "1") for tag in ("h0", "h1")]
    for run in holders:
        running(gpu_env, run)
    waiting = gpu_env.popen("launch", "busy", "--num-gpus", "1", "--set", "tag=w", "--set", "epoch_seconds=0.2",
                            "--set", f"until_file={gpu_env.cwd / 'stop-w'}", "--wait")
    deadline = time.monotonic() + 60
    while len(gpu_env.store.list()) < 3:
        assert time.monotonic() < deadline and waiting.poll() is None, "the run was never recorded"
        time.sleep(0.1)
    queued = gpu_env.wait_for(max(holders) + 1, lambda r: r.status == "queued" and r.supervisor_pid).id
    still_queued(gpu_env, queued)
    waiting.send_signal(signal.SIGKILL)
    assert waiting.wait(10) == -signal.SIGKILL
    still_queued(gpu_env, queued)
    release(gpu_env, "h1")
    assert devices_seen(gpu_env, queued) == gpu_env.store.get(holders[1]).gpus
    release(gpu_env, "w")
    assert gpu_env.wait_finished(queued).status == "succeeded"


def test_a_run_whose_supervisor_is_killed_releases_its_gpu(gpu_env):
    # h0 prints nothing for a minute (a long epoch) and holds memory in a worker, as a DataLoader's
    # would: the lost pipe to its supervisor does not end it, vtm must.
    holders = [launch(gpu_env, "h0", "--num-gpus", "1", "--set", "epoch_seconds=60", "--set", "hold_mb=1"),
               launch(gpu_env, "h1", "--num-gpus", "1")]
    records = [running(gpu_env, run) for run in holders]
    queued = launch(gpu_env, "q", "--num-gpus", "1")
    still_queued(gpu_env, queued)
    script = records[0].child_pid  # its own session: the supervisor's death does not reach it
    gpu_env.wait_for(holders[0], lambda r: "WORKER_PID=" in _log(r), timeout=60)
    assert len(proctable.group_members(script)) == 2
    os.kill(records[0].supervisor_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while gpu_env.store.get(queued).status == "queued":
        assert time.monotonic() < deadline, "the queued run never started"
        time.sleep(0.05)
    assert not proctable.group_members(script)  # ended before the queued run got the device
    assert devices_seen(gpu_env, queued) == records[0].gpus
    lost = gpu_env.store.get(holders[0])
    assert lost.status == "lost" and "supervisor process vanished" in lost.message
    assert f"its 2 process(es) left running were ended: {script} (" in lost.message


def test_a_shell_given_some_gpus_hands_out_only_those(gpu_env):
    del gpu_env.env["VTM_GPUS"]
    gpu_env.env["CUDA_VISIBLE_DEVICES"] = "1"  # no NVML here: the shell's devices are the inventory
    result = gpu_env.run("launch", "busy", "--gpus", "0")
    assert result.returncode == 2 and "GPU 0 is not here; vtm may hand out 1 (VTM_GPUS, else CUDA_VISIBLE" in \
        result.stderr
    first, second = launch(gpu_env, "a", "--num-gpus", "1"), launch(gpu_env, "b", "--num-gpus", "1")
    assert devices_seen(gpu_env, first) == "1"
    still_queued(gpu_env, second)
    release(gpu_env, "a")
    assert devices_seen(gpu_env, second) == "1"


def test_a_request_that_can_never_be_met_is_refused(gpu_env):
    result = gpu_env.run("launch", "busy", "--gpus", "2")
    assert result.returncode == 2 and "GPU 2 is not here; vtm may hand out 0, 1" in result.stderr
    result = gpu_env.run("launch", "busy", "--num-gpus", "3")
    assert result.returncode == 2 and "--num-gpus 3: vtm may hand out 0, 1" in result.stderr
    result = gpu_env.run("launch", "busy", "--num-gpus", "1", "--gpus", "0")
    assert result.returncode == 2 and "not both" in result.stderr
    assert gpu_env.store.list() == [] and "Traceback" not in result.stderr


def test_script_steps_take_both_forms_and_wait_in_the_queue(gpu_env):
    script = gpu_env.cwd / "steps.yaml"
    script.write_text(
        "steps:\n"
        "  - launch: {task: busy, gpus: '0,1', priority: 2, set: {epochs: 4, epoch_seconds: 0.3, tag: both},"
        " as: both}\n"
        "  - launch: {task: busy, num_gpus: 1, set: {epochs: 1, tag: one}, wait: true}\n"
        "  - wait: both\n")
    result = gpu_env.run("--script", str(script), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    both, one = reversed(gpu_env.store.list())
    assert (both.gpu_request, one.gpu_request, both.priority) == ("devices:0,1", "count:1", 2)
    assert devices_seen(gpu_env, both.id) == "0,1" and devices_seen(gpu_env, one.id) == "0"
    assert one.started_at >= both.ended_at  # it waited in the queue for a free device


def test_the_queue_outlives_a_killed_tui(gpu_env):
    import pexpect
    from fixtures.vtm import VTM_BIN

    holders = [launch(gpu_env, tag, "--num-gpus", "1") for tag in ("h0", "h1")]
    for run in holders:
        running(gpu_env, run)
    queued = launch(gpu_env, "q", "--num-gpus", "1")
    environ = {**gpu_env.env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    tui = pexpect.spawn(VTM_BIN, [], cwd=str(gpu_env.cwd), env=environ, dimensions=(24, 80), encoding="utf-8",
                        codec_errors="replace", timeout=30)
    try:
        tui.expect("Launcher")
        tui.send("h")  # the host view, reading the queue
        tui.expect("Queue: 1 run waiting")
        still_queued(gpu_env, queued)
        tui.kill(signal.SIGKILL)
        tui.close(force=True)
        assert tui.signalstatus == signal.SIGKILL
    finally:
        if tui.isalive():
            tui.terminate(force=True)
    still_queued(gpu_env, queued)
    release(gpu_env, "h0")
    assert devices_seen(gpu_env, queued) == gpu_env.store.get(holders[0]).gpus
    release(gpu_env, "q")
    assert gpu_env.wait_finished(queued).status == "succeeded"
