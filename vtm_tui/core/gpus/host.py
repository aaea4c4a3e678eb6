"""The GPU box at a glance: each GPU with who holds or uses it (a vtm run or another process), and
the queue with each waiting run's place and what it waits for. What the host view, the Launcher's
GPU picker, `vtm runs` and the queued supervisors read; built from the inventory, the active runs
and the processes NVML lists (pure functions but `attribute`, which reads /proc through psutil).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from vtm_tui.core.gpus.allocation import DeviceState, GpuRequest, Placement, Waiter, plan
from vtm_tui.core.gpus.inventory import GpuDevice, Inventory


@dataclass(frozen=True)
class ActiveRun:
    """What the queue needs of one queued or running local vtm run: its devices (held while it
    runs; () while queued), its request and priority (None / 0 for a run that asked for none or
    for runs from before the queue), when it was queued (seconds since the epoch) and its
    supervisor's PID (its processes descend from it)."""
    run_id: int
    task: str
    status: str
    devices: tuple[int, ...] = ()
    request: GpuRequest | None = None
    priority: int = 0
    queued_at: float = 0.0
    supervisor_pid: int | None = None


@dataclass(frozen=True)
class GpuUser:
    """A process on a GPU: its PID, name, memory in MB (None: unknown) and the vtm run it belongs
    to (None: another process)."""
    pid: int
    name: str
    used_mb: float | None
    run_id: int | None


@dataclass(frozen=True)
class GpuView:
    """One GPU as the host view shows it: the device, the run holding it (None: no vtm run), the
    processes on it, whether vtm may hand it out, whether it is busy and why, in a few words."""
    device: GpuDevice
    holder: int | None
    users: tuple[GpuUser, ...]
    allocatable: bool
    busy: bool
    state: str


@dataclass(frozen=True)
class QueuedRun:
    """A run in the queue: the run, its request, priority and its placement (place, what it waits
    for)."""
    run: ActiveRun
    placement: Placement


@dataclass(frozen=True)
class HostState:
    """The box now: time (seconds since the epoch), the GPUs, the queue in order, the active runs,
    the host's CPU (0-100 of all cores) and memory (MB, 10^6 bytes); inventory: where the GPU list
    came from."""
    time: float
    inventory: Inventory
    gpus: tuple[GpuView, ...]
    queue: tuple[QueuedRun, ...]
    runs: tuple[ActiveRun, ...] = ()
    cpu_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None

    def gpu(self, index: int) -> GpuView | None:
        """The view of GPU `index`, or None."""
        return next((view for view in self.gpus if view.device.index == index), None)

    def run(self, run_id: int | None) -> ActiveRun | None:
        """The active run with this id, or None."""
        return next((run for run in self.runs if run.run_id == run_id), None)


def attribute(pids: Iterable[int], supervisors: Mapping[int, int]) -> dict[int, int]:
    """{pid: vtm run id} for the processes that descend from a run's supervisor (supervisors:
    {supervisor pid: run id}); others are left out. Reads each process's ancestry (psutil)."""
    import psutil

    found = {}
    for pid in pids:
        try:
            chain = [pid, *(parent.pid for parent in psutil.Process(pid).parents())]
        except psutil.Error:
            continue
        run = next((supervisors[ancestor] for ancestor in chain if ancestor in supervisors), None)
        if run is not None:
            found[pid] = run
    return found


def device_states(inventory: Inventory, runs: Sequence[ActiveRun], owners: Mapping[int, int]) -> list[DeviceState]:
    """The queue's view of each device vtm may hand out: the running run holding it, and the memory
    used on it by processes that are not that run's (owners: {pid: run id}, see `attribute`).
    Where NVML cannot list the processes (None) or gives no figure for one, that memory is the
    device's used memory less what the holding run's processes are known to use: a device 70 GB
    full of processes nobody can see is busy. Without any figure (no NVML) it counts for nothing."""
    holders = {index: run.run_id for run in runs if run.status == "running" for index in run.devices}
    states = []
    for device in inventory.allocatable:
        holder = holders.get(device.index)
        listed = device.processes or ()
        others = [proc for proc in listed if holder is None or owners.get(proc.pid) != holder]
        foreign_mb = sum(proc.used_mb or 0.0 for proc in others)
        unknown = device.processes is None or any(proc.used_mb is None for proc in others)
        if unknown and device.memory_used_mb is not None:
            held_mb = sum(proc.used_mb or 0.0 for proc in listed if proc not in others)
            foreign_mb = max(foreign_mb, device.memory_used_mb - held_mb)
        states.append(DeviceState(
            device.index, holder, foreign_mb,
            tuple(f"pid {proc.pid} {proc.name}".strip() if owners.get(proc.pid) is None
                  else f"run {owners[proc.pid]}" for proc in others)))
    return states


def waiters(runs: Sequence[ActiveRun]) -> list[Waiter]:
    """The queued runs that wait for GPUs, as the queue's rule takes them."""
    return [Waiter(run.run_id, run.request, run.priority, run.queued_at)
            for run in runs if run.status == "queued" and run.request is not None]


def host_state(inventory: Inventory, runs: Sequence[ActiveRun], busy_mb: float, owners: Mapping[int, int],
               *, now: float, cpu_percent: float | None = None, memory_used_mb: float | None = None,
               memory_total_mb: float | None = None) -> HostState:
    """Put the box together (see HostState): each GPU's holder, users and state, and the queue's
    placements under the queue's rule with busy_mb (VTM_GPU_BUSY_MB)."""
    states = {state.index: state for state in device_states(inventory, runs, owners)}
    holders = {index: run.run_id for run in runs if run.status == "running" for index in run.devices}
    views = []
    for device in inventory.devices:
        users = tuple(GpuUser(proc.pid, proc.name, proc.used_mb, owners.get(proc.pid))
                      for proc in device.processes or ())
        state = states.get(device.index)
        busy = state.busy(busy_mb) if state is not None else True
        if state is None:
            text = "not for vtm (VTM_GPUS)"
        elif busy:
            text = state.why_busy(who=False)  # the processes are listed beside it
        else:
            text = "free"
        views.append(GpuView(device, holders.get(device.index), users, state is not None, busy, text))
    by_id = {run.run_id: run for run in runs}
    placements = plan(waiters(runs), list(states.values()), busy_mb)
    return HostState(now, inventory, tuple(views), tuple(QueuedRun(by_id[p.run_id], p) for p in placements),
                     tuple(runs), cpu_percent, memory_used_mb, memory_total_mb)
