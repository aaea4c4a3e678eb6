"""Every process of a run, and how a cancel reaches all of them.

A run's processes are the members of the training script's process group, every descendant of
its supervisor (a child subreaper, so daemonized descendants stay below it), and every process
that started with the run's marker in its environment (`VTM_RUN_DIR=<its folder>`, which vtm
hands the script and its children inherit): a child that called setsid, left the group or
double-forked is still found. Nothing else is ever signalled.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from vtm_tui.core import procs, proctable
from vtm_tui.settings import RUN_DIR_VARIABLE


class RunProcesses:
    """The processes of one run: the script `child_pid` (a process group leader; None when it was
    never recorded), what it started, and whatever carries the run folder's marker; never the
    supervisor itself. supervisor_pid: the run's live supervisor (default: this process), whose
    descendants are the run's; `orphaned` (its supervisor is gone) counts no descendants, and the
    script's process group only when one of its processes carries the marker: after a restart
    the PID may be another program's."""

    def __init__(self, child_pid: int | None, run_dir: str | Path, supervisor_pid: int | None = None, *,
                 orphaned: bool = False):
        self.child_pid = child_pid
        self.marker = str(run_dir)
        self.supervisor_pid = supervisor_pid or os.getpid()
        self.orphaned = orphaned

    def find(self, outside_group: bool = False) -> set[int]:
        """PIDs of the run's live processes now (outside_group: only those that left the
        script's process group)."""
        table = proctable.snapshot()
        found = proctable.marked(RUN_DIR_VARIABLE, self.marker, table)
        if not self.orphaned:
            found |= proctable.descendants(self.supervisor_pid, table)
        if outside_group:
            found = {pid for pid in found if table[pid].pgid != self.child_pid}
        elif self.child_pid:
            group = proctable.group_members(self.child_pid, table)
            if not self.orphaned or group & found:
                found |= group
        found.discard(self.supervisor_pid)
        return found

    def signal(self, sig: int) -> None:
        """Send `sig` to the script's process group, and once to each process of the run outside
        it (a signal to the group reaches its members already)."""
        procs.signal_group(self.child_pid, sig)
        proctable.send(self.find(outside_group=True), sig)

    def terminate(self, grace: float) -> tuple[list[str], list[str]]:
        """SIGTERM every process of the run, SIGKILL after `grace` seconds what is left (the
        orphaned script of a vanished supervisor gets the cancel's grace too). Returns
        descriptions (`PID (command)`) of the processes found, and of those that would not end."""
        found = self.find()
        described = [proctable.describe(pid) for pid in sorted(found)]
        left = proctable.end(found, grace)
        return described, [proctable.describe(pid) for pid in left]

    def end_all(self, grace: float) -> list[str]:
        """SIGKILL the script's group, then SIGTERM (and after `grace` seconds SIGKILL) whatever
        else of the run still lives; returns descriptions (`PID (command)`) of the processes that
        would not end."""
        procs.signal_group(self.child_pid, signal.SIGKILL)
        left = proctable.end(self.find(), grace)
        return [proctable.describe(pid) for pid in left]


class Canceller:
    """SIGINT now, SIGTERM after the grace period, SIGKILL after another: to the script's group
    first (the gentle step reaches the script itself), and to every other process of the run."""

    def __init__(self, processes: RunProcesses, grace: float):
        self.processes, self.grace = processes, grace
        self.started: float | None = None
        self.stage = 0

    def request(self) -> None:
        """Start cancelling: SIGINT to the run's processes (once)."""
        if self.started is None:
            self.started = time.monotonic()
            self.processes.signal(signal.SIGINT)
            self.stage = 1

    def tick(self) -> None:
        """Escalate when due: SIGTERM `grace` seconds after the SIGINT, SIGKILL after twice that."""
        if self.started is None:
            return
        elapsed = time.monotonic() - self.started
        if self.stage == 1 and elapsed >= self.grace:
            self.processes.signal(signal.SIGTERM)
            self.stage = 2
        elif self.stage == 2 and elapsed >= 2 * self.grace:
            self.processes.signal(signal.SIGKILL)
            self.stage = 3
