"""Local engine: one detached supervisor process per run on this machine."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from vtm_tui.core import procs
from vtm_tui.core.runs import liveness
from vtm_tui.core.runs.liveness import MARKER
from vtm_tui.core.runs.store import RunRecord, RunStore


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
        return liveness.supervisor_alive(run)

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
        record still says it is active: its GPUs go to the next run in the queue."""
        liveness.finish_if_gone(store, run)
