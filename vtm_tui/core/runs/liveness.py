"""Whether a local run's supervisor still lives, and what becomes of a run whose supervisor
vanished (killed, machine restarted): what it left running of the run (the training script, in
its own session, and what that started) is ended first, SIGTERM and SIGKILL after the cancel
grace, so that no orphan keeps using a GPU the queue hands to the next run; then it finishes
`lost`, which releases its GPUs in the queue and its space reserve. Shared by the local engine's
refresh and the GPU queue's supervisors."""
from __future__ import annotations

import time
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs.run_processes import RunProcesses
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.errors import UserError
from vtm_tui.settings import DEFAULT_CANCEL_GRACE, Settings

MARKER = "vtm_tui.core.runs.supervisor"  # the supervisor's module: `python -m MARKER DB RUN_ID`
RESERVE_NAME = ".space-reserve"  # the file in the run folder that keeps space for the last writes
QUEUED_TIMEOUT = 30.0  # seconds: a run with no supervisor PID after this long was never started
LOST_MESSAGE = "its supervisor process vanished (killed or machine restarted)"


def supervisor_alive(run: RunRecord) -> bool:
    """True while the run's supervisor process lives (checked by PID and command line)."""
    return procs.is_running(run.supervisor_pid, MARKER, str(run.id))


def finish_if_gone(store: RunStore, run: RunRecord) -> bool:
    """Finish an active local run as lost when its supervisor is gone (a run just recorded gets
    QUEUED_TIMEOUT seconds for its supervisor to show up); True when it did. `run` may be an
    older look at the record: the supervisor is judged again on the record as it is now."""
    if supervisor_alive(run):
        return False
    current = store.get(run.id)  # it may have finished normally since `run` was read
    if not current.active:
        return False
    if current.supervisor_pid != run.supervisor_pid and supervisor_alive(current):
        return False  # a supervisor started since `run` was read, and recorded its PID
    if current.supervisor_pid is None and time.time() - current.created_at < QUEUED_TIMEOUT:
        return False
    if not store.finish(run.id, "lost", message=LOST_MESSAGE + end_orphans(current)):
        return False
    (current.run_dir / RESERVE_NAME).unlink(missing_ok=True)
    return True


def end_orphans(run: RunRecord) -> str:
    """End the processes of a run whose supervisor is gone (see RunProcesses: the script's group
    and whatever carries the run's marker), SIGTERM then SIGKILL after the run's VTM_CANCEL_GRACE;
    returns what to add to its message ('' when nothing of it was running)."""
    try:
        grace = Settings.from_environ(run.env, Path(run.cwd)).cancel_grace
    except UserError:
        grace = DEFAULT_CANCEL_GRACE
    found, left = RunProcesses(run.child_pid, run.run_dir, orphaned=True).terminate(grace)
    if not found:
        return ""
    note = f"; its {len(found)} process(es) left running were ended: {_listed(found)}"
    return note + (f"; these would not end: {_listed(left)}" if left else "")


def _listed(described: list[str], shown: int = 3) -> str:
    more = f" and {len(described) - shown} more" if len(described) > shown else ""
    return ", ".join(described[:shown]) + more
