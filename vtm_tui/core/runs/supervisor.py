"""The detached per-run supervisor: `python -m vtm_tui.core.runs.supervisor DB RUN_ID`.

It owns one training process: starts it in its own process group, copies its output to the
run's log file byte for byte, records progress / MLflow run id / status / exit code in the run
store, escalates a cancel SIGINT -> SIGTERM -> SIGKILL to every process of the run, and ends an
MLflow run the script left open. Started in its own session, so closing the TUI or dropping SSH
cannot reach it; nothing here imports the UI, and mlflow is imported only at the very end, if
needed.

Faults from outside never end the training: a log write the disk refuses drops that output
(counted) and the run ends `failed: no space left on device (PATH)`; the store's failures are
absorbed by the Recorder (a store deleted or damaged midway is rebuilt and written again); the
supervisor is a child subreaper, so whatever the script starts stays findable for a cancel.
System metrics are optional: what stops them is one line in the run's log. An error of the
supervisor's own after the script started ends the script's processes before the run is failed:
nothing of a run goes on unsupervised.
The pieces: run_output (progress, log, space reserve), recorder (store writes), run_processes
(cancel), outcome (the final record).
"""
from __future__ import annotations

import fcntl
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from vtm_tui.core import procs, proctable
from vtm_tui.core.runs.gpu_queue import devices_of, wait_for_devices
from vtm_tui.core.runs.liveness import MARKER, RESERVE_NAME  # noqa: F401 (MARKER: this module's name)
from vtm_tui.core.runs.outcome import finish_run
from vtm_tui.core.runs.recorder import Recorder
from vtm_tui.core.runs.run_output import LogWriter, ProgressTracker, SpaceReserve
from vtm_tui.core.runs.run_processes import Canceller, RunProcesses
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.core.runs.system_metrics import SystemMetrics
from vtm_tui.settings import Settings

CANCEL_POLL_INTERVAL = 1.0
READ_SIZE = 1 << 20
BATCH_PAUSE = 0.005  # seconds; far below what a person or the UI can notice
END_GRACE = 2.0  # seconds a process the script left behind gets between SIGTERM and SIGKILL



def supervise(store: RunStore, run_id: int) -> None:
    """Run and watch run `run_id` to its end (see the module docstring); every outcome, a failure
    to start included, ends in a finished run record."""
    run = store.get(run_id)
    cancel_flag = {"set": False}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A handler, not SIG_IGN: an ignored SIGINT would be inherited by the training script, and
    # the first step of a cancel (SIGINT, i.e. KeyboardInterrupt) would never reach it.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: cancel_flag.update(set=True))

    handed = Settings.from_environ(procs.child_environ(run.env), Path(run.cwd))  # what the launcher handed over
    if run.gpu_request and run.status == "queued" and not run.cancel_requested:
        run = _wait_in_queue(handed, store, run, cancel_flag)
        if run is None:
            return
    reserve = SpaceReserve(run.run_dir / RESERVE_NAME)
    recorder = Recorder(store, run, on_full=reserve.release)
    log = LogWriter(run.log_path, on_disk_error=reserve.release)
    env = procs.child_environ(run.env)
    if run.cancel_requested:  # cancelled while queued: never start it
        recorder.finish_patiently("cancelled", {"message": "cancelled before it started"})
        reserve.release()
        return
    proctable.become_subreaper()  # what the script daemonizes stays below us, for cancel
    try:
        child = subprocess.Popen(
            run.argv, cwd=run.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        message = f"cannot start {run.argv[0]!r}: {exc.strerror or exc}"
        log.write(f"[vtm] {message}\n".encode())
        recorder.finish_patiently("failed", {"message": message, "started_at": time.time()})
        reserve.release()
        return
    processes = RunProcesses(child.pid, run.run_dir)
    try:
        recorder.update(run_id, status="running", started_at=time.time(), supervisor_pid=os.getpid(),
                        child_pid=child.pid)
        _watch(handed, recorder, run, child, processes, log, reserve, cancel_flag, env)
    except Exception as exc:  # an error of our own: the script must not go on unsupervised
        raise WatchFailed(exc, processes.end_all(END_GRACE)) from exc


class WatchFailed(Exception):
    """An error of the supervisor's own after the script started; the run's processes were ended
    (left: `PID (command)` of those that would not end)."""

    def __init__(self, cause: Exception, left: list[str]):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.left = left

    def note(self) -> str:
        """What the run's message says of its processes."""
        return "; the training script was ended" + (
            f" but these would not end: {', '.join(self.left)}" if self.left else "")


def _watch(handed: Settings, recorder: Recorder, run: RunRecord, child: subprocess.Popen, processes: RunProcesses,
           log: LogWriter, reserve: SpaceReserve, cancel_flag: dict, env: dict) -> None:
    """Watch the started script to its end and record the outcome (see `supervise`)."""
    tracker = ProgressTracker(recorder, run.id, run.progress)
    canceller = Canceller(processes, handed.cancel_grace)
    metrics = _start_metrics(handed, env, recorder, log)
    exit_code, metrics = _pump(child, log, tracker, recorder, canceller, cancel_flag, metrics)
    left = processes.end_all(END_GRACE)  # nothing of the run outlives it
    tracker.flush(force=True)
    if metrics is not None:
        metrics.stop()
        _save_samples(metrics, recorder, log)

    notes = [log.problem(), metrics.problem if metrics is not None else None]
    if left:
        notes.append(f"could not end process(es) of the run: {', '.join(left)}")
    if canceller.started is not None:
        status = "cancelled"
    elif exit_code != 0 or log.problem():
        status = "failed"
    else:
        status = "succeeded"
    if exit_code == 0:
        failure = "the training itself exited with code 0"
    else:
        failure = f"exit code {exit_code}" if exit_code > 0 else f"killed by signal {-exit_code}"
    reserve.release()  # its space is for these last writes
    finish_run(recorder, recorder.record, status, exit_code=exit_code, tracking_uri=handed.tracking_uri,
               failure=failure, log_lines=log.tail_lines(), notes=notes)
    log.close()


def _wait_in_queue(settings: Settings, store: RunStore, run: RunRecord, cancel_flag: dict) -> RunRecord | None:
    """Wait in the GPU queue (core/runs/gpu_queue.py) until the run holds its devices: the record
    to start, with CUDA_VISIBLE_DEVICES set to them (in NVML's order); marked cancel_requested when it was
    cancelled while waiting (it never starts); None when it was finished meanwhile by someone else."""
    devices = wait_for_devices(settings, store, run.id, stop=lambda: cancel_flag["set"])
    current = store.get(run.id)
    if devices is None:
        if not current.active:
            return None
        current.cancel_requested = True
        return current
    # NVML numbers GPUs by PCI bus; CUDA, unless told so, fastest first: make its numbering NVML's.
    current.env = {**current.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, devices)),
                   "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    store.update(run.id, env=current.env)
    return current


