"""The accounting cluster of fixtures.slurm, checked on its own: shortly after a job ends,
scontrol no longer knows it (MinJobAge=5) while sacct, from slurmdbd's database, still does."""
from __future__ import annotations

import subprocess
import time


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
