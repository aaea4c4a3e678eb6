"""Faults of the box a run lives on, through the real `vtm` binary and real processes: a full disk
under VTM_HOME (a 2 MB tmpfs), the run store deleted or overwritten mid-run, a script that
daemonizes, and the embedded tracking server's leader killed with its workers left serving."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from fixtures.vtm import DATA, VtmEnv, base_env, fill_disk, free_port, make_vtm_env

from vtm_tui.core import procs, proctable
from vtm_tui.core.runs.store import RunStore
from vtm_tui.settings import SERVER_MARKER_VARIABLE, Settings


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_full_disk_under_vtm_home_is_a_status_not_a_crash(tmp_path, small_disk):
    env = base_env(VTM_HOME=str(small_disk / ".vtm"), VTM_CANCEL_GRACE="2", VTM_MLFLOW_PORT=str(free_port()),
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                   TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    vtm = VtmEnv(tmp_path, env, Settings.load(cwd=tmp_path, environ=env))
    # 10 MB of output onto a 2 MB filesystem, while the run store lives there too.
    run = vtm.launch_json("fake", "--set", "epochs=5", "--set", "sleep=0.2", "--set", "spam=2")
    run = vtm.wait_finished(run.id, timeout=120)
    log_path = small_disk / ".vtm" / "runs" / str(run.id) / "output.log"
    assert run.status == "failed" and run.exit_code == 0, run  # the training itself went through
    assert run.progress["epoch"] == 5  # progress kept coming while the log could not be written
    assert re.match(rf"no space left on device \({re.escape(str(log_path))}\): \d+ log line\(s\) \(.*\) dropped",
                    run.message), run.message
    assert "the training itself exited with code 0" in run.message
    shown = vtm.run("runs", "show", str(run.id))
    _no_traceback(shown)
    assert shown.returncode == 0 and "no space left on device" in shown.stdout

    filler = fill_disk(small_disk)  # now leave no byte free: every command says so in one line
    for args in (["runs"], ["runs", "show", str(run.id)], ["launch", "fake", "--set", "epochs=1"],
                 ["mlflow", "up"]):
        result = vtm.run(*args)
        _no_traceback(result)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (args, result)
        assert lines[0].startswith("vtm: error: no space left on device"), (args, result.stderr)
    filler.unlink()
    again = vtm.run("launch", "fake", "--set", "epochs=1", "--set", "sleep=0", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_store_lost_mid_run_training_survives_and_no_id_or_folder_is_reused(offline_env, damage):
    vtm = offline_env
    first = vtm.launch_json("fake", "--set", "epochs=1", "--set", "sleep=0", "--set", "tag=first")
    vtm.wait_finished(first.id)
    run = vtm.launch_json("fake", "--set", "epochs=16", "--set", "sleep=0.4", "--set", "tag=live")
    vtm.wait_for(run.id, lambda r: r.progress.get("epoch", 0) >= 3)
    db = vtm.settings.runs_db
    if damage == "deleted":
        for path in db.parent.glob("runs.db*"):
            if not path.name.endswith(".lock"):
                path.unlink()
    else:
        db.write_bytes(os.urandom(64 * 1024))

    listed = vtm.run("runs")  # says what happened in one line, and keeps working
    _no_traceback(listed)
    assert listed.returncode == 0, listed.stderr
    notes = [line for line in listed.stderr.splitlines() if line.startswith("vtm: note:")]
    assert len(notes) == 1 and ("damaged" if damage == "garbage" else "missing") in notes[0], listed.stderr
    if damage == "garbage":
        assert list(db.parent.glob("runs.db.corrupt-*")) and "moved aside as runs.db.corrupt-" in notes[0]
    assert re.search(rf"^\s+{run.id}\s+running", listed.stdout, re.M), listed.stdout

    run = vtm.wait_finished(run.id)
    assert (run.status, run.exit_code, run.progress["epoch"]) == ("succeeded", 0, 16)
    assert [p["epoch"] for p in vtm.store.points(run.id)] == list(range(1, 17))  # every point, old ones too
    assert vtm.store.get(first.id).progress["tag"] == "first"  # rebuilt from its folder
    newer = vtm.launch_json("fake", "--set", "epochs=1", "--set", "sleep=0", "--set", "tag=after")
    assert newer.id == run.id + 1
    newer = vtm.wait_finished(newer.id)
    assert "live" not in open(newer.log_path).read() and "after epoch 1 done" in open(newer.log_path).read()
    assert "first epoch 1 done" in open(first.log_path).read() and "after" not in open(first.log_path).read()


def test_store_recreated_without_a_stale_folder_continues_past_the_highest_folder(offline_env):
    vtm = offline_env
    for run_id in (1, 2, 7):  # folders left from before, the store knows nothing of them
        (vtm.settings.runs_dir / str(run_id)).mkdir(parents=True)
    result = vtm.run("launch", "fake", "--set", "epochs=1", "--set", "sleep=0", "--json", check=True)
    assert json.loads(result.stdout)["id"] == 8
    assert "vtm: note: the run store" in result.stderr and "new runs start after id 7" in result.stderr
    assert RunStore(vtm.settings.runs_db).take_notices() == []  # said once


def test_cancel_ends_processes_that_left_the_session(offline_env):
    vtm_env = offline_env
    run = vtm_env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.3", "--set", "daemon=true")
    run = vtm_env.wait_for(run.id, lambda r: r.status == "running" and r.progress.get("epoch", 0) >= 1)
    log = open(run.log_path).read()
    daemons = [int(re.search(rf"{name}=(\d+)", log).group(1)) for name in ("DAEMON_PID", "BARE_DAEMON_PID")]
    for pid in daemons:  # both really left: another session, another group
        info = proctable.read_stat(pid)
        assert info and info.sid != run.child_pid and info.pgid != run.child_pid
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        vtm_env.run("runs", "cancel", str(run.id), "--wait", check=True)
        run = vtm_env.store.get(run.id)
        assert run.status == "cancelled" and run.exit_code == -signal.SIGINT
        for pid in daemons:
            assert not proctable.alive(pid), proctable.describe(pid)
        assert stranger.poll() is None  # never a process that is not the run's
    finally:
        stranger.kill()
        for pid in daemons:
            proctable.send([pid], signal.SIGKILL)


def test_a_finished_run_leaves_no_daemon_behind(offline_env):
    run = offline_env.launch_json("fake", "--set", "epochs=2", "--set", "sleep=0.2", "--set", "daemon=true")
    run = offline_env.wait_finished(run.id)
    assert run.status == "succeeded"
    for name in ("DAEMON_PID", "BARE_DAEMON_PID"):
        pid = int(re.search(rf"{name}=(\d+)", open(run.log_path).read()).group(1))
        assert not proctable.alive(pid)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def test_kill_9_of_the_recorded_server_pid_status_and_down_recover(tmp_path):
    port = free_port()
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_MLFLOW_PORT=str(port))
    vtm = VtmEnv(tmp_path, env, Settings.load(cwd=tmp_path, environ=env))
    record = tmp_path / ".vtm" / "mlflow" / "server.json"
    try:
        vtm.run("mlflow", "up", check=True)
        shown = vtm.run("mlflow", "status", check=True)
        pid = json.loads(record.read_text())["pid"]
        assert f"(pid {pid})" in shown.stdout
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        assert _healthy(port), "the orphaned uvicorn workers should still be serving"

        status = vtm.run("mlflow", "status")
        _no_traceback(status)
        assert status.returncode == 1 and "orphaned process(es) of vtm's MLflow tracking server" in status.stdout
        assert not _healthy(port) and not record.exists()
        down = vtm.run("mlflow", "down", check=True)
        assert "was not running" in down.stdout
    finally:
        vtm.run("mlflow", "down")


def test_down_stops_orphans_of_its_own_server_only(tmp_path):
    """`vtm mlflow down` after the recorded leader died: the processes that carry the server's
    marker are stopped, a process without it is not, and the record goes only once they are."""
    home = tmp_path / ".vtm"
    (home / "mlflow").mkdir(parents=True)
    marker = uuid.uuid4().hex
    fake = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); " \
           "time.sleep(120)"
    leader = procs.spawn_detached([sys.executable, "-c", fake, "mlflow"], log_path=tmp_path / "fake.log",
                                  env={**base_env(), SERVER_MARKER_VARIABLE: marker})
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while len(proctable.marked(SERVER_MARKER_VARIABLE, marker)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (worker,) = proctable.marked(SERVER_MARKER_VARIABLE, marker) - {leader}
        ticks = proctable.read_stat(leader).start_ticks
        (home / "mlflow" / "server.json").write_text(json.dumps(
            {"pid": leader, "port": free_port(), "marker": marker, "start_ticks": ticks}))
        os.kill(leader, signal.SIGKILL)
        vtm = make_vtm_env(tmp_path)
        down = vtm.run("mlflow", "down", check=True)
        assert f"stopped 1 orphaned process(es) of vtm's MLflow tracking server (its main process had died): pids " \
               f"{worker}" in down.stdout
        assert not proctable.alive(worker) and stranger.poll() is None
        assert not (home / "mlflow" / "server.json").exists()
    finally:
        stranger.kill()
        proctable.send([leader, *proctable.marked(SERVER_MARKER_VARIABLE, marker)], signal.SIGKILL)