def _start_metrics(settings: Settings, env: dict, recorder: Recorder, log: LogWriter) -> SystemMetrics | None:
    """Start sampling the run's system metrics every VTM_SYSTEM_METRICS_INTERVAL seconds (None:
    0, sampling off), for the store and, while tracking is on, its MLflow run. They are optional:
    what stops them (or their way to MLflow) is one line in the run's log, and the training goes on."""
    if settings.system_metrics_interval <= 0:
        return None
    try:
        metrics = SystemMetrics(settings.system_metrics_interval, devices_of(recorder.record.gpus),
                                mlflow_run_id=lambda: recorder.record.mlflow_run_id, environ=env,
                                tracking_uri=settings.tracking_uri if settings.tracking_mode != "off" else None)
        metrics.start()
    except Exception as exc:
        log.write(f"[vtm] system metrics off: {type(exc).__name__}: {exc}\n".encode())
        return None
    if metrics.problem:
        log.write(f"[vtm] {metrics.problem}\n".encode())
    return metrics


def _save_samples(metrics: SystemMetrics, recorder: Recorder, log: LogWriter) -> bool:
    """Save the samples taken since the last call; False (one line in the log, sampling stopped)
    when that fails for a reason of its own."""
    try:
        samples = metrics.take()
        if samples:
            recorder.save_system(samples)
        return True
    except Exception as exc:
        log.write(f"[vtm] system metrics off: {type(exc).__name__}: {exc}\n".encode())
        metrics.stop()
        return False


def _pump(child: subprocess.Popen, log: LogWriter, tracker: ProgressTracker, recorder: Recorder,
          canceller: Canceller, cancel_flag: dict,
          metrics: SystemMetrics | None = None) -> tuple[int, SystemMetrics | None]:
    """Copy the script's output to the log and the tracker until it is gone; act on cancels;
    save the system-metric samples. Returns the script's exit code (minus the signal that ended
    it), and the system metrics (None once saving them failed: they were stopped)."""
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    fd = child.stdout.fileno()
    try:  # a bigger pipe lets the script run ahead while we batch (Linux only)
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ_SIZE)
    except OSError:
        pass
    next_cancel_poll = 0.0
    exited_at: float | None = None
    while True:
        if cancel_flag["set"]:
            canceller.request()
        now = time.monotonic()
        if now >= next_cancel_poll:  # a cancel can also arrive through the store alone
            next_cancel_poll = now + CANCEL_POLL_INTERVAL
            if canceller.started is None and recorder.cancel_requested():
                canceller.request()
            proctable.reap_orphans(keep=child.pid)
        canceller.tick()
        if selector.select(timeout=0.2):
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                break
            log.write(chunk)
            tracker.feed(chunk)
            if len(chunk) < READ_SIZE:
                # A chatty script flushing every line would wake us per line; letting the pipe
                # fill for a moment turns that into one read, one write and one parse pass.
                time.sleep(BATCH_PAUSE)
        elif child.poll() is not None:
            # The script is gone but something it started still holds the pipe: stop waiting.
            exited_at = exited_at or now
            if now - exited_at > 1.0:
                break
        if log.error and recorder.record.message != _disk_message(log):
            recorder.update(recorder.record.id, message=_disk_message(log))
        tracker.flush()
        if metrics is not None and not _save_samples(metrics, recorder, log):
            metrics = None
    return child.wait(), metrics


def _disk_message(log: LogWriter) -> str:
    return f"{log.error}: log output is being dropped; the training goes on"


def main(argv: list[str] | None = None) -> int:
    """`python -m vtm_tui.core.runs.supervisor DB RUN_ID`: the supervisor process. An error of
    its own finishes the run as failed (exit code 1), after ending the script if it had started."""
    db_path, run_id = (argv or sys.argv[1:])[:2]
    store = RunStore(Path(db_path))
    try:
        supervise(store, int(run_id))
    except Exception as exc:  # the script, when it had started, was ended (WatchFailed)
        detail = traceback.format_exc()
        sys.stderr.write(detail)
        if isinstance(exc, WatchFailed):
            message = f"supervisor error: {exc}{exc.note()}"
        else:
            message = "supervisor error: " + detail.strip().splitlines()[-1]
        store.finish(int(run_id), "failed", message=message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
