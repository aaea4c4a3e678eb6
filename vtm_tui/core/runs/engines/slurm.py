"""Slurm engine: the same catalog task submitted with `sbatch`, followed like a local run.

Submission writes a small batch script that execs the run's argv, with the run's environment
exported and the job's output going to the run's log file (on a shared filesystem on a real
cluster). A detached follower process (`python -m vtm_tui.core.runs.engines.slurm DB RUN_ID`) polls
`scontrol show job`, tails the log with the local supervisor's parser, and records job state,
node, progress, status and exit code. Cancel is `scancel`, for pending and running jobs alike.

scontrol forgets a finished job MinJobAge seconds after it ends (slurm.conf; 300 by default), so
a follower that was gone longer (a restarted login node) asks Slurm's accounting (`sacct`, from
slurmdbd) for the job's state and exit code; a run is `lost` only when neither knows its job.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs.outcome import finish_run
from vtm_tui.core.runs.run_output import ProgressTracker
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

MARKER = "vtm_tui.core.runs.engines.slurm"
POLL_INTERVAL = 1.0
COMMAND_TIMEOUT = 30
VANISHED_AFTER = 30.0  # seconds a job may be unknown to Slurm before the run is given up
QUEUED_TIMEOUT = 60.0
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED"}


def _slurm(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except FileNotFoundError:
        raise UserError(f"`{argv[0]}` not found: the Slurm client tools must be on PATH "
                        "to use engine slurm") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{argv[0]}` did not answer within {COMMAND_TIMEOUT}s: is slurmctld up?") from None


def sbatch_options(options: dict, gpus: str | None) -> list[str]:
    """runner.slurm settings (and a --gpus list, as a GPU count) -> sbatch arguments."""
    args = []
    for key, flag in (("partition", "--partition"), ("time", "--time"),
                      ("cpus", "--cpus-per-task"), ("mem", "--mem")):
        if options.get(key) not in (None, ""):
            args.append(f"{flag}={options[key]}")
    gres = options.get("gres")
    if not gres and gpus:
        gres = f"gpu:{len(gpus.split(','))}"  # Slurm picks the devices; we ask for how many
    if gres:
        args.append(f"--gres={gres}")
    return args + list(options.get("extraArgs") or options.get("extra_args") or [])


def job_info(job_id: str, env: dict | None = None) -> dict[str, str] | None:
    """`scontrol show job -o` as a dict; None when Slurm does not (or no longer) know the job."""
    result = _slurm(["scontrol", "show", "job", "-o", job_id], env)
    if result.returncode != 0 or "JobId=" not in result.stdout:
        return None
    info = {}
    for token in result.stdout.split():
        key, sep, value = token.partition("=")
        if sep:
            info.setdefault(key, value)
    return info


def accounting_info(job_id: str, env: dict | None = None) -> dict[str, str] | None:
    """What Slurm's accounting knows of a job (`sacct -j ID -X -n -P -o JobID,State,ExitCode,
    NodeList`: the allocation's line, `|`-separated), in job_info's keys: JobState (the first
    word: `CANCELLED by 0` -> CANCELLED), ExitCode (CODE:SIGNAL) and NodeList. None when sacct
    does not know the job, or there is no accounting (sacct missing, failing or not answering)."""
    try:
        result = _slurm(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State,ExitCode,NodeList"], env)
    except UserError:
        return None
    if result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 4 and fields[0] == job_id and fields[1]:
            return {"JobId": job_id, "JobState": fields[1].split()[0], "ExitCode": fields[2],
                    "NodeList": fields[3]}
    return None


def exit_code_of(info: dict[str, str]) -> int | None:
    """Slurm's ExitCode=CODE:SIGNAL -> the code, or minus the signal when a signal ended it."""
    code, _, sig = info.get("ExitCode", "").partition(":")
    if not code.isdigit():
        return None
    return -int(sig) if sig.isdigit() and int(sig) else int(code)


class SlurmEngine:
    """Runs as Slurm batch jobs (sbatch), each followed by a detached follower process."""
    name = "slurm"

    def start(self, store: RunStore, run: RunRecord) -> None:
        """Write job.sh, submit it with sbatch (the run's options, GPU count, environment, log file)
        and start its follower. UserError (and the run finished failed) when sbatch refuses."""
        run_dir = Path(run.log_path).parent
        script = run_dir / "job.sh"
        script.write_text(f"#!/bin/bash\n# vtm run {run.id} ({run.task})\nexec {shlex.join(run.argv)}\n")
        argv = ["sbatch", "--parsable", f"--job-name=vtm-{run.id}-{run.task}",
                f"--output={run.log_path}", "--open-mode=append", f"--chdir={run.cwd}",
                "--export=ALL", *sbatch_options(run.engine_options, run.gpus), str(script)]
        result = _slurm(argv, procs.child_environ(run.env))
        if result.returncode != 0:
            message = f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}"
            store.finish(run.id, "failed", message=message)
            raise UserError(f"run {run.id}: {message}")
        job_id = result.stdout.strip().split(";")[0]
        store.update(run.id, job_id=job_id, job_state="PENDING")
        self._follow(store, run)

    def _follow(self, store: RunStore, run: RunRecord) -> None:
        argv = [sys.executable, "-m", MARKER, str(store.path), str(run.id)]
        pid = procs.spawn_detached(argv, log_path=Path(run.log_path).with_name("follower.log"),
                                   cwd=run.cwd, env=procs.child_environ(run.env))
        store.update(run.id, supervisor_pid=pid)

    def cancel(self, store: RunStore, run: RunRecord) -> None:
        """Flag the run cancelled and `scancel` its job (pending or running); UserError when scancel
        fails."""
        store.request_cancel(run.id)
        if run.job_id:
            result = _slurm(["scancel", run.job_id], procs.child_environ(run.env))
            if result.returncode != 0:
                raise UserError(f"scancel {run.job_id} failed: {result.stderr.strip()}")

    def refresh(self, store: RunStore, run: RunRecord) -> None:
        """A job outlives its follower: reattach a new follower instead of giving up the run."""
        if procs.is_running(run.supervisor_pid, MARKER, str(run.id)):
            return
        current = store.get(run.id)
        if not current.active:
            return
        if current.job_id:
            self._follow(store, current)
        elif time.time() - current.created_at > QUEUED_TIMEOUT:
            store.finish(run.id, "lost", message="never submitted to Slurm (sbatch did not finish)")


def follow(store: RunStore, run_id: int) -> None:
    """Follow run `run_id`'s Slurm job until it ends: poll `scontrol show job` (else `sacct`) every
    second, tail the log into the run's progress, record job state and node, then finish the run
    (lost when neither knows the job for 30 s)."""
    run = store.get(run_id)
    env = procs.child_environ(run.env)
    tracker = ProgressTracker(store, run_id, run.progress)
    offset, missing_since, info = 0, None, None
    last = (run.job_state, run.node)
    while True:
        info = job_info(run.job_id, env) or accounting_info(run.job_id, env)  # past MinJobAge: sacct
        if info is not None:
            missing_since = None
            state = info.get("JobState", "UNKNOWN")
            node = info.get("BatchHost") or info.get("NodeList")
            node = None if node in (None, "(null)", "") else node
            if (state, node) != last:
                changes = {"job_state": state, "node": node}
                if state == "PENDING":
                    changes["message"] = f"pending: {info.get('Reason', '?')}"
                elif state == "RUNNING" and store.get(run_id).status == "queued":
                    changes.update(status="running", started_at=time.time(), message=None)
                store.update(run_id, **changes)
                last = (state, node)
        elif missing_since is None:
            missing_since = time.monotonic()
        offset = _read_log(run.log_path, offset, tracker)
        tracker.flush()
        if info is not None and info.get("JobState") in FINAL_STATES:
            break
        if missing_since is not None and time.monotonic() - missing_since > VANISHED_AFTER:
            tracker.flush(force=True)
            store.finish(run_id, "lost", message=f"Slurm no longer knows job {run.job_id} "
                                                 "(neither scontrol nor sacct has it)")
            return
        time.sleep(POLL_INTERVAL)
    time.sleep(POLL_INTERVAL)  # let the last output reach the shared filesystem
    _read_log(run.log_path, offset, tracker)
    tracker.flush(force=True)
    _finish(store, store.get(run_id), info, env)


def _read_log(path: str, offset: int, tracker: ProgressTracker) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(1 << 20):
                tracker.feed(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        pass
    return offset


def _finish(store: RunStore, run: RunRecord, info: dict, env: dict) -> None:
    state = info.get("JobState")
    exit_code = exit_code_of(info)
    if state == "CANCELLED" or run.cancel_requested:
        status = "cancelled"
    else:
        status = "succeeded" if state == "COMPLETED" and exit_code == 0 else "failed"
    started = {} if run.started_at else {"started_at": time.time()} if state != "CANCELLED" else {}
    finish_run(store, run, status, exit_code=exit_code, tracking_uri=Settings.from_environ(env).tracking_uri,
               failure=f"Slurm job {run.job_id} {state}, exit code {exit_code}", job_state=state, **started)


def main(argv: list[str] | None = None) -> int:
    """`python -m vtm_tui.core.runs.engines.slurm DB RUN_ID`: the follower process. A crash
    finishes the run as lost before it propagates."""
    db_path, run_id = (argv or sys.argv[1:])[:2]
    store = RunStore(Path(db_path))
    try:
        follow(store, int(run_id))
    except Exception as exc:
        store.finish(int(run_id), "lost", message=f"Slurm follower error: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
