"""What becomes of a local run whose supervisor is gone (core/runs/liveness.py), on a real run
store and real processes: a supervisor that records itself between two looks is not taken for a
vanished one, and a vanished supervisor's training processes are ended before the run is lost."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vtm_tui.core import procs
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
