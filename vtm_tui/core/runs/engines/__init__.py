"""Execution engines behind one interface: start, cancel, and refresh (reconcile) a run."""
from __future__ import annotations

from typing import Protocol

from vtm_tui.core.runs.store import RunRecord, RunStore


class Engine(Protocol):
    name: str

    def start(self, store: RunStore, run: RunRecord) -> None: ...

    def cancel(self, store: RunStore, run: RunRecord) -> None: ...

    def refresh(self, store: RunStore, run: RunRecord) -> None:
        """Bring an active run's record in line with reality (e.g. mark a vanished run lost)."""


def get_engine(name: str) -> Engine:
    if name == "local":
        from vtm_tui.core.runs.engines.local import LocalEngine

        return LocalEngine()
    if name == "slurm":
        from vtm_tui.core.runs.engines.slurm import SlurmEngine

        return SlurmEngine()
    raise ValueError(f"unknown engine {name!r} (known: local, slurm)")


def reconcile(store: RunStore) -> None:
    for run in store.active():
        get_engine(run.engine).refresh(store, run)
