"""Local engine: one detached supervisor process per run on this machine."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.core.runs.supervisor import MARKER, RESERVE_NAME

QUEUED_TIMEOUT = 30.0  # a run with no live supervisor after this long was never started


class LocalEngine:
    """Runs on this machine, each under a detached supervisor (core/runs/supervisor.py)."""
    name = "local"

    def start(self, store: RunStore, run: RunRecord) -> None:
        """Start the run's supervisor, detached (own session, output to supervisor.log), and record
        its PID."""
        argv = [sys.executable, "-m", MARKER, str(store.path), str(run.id)]
        log_path = Path(run.log_path).with_name("supervisor.log")
        pid = procs.spawn_detached(argv, log_path=log_path, cwd=run.cwd)
        store.update(run.id, supervisor_pid=pid)

    def supervisor_alive(self, run: RunRecord) -> bool:
        """True while the run's supervisor process lives (checked by PID and command line)."""
        return procs.is_running(run.supervisor_pid, MARKER, str(run.id))

    def cancel(self, store: RunStore, run: RunRecord) -> None:
        """Flag the run cancelled in the store and wake its supervisor (SIGTERM), which escalates
        SIGINT -> SIGTERM -> SIGKILL to the training script; a run without a live supervisor is
        reconciled instead."""
        store.request_cancel(run.id)
        if store.get(run.id).status == "queued":
            return  # its signal handlers may not be installed yet; it reads the flag before starting
        if self.supervisor_alive(run):
            try:  # wakes the supervisor at once; the store flag alone is seen within a second
                os.kill(run.supervisor_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            self.refresh(store, run)

    def refresh(self, store: RunStore, run: RunRecord) -> None:
        """Finish the run as lost when its supervisor vanished (killed, machine restarted) while the
        record still says it is active."""
        if self.supervisor_alive(run):
            return
        current = store.get(run.id)  # it may have finished normally since `run` was read
        if not current.active:
            return
        if current.supervisor_pid is None and time.time() - current.created_at < QUEUED_TIMEOUT:
            return
        store.finish(run.id, "lost", message="its supervisor process vanished (killed or machine restarted)")
        (current.run_dir / RESERVE_NAME).unlink(missing_ok=True)  # the space it held for its last writes
