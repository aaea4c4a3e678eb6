"""Training runs: launching a catalog task, watching, cancelling and re-running it, on this
machine (a detached supervisor per run) or on Slurm; the run store they all share.

    from vtm_tui.core.runs import launch, wait

    run = launch(settings, "classification", {"epochs": "3"}, gpus="0")   # a RunRecord
    run = wait(settings, run.id, on_update=print)                         # until it ends

Modules: lifecycle (launch, rerun, cancel, list, wait), store (RunStore, RunRecord), progress
(the VTM_PROGRESS protocol), supervisor (the per-run process), outcome (how a run ends),
engines/ (local, slurm). Importing this package stays light: the supervisor imports it.
"""
from __future__ import annotations

from vtm_tui.core.lazy import lazy_exports

_EXPORTS = {
    "lifecycle": ("cancel", "get_run", "launch", "list_runs", "normalize_gpus", "open_store", "parse_assignments",
                  "rerun", "tail_lines", "wait"),
    "store": ("RunNotFound", "RunRecord", "RunStore"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
