"""The GPU queue as the run store holds it: which local runs hold which GPUs, which wait, and the
box as the host view shows it (core/gpus/host.py over this store)."""
from __future__ import annotations

import time

from vtm_tui.core.formatting import MB
from vtm_tui.core.gpus.host import ActiveRun, HostState, attribute, host_state
from vtm_tui.core.gpus.inventory import read_inventory
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.settings import Settings


def _devices(gpus: str | None) -> tuple[int, ...]:
    """CUDA_VISIBLE_DEVICES as vtm set it ('0,2') -> (0, 2); '' or None -> ()."""
    return tuple(int(part) for part in (gpus or "").split(",") if part.strip().isdigit())


def active_run(run: RunRecord) -> ActiveRun:
    """What the queue needs of one active run record."""
    return ActiveRun(run.id, run.task, run.status, _devices(run.gpus) if run.status == "running" else (),
                     None, 0, run.created_at, run.supervisor_pid)


def active_runs(store: RunStore) -> list[ActiveRun]:
    """The store's queued and running runs on this machine (Slurm keeps its own queue)."""
    return [active_run(run) for run in store.active() if run.engine == "local"]


def read_host(settings: Settings) -> HostState:
    """The box now: the GPU inventory (NVML, VTM_GPUS), the active runs of the run store, which run
    each GPU process belongs to, the queue's placements, the host's CPU and memory. Blocking: call
    it from a worker thread in the UI."""
    import psutil

    inventory = read_inventory(settings)
    runs = active_runs(RunStore(settings.runs_db))
    pids = {proc.pid for device in inventory.devices for proc in device.processes or ()}
    owners = attribute(pids, {run.supervisor_pid: run.run_id for run in runs if run.supervisor_pid})
    memory = psutil.virtual_memory()
    return host_state(inventory, runs, settings.gpu_busy_mb, owners, now=time.time(),
                      cpu_percent=psutil.cpu_percent(None), memory_used_mb=memory.used / MB,
                      memory_total_mb=memory.total / MB)
