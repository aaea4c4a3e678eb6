"""The GPU queue as the run store holds it: which local runs hold which GPUs, which wait, and the
box as the host view shows it (core/gpus/host.py over this store).

The queue has no daemon: each queued run's detached supervisor waits in `wait_for_devices`,
polling the store. Under one lock file next to the store (flock, so a killed holder frees it) it
finishes runs whose supervisors vanished (their GPUs come free), applies the queue's rule
(core/gpus/allocation.py) and, when its run may start, claims the devices in the store (the run
becomes `running` with its gpus) before releasing the lock; so two runs never get one device, and
the queue goes on whatever happens to the launcher or the TUI.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from vtm_tui.core.formatting import MB
from vtm_tui.core.gpus.allocation import GpuRequest
from vtm_tui.core.gpus.host import ActiveRun, HostState, attribute, host_state
from vtm_tui.core.gpus.inventory import read_inventory
from vtm_tui.core.runs import liveness
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.settings import Settings

LOCK_NAME = "gpu-queue.lock"  # next to the run store
POLL_INTERVAL = 0.5  # seconds between two looks of a waiting supervisor


def devices_of(gpus: str | None) -> tuple[int, ...]:
    """CUDA_VISIBLE_DEVICES as vtm set it ('0,2') -> (0, 2); '' or None -> ()."""
    return tuple(int(part) for part in (gpus or "").split(",") if part.strip().isdigit())


def run_request(run: RunRecord) -> GpuRequest | None:
    """The GPU request a run was launched with (None: it asked for none, or a store row from
    before the queue, or one that does not read)."""
    try:
        return GpuRequest.from_text(run.gpu_request) if run.gpu_request else None
    except ValueError:
        return None


def active_run(run: RunRecord) -> ActiveRun:
    """What the queue needs of one active run record."""
    return ActiveRun(run.id, run.task, run.status, devices_of(run.gpus) if run.status == "running" else (),
                     run_request(run), run.priority, run.created_at, run.supervisor_pid)


def active_runs(store: RunStore) -> list[ActiveRun]:
    """The store's queued and running runs on this machine (Slurm keeps its own queue)."""
    return [active_run(run) for run in store.active() if run.engine == "local"]


def box_state(settings: Settings, store: RunStore) -> HostState:
    """The GPUs and the queue over `store` (no host CPU and memory): what a waiting supervisor and
    `vtm runs` read."""
    inventory = read_inventory(settings)
    runs = active_runs(store)
    pids = {proc.pid for device in inventory.devices for proc in device.processes or ()}
    owners = attribute(pids, {run.supervisor_pid: run.run_id for run in runs if run.supervisor_pid}) if pids else {}
    return host_state(inventory, runs, settings.gpu_busy_mb, owners, now=time.time())


@contextmanager
def queue_lock(store: RunStore) -> Iterator[None]:
    """Hold the GPU queue's lock (an flock on LOCK_NAME next to the store) while inside."""
    with open(Path(store.path).with_name(LOCK_NAME), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def try_claim(settings: Settings, store: RunStore, run_id: int) -> tuple[int, ...] | None:
    """One look of a waiting run, under the queue's lock: finish local runs whose supervisors
    vanished, place the queue, and claim this run's devices when it may start (the store then has
    it `running` on them). Returns the devices, or None while it waits or once it is not queued."""
    with queue_lock(store):
        for run in store.active():
            if run.engine == "local" and run.id != run_id:
                liveness.finish_if_gone(store, run)
        state = box_state(settings, store)
        placement = next((queued.placement for queued in state.queue if queued.run.run_id == run_id), None)
        if placement is None or placement.devices is None:
            return None
        return placement.devices if store.claim_devices(run_id, placement.devices) else None


def wait_for_devices(settings: Settings, store: RunStore, run_id: int,
                     stop: Callable[[], bool] = lambda: False) -> tuple[int, ...] | None:
    """Block until run `run_id` holds its devices (returned, in CUDA_VISIBLE_DEVICES order) or it
    is no longer waiting: cancelled (the store's flag), no longer queued, or stop() says so (None).
    Records this process as the run's supervisor first, so a killed waiter leaves the queue."""
    store.update(run_id, supervisor_pid=os.getpid())
    while True:
        run = store.get(run_id)
        if run.cancel_requested or run.status != "queued" or stop():
            return None
        devices = try_claim(settings, store, run_id)
        if devices is not None:
            return devices
        time.sleep(POLL_INTERVAL)


def read_host(settings: Settings) -> HostState:
    """The box now: the GPU inventory (NVML, VTM_GPUS), the active runs of the run store, which run
    each GPU process belongs to, the queue's placements, the host's CPU and memory. Blocking: call
    it from a worker thread in the UI."""
    import psutil

    state = box_state(settings, RunStore(settings.runs_db))
    memory = psutil.virtual_memory()
    return replace(state, cpu_percent=psutil.cpu_percent(None), memory_used_mb=memory.used / MB,
                   memory_total_mb=memory.total / MB)
