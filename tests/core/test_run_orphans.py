"""Nothing of a run goes on unsupervised, on a real run store and real processes: a supervisor
that records itself between two looks is not taken for a vanished one (core/runs/liveness.py), a
vanished supervisor's training processes are ended before the run is lost, and a supervisor that
fails with an error of its own ends its script before it fails the run (core/runs/supervisor.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vtm_tui.core import procs, proctable
from vtm_tui.core.runs import liveness
from vtm_tui.core.runs.store import RunStore
from vtm_tui.settings import RUN_DIR_VARIABLE

SLEEPER = "import time; time.sleep(120)"


@pytest.fixture
def started():
    """Start real processes (argv, env, own session) and kill whatever of them is left afterwards."""
    children: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        child = subprocess.Popen(argv, env=procs.child_environ(env), start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(child)
        return child

    yield start
    for child in children:
        procs.signal_group(child.pid, 9)
        child.wait(10)


def new_run(tmp_path, **env: str):
    store = RunStore(tmp_path / "runs.db")
    run = store.create(task="t", argv=["x"], env=dict(env), field_values={}, cwd=str(tmp_path),
                       runs_dir=tmp_path / "runs")
    store.update(run.id, env={**env, RUN_DIR_VARIABLE: str(run.run_dir)})
    return store, store.get(run.id)


def fake_supervisor(start, store: RunStore, run_id: int) -> subprocess.Popen:
    """A process whose command line is a supervisor's for this run (what supervisor_alive checks)."""
    return start([sys.executable, "-c", SLEEPER, liveness.MARKER, str(store.path), str(run_id)])


def test_a_supervisor_that_records_itself_after_the_look_is_not_taken_for_vanished(tmp_path, started):
    store, run = new_run(tmp_path)
    snapshot = store.get(run.id)  # what try_claim / a refresh looked at: no supervisor PID yet
    assert snapshot.supervisor_pid is None
    supervisor = fake_supervisor(started, store, run.id)
    store.update(run.id, supervisor_pid=supervisor.pid)  # the new supervisor wrote its PID meanwhile
    assert not liveness.finish_if_gone(store, snapshot)
    assert store.get(run.id).status == "queued"
    supervisor.kill(), supervisor.wait(10)
    assert liveness.finish_if_gone(store, store.get(run.id))  # once it is really gone, it is lost
    assert store.get(run.id).status == "lost"


# The training script of a run: ignores SIGTERM (SIGKILL after the grace must end it) and starts a
# worker in its process group with an empty environment (no marker: found through the group).
SCRIPT = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env={})
open(sys.argv[1], "w").write(str(worker.pid))
time.sleep(120)
"""


def wait_for_file(path, seconds: float = 30.0) -> str:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_a_vanished_supervisors_script_is_ended_before_the_run_is_lost(tmp_path, started):
    store, run = new_run(tmp_path, VTM_CANCEL_GRACE="0.5")
    supervisor = fake_supervisor(started, store, run.id)
    script = started([sys.executable, "-c", SCRIPT, str(tmp_path / "worker.pid")], env=run.env)
    worker = int(wait_for_file(tmp_path / "worker.pid"))
    assert proctable.read_stat(worker).pgid == script.pid and not proctable.has_variable(
        worker, RUN_DIR_VARIABLE, str(run.run_dir))
    stranger = started([sys.executable, "-c", SLEEPER])  # a group leader that is not the run's
    store.update(run.id, status="running", supervisor_pid=supervisor.pid, child_pid=script.pid)
    assert not liveness.finish_if_gone(store, store.get(run.id))  # its supervisor lives
    assert proctable.alive(script.pid) and proctable.alive(worker)

    supervisor.kill(), supervisor.wait(10)
    assert liveness.finish_if_gone(store, store.get(run.id))
    assert not proctable.alive(script.pid) and not proctable.alive(worker)  # SIGKILL'd after the grace
    assert script.wait(10) == -9
    lost = store.get(run.id)
    assert lost.status == "lost" and lost.message.startswith(liveness.LOST_MESSAGE)
    assert "its 2 process(es) left running were ended: " in lost.message and f"{worker} (" in lost.message
    assert proctable.alive(stranger.pid)


def test_a_recorded_script_pid_that_is_now_anothers_is_left_alone(tmp_path, started):
    store, run = new_run(tmp_path, VTM_CANCEL_GRACE="0.5")
    stranger = started([sys.executable, "-c", SLEEPER])  # e.g. after a restart, the PID is another program's
    store.update(run.id, status="running", supervisor_pid=stranger.pid, child_pid=stranger.pid)
    assert liveness.finish_if_gone(store, store.get(run.id))
    assert proctable.alive(stranger.pid)
    assert store.get(run.id).message == liveness.LOST_MESSAGE


# FAKE: a bug in the supervisor's own code once the script runs, which cannot be produced for real.
BROKEN_SUPERVISOR = """
import sys
from vtm_tui.core.runs import supervisor

def feed(self, chunk):
    raise RuntimeError("a bug of the supervisor's own")

supervisor.ProgressTracker.feed = feed
sys.exit(supervisor.main(sys.argv[1:]))
"""
TALKER = "import time\nprint('epoch 1', flush=True)\ntime.sleep(120)\n"


def test_a_supervisor_error_ends_the_script_before_the_run_fails(tmp_path, started):
    store, run = new_run(tmp_path, VTM_SYSTEM_METRICS_INTERVAL="0")
    store.update(run.id, argv=[sys.executable, "-c", TALKER])
    supervisor = started([sys.executable, "-c", BROKEN_SUPERVISOR, str(store.path), str(run.id)])
    assert supervisor.wait(60) == 1
    failed = store.get(run.id)
    assert failed.status == "failed" and failed.child_pid
    assert failed.message == ("supervisor error: RuntimeError: a bug of the supervisor's own; "
                              "the training script was ended")
    assert not proctable.group_members(failed.child_pid)
