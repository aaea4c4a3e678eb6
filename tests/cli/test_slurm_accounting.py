"""The accounting cluster of fixtures.slurm, checked on its own: shortly after a job ends,
scontrol no longer knows it (MinJobAge=5) while sacct, from slurmdbd's database, still does;
then vtm's Slurm engine on it. One module: the cluster costs seconds to start per xdist worker."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from fixtures.vtm import DATA, make_vtm_env


def _run(cluster, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=cluster.env, capture_output=True, text=True, timeout=60)


def test_sacct_knows_jobs_that_scontrol_has_forgotten(slurm_cluster_accounting, tmp_path):
    cluster = slurm_cluster_accounting
    jobs = {}
    for name, script in (("ok", "true"), ("failed", "exit 3")):
        out = _run(cluster, "sbatch", "--parsable", f"--chdir={tmp_path}", "-o", f"{name}.out", "--wrap", script)
        assert out.returncode == 0, out.stderr
        jobs[name] = out.stdout.strip().split(";")[0]
    forgotten = {}
    deadline = time.monotonic() + 90
    while len(forgotten) < len(jobs):
        assert time.monotonic() < deadline, f"scontrol still knows jobs {set(jobs) - set(forgotten)}"
        for name, job in jobs.items():
            out = _run(cluster, "scontrol", "show", "job", job)
            if name not in forgotten and out.returncode != 0:
                forgotten[name] = out.stderr.strip()
        time.sleep(0.5)
    assert set(forgotten.values()) == {"slurm_load_jobs error: Invalid job id specified"}
    states = {name: _run(cluster, "sacct", "-j", job, "-X", "-n", "-P", "-o", "State,ExitCode").stdout.strip()
              for name, job in jobs.items()}
    assert states == {"ok": "COMPLETED|0:0", "failed": "FAILED|3:0"}


# ---------------------------------------------------------------------------
# vtm's Slurm engine on this cluster: outcomes survive MinJobAge
# ---------------------------------------------------------------------------

@pytest.fixture
def accounting_env(tmp_path, slurm_cluster_accounting):
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"), SLURM_CONF=str(slurm_cluster_accounting.conf))
    yield env
    for run in env.store.active():
        env.run("runs", "cancel", str(run.id), "--wait", timeout=120)


def _forgotten_by_scontrol(cluster, job_ids, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while any(_run(cluster, "scontrol", "show", "job", job).returncode == 0 for job in job_ids):
        assert time.monotonic() < deadline, "scontrol still knows the jobs"
        time.sleep(0.5)


def test_runs_whose_follower_was_gone_past_min_job_age_end_as_sacct_says(accounting_env, slurm_cluster_accounting):
    """The issue's input: the follower was gone (login node restarted) longer than MinJobAge;
    `scontrol show job` said `Invalid job id specified` while sacct knew `COMPLETED 0:0`, and vtm
    marked the run lost with no exit code."""
    vtm = accounting_env
    runs = {"ok": vtm.launch_json("fake", "--engine", "slurm", "--set", "epochs=3", "--set", "sleep=0"),
            "failed": vtm.launch_json("fake", "--engine", "slurm", "--set", "epochs=3", "--set", "sleep=0",
                                      "--set", "fail_at=2")}
    for run in runs.values():  # the followers vtm started: gone, as after a restart
        os.kill(run.supervisor_pid, signal.SIGKILL)
    _forgotten_by_scontrol(slurm_cluster_accounting, [run.job_id for run in runs.values()])
    vtm.run("runs", check=True)  # a look at the runs attaches new followers
    ok, failed = (vtm.wait_finished(run.id, timeout=60) for run in runs.values())
    assert (ok.status, ok.exit_code, ok.job_state, ok.progress.get("epoch")) == ("succeeded", 0, "COMPLETED", 3)
    assert (failed.status, failed.exit_code, failed.job_state) == ("failed", 1, "FAILED")
    assert ok.node == "localhost"


def test_a_run_is_lost_only_when_neither_scontrol_nor_sacct_knows_its_job(accounting_env, slurm_cluster_accounting,
                                                                           monkeypatch):
    from vtm_tui.core.runs.engines import slurm

    vtm = accounting_env
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster_accounting.conf))
    real = vtm.launch_json("fake", "--engine", "slurm", "--set", "epochs=1", "--set", "sleep=0")
    os.kill(real.supervisor_pid, signal.SIGKILL)
    _forgotten_by_scontrol(slurm_cluster_accounting, [real.job_id])
    assert slurm.job_info(real.job_id) is None and slurm.accounting_info(real.job_id)["JobState"] == "COMPLETED"
    unknown = str(int(real.job_id) + 100000)
    assert slurm.job_info(unknown) is None and slurm.accounting_info(unknown) is None
    vtm.store.update(real.id, job_id=unknown)
    monkeypatch.setattr(slurm, "VANISHED_AFTER", 2.0)
    slurm.follow(vtm.store, real.id)
    run = vtm.store.get(real.id)
    assert (run.status, run.exit_code) == ("lost", None)
    assert run.message == f"Slurm no longer knows job {unknown} (neither scontrol nor sacct has it)"
