"""Execution engines behind one interface: start, cancel, and refresh (reconcile) a run."""
from __future__ import annotations

from typing import Protocol

from vtm_tui.core.runs.store import RunRecord, RunStore


class Engine(Protocol):
    """What an execution engine does for a run record (local: a detached supervisor; slurm: sbatch
    and a follower). Engines are looked up by name with get_engine."""
    name: str

    def start(self, store: RunStore, run: RunRecord) -> None:
        """Start the recorded run; UserError (and the run finished failed) when it cannot start."""

    def cancel(self, store: RunStore, run: RunRecord) -> None:
        """Ask the run to stop (the record finishes as cancelled once it has); UserError when the
        request cannot be delivered."""

    def refresh(self, store: RunStore, run: RunRecord) -> None:
        """Bring an active run's record in line with reality (e.g. mark a vanished run lost)."""


def get_engine(name: str) -> Engine:
    """The engine of that name (local, slurm); ValueError for another name."""
    if name == "local":
        from vtm_tui.core.runs.engines.local import LocalEngine

        return LocalEngine()
    if name == "slurm":
        from vtm_tui.core.runs.engines.slurm import SlurmEngine

        return SlurmEngine()
    raise ValueError(f"unknown engine {name!r} (known: local, slurm)")


def reconcile(store: RunStore) -> None:
    """Refresh every active run of the store with its engine (lost supervisors, finished jobs)."""
    for run in store.active():
        get_engine(run.engine).refresh(store, run)
