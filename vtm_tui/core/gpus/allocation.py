"""The GPU queue's rule, as pure functions: which waiting run gets which devices now, and what
the others wait for.

The rule:
- A device is busy when a vtm run holds it, or when other processes use more than VTM_GPU_BUSY_MB
  of its memory; only devices vtm may hand out (VTM_GPUS) are ever given.
- Waiting runs are served by priority (higher first), then first come, first served.
- A run asks for any N devices (`--num-gpus N`: the lowest free indices) or for exactly some
  (`--gpus 0,2`). It starts when its devices are free and no run ahead of it keeps them.
- A run that cannot start yet keeps the free devices it could use for itself (for `--num-gpus N`,
  up to N of them; for `--gpus`, the free ones among those it names), so a stream of small runs
  behind it cannot starve it. It keeps nothing it cannot use: a run waiting for GPU 1 leaves a
  free GPU 0 to the runs behind it.

Slurm places its own jobs; this queue is for runs on this machine.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vtm_tui.core.formatting import MB, format_size
from vtm_tui.errors import UserError


@dataclass(frozen=True)
class GpuRequest:
    """What a run asks for: `count` devices, any of them (vtm picks), or exactly `devices` (NVML
    indices, in the order given: the order of CUDA_VISIBLE_DEVICES)."""
    count: int | None = None
    devices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.devices is None):
            raise ValueError("a GpuRequest has either count or devices")

    @property
    def size(self) -> int:
        """How many devices the run gets."""
        return self.count if self.count is not None else len(self.devices or ())

    def describe(self) -> str:
        """'1 GPU', '2 GPUs', 'GPU 1', 'GPUs 0,2'."""
        if self.count is not None:
            return f"{self.count} GPU{'s' if self.count != 1 else ''}"
        devices = self.devices or ()
        return f"GPU{'s' if len(devices) != 1 else ''} {','.join(map(str, devices))}"

    def to_text(self) -> str:
        """The request as the run store keeps it: 'count:2' or 'devices:0,2' (from_text reads it)."""
        if self.count is not None:
            return f"count:{self.count}"
        return "devices:" + ",".join(map(str, self.devices or ()))

    @classmethod
    def from_text(cls, text: str) -> GpuRequest:
        """Read what to_text wrote; ValueError for anything else."""
        kind, _, value = text.partition(":")
        if kind == "count" and value.isdigit() and int(value) > 0:
            return cls(count=int(value))
        if kind == "devices" and value and all(part.isdigit() for part in value.split(",")):
            return cls(devices=tuple(int(part) for part in value.split(",")))
        raise ValueError(f"not a GPU request: {text!r}")


def parse_request(gpus: str | None, num_gpus: int | str | None) -> GpuRequest | None:
    """`--gpus LIST` / `--num-gpus N` (the CLI, the Launcher form, script steps) -> the request;
    None when the run asks for no GPU (`--gpus cpu`) or says nothing (CUDA_VISIBLE_DEVICES left as
    it is). UserError (exit 2) for both at once, a count below 1, or a list that is not distinct
    indices."""
    if num_gpus is not None and str(num_gpus).strip() != "":
        if gpus is not None and gpus.strip() != "":
            raise UserError("give either --gpus LIST or --num-gpus N, not both")
        text = str(num_gpus).strip()
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"--num-gpus expects a number of GPUs (1 or more), got {num_gpus!r}")
        return GpuRequest(count=int(text))
    if gpus is None:
        return None
    text = gpus.strip().lower()
    if text in ("", "cpu", "none"):
        return None
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(map(int, parts))) != len(parts):
        raise UserError(f"--gpus expects distinct GPU indices like 0 or 0,2 (or 'cpu'), got {gpus!r}")
    return GpuRequest(devices=tuple(int(part) for part in parts))


def check_request(request: GpuRequest, allocatable: Sequence[int]) -> None:
    """UserError when the request can never be met here: a device vtm may not hand out, or more
    devices than there are (allocatable: the indices from the inventory)."""
    where = (f"vtm may hand out {', '.join(map(str, allocatable)) or 'no GPU'}"
             " (VTM_GPUS, else CUDA_VISIBLE_DEVICES, else every GPU NVML sees)")
    if request.devices is not None:
        missing = [index for index in request.devices if index not in allocatable]
        if missing:
            raise UserError(f"--gpus {','.join(map(str, request.devices))}: GPU {missing[0]} is not here; {where}")
    elif request.size > len(allocatable):
        raise UserError(f"--num-gpus {request.count}: {where}")


@dataclass(frozen=True)
class Waiter:
    """A queued run: its id, its request, its priority (higher goes first) and when it was queued
    (seconds since the epoch: first come, first served among equal priorities)."""
    run_id: int
    request: GpuRequest
    priority: int = 0
    queued_at: float = 0.0


@dataclass(frozen=True)
class DeviceState:
    """What the queue knows of one device vtm may hand out: the run holding it (None: no vtm run)
    and the memory other processes use on it (MB) with who they are ("pid 4242 python")."""
    index: int
    held_by: int | None = None
    foreign_mb: float = 0.0
    foreign: tuple[str, ...] = ()

    def busy(self, busy_mb: float) -> bool:
        """Held by a vtm run, or others use more than busy_mb MB of its memory."""
        return self.held_by is not None or self.foreign_mb > busy_mb

    def why_busy(self, who: bool = True) -> str:
        """'held by run 12' or '3.2 GB used by other processes (pid 4242 python)' (who=False:
        without the list of processes)."""
        if self.held_by is not None:
            return f"held by run {self.held_by}"
        names = f" ({', '.join(self.foreign)})" if self.foreign and who else ""
        return f"{format_size(self.foreign_mb * MB)} used by other processes{names}"


@dataclass(frozen=True)
class Placement:
    """A waiting run's answer: place (1: next in line), devices (assigned now: it may start; None:
    it waits) and waits_for (one short sentence per reason, empty once it may start)."""
    run_id: int
    place: int
    devices: tuple[int, ...] | None
    waits_for: tuple[str, ...] = ()


def queue_order(waiters: Iterable[Waiter]) -> list[Waiter]:
    """Higher priority first, then earlier queued, then lower run id."""
    return sorted(waiters, key=lambda waiter: (-waiter.priority, waiter.queued_at, waiter.run_id))


def plan(waiters: Iterable[Waiter], devices: Sequence[DeviceState], busy_mb: float) -> list[Placement]:
    """Apply the rule (module docstring) to the waiting runs and the devices vtm may hand out
    (in the order to hand them out: VTM_GPUS's); the placements come in queue order."""
    state = {device.index: device for device in devices}
    free = [device.index for device in devices if not device.busy(busy_mb)]
    claimed: dict[int, int] = {}  # device -> the run ahead that takes or keeps it
    placements = []
    for place, waiter in enumerate(queue_order(waiters), 1):
        request = waiter.request
        if request.devices is not None:
            usable = [index for index in request.devices if index in free]
            enough = len(usable) == len(request.devices)
            taken = tuple(request.devices) if enough else ()
        else:
            usable = free[:request.count]
            enough = len(usable) == request.count
            taken = tuple(usable) if enough else ()
        if enough:
            placements.append(Placement(waiter.run_id, place, taken))
        else:
            placements.append(Placement(waiter.run_id, place, None, _reasons(request, state, free, claimed)))
        for index in taken or usable:  # a run that waits keeps what it could use: none behind it takes that
            free.remove(index)
            claimed[index] = waiter.run_id
    return placements


def _reasons(request: GpuRequest, state: dict[int, DeviceState], free: list[int],
             claimed: dict[int, int]) -> tuple[str, ...]:
    def why(index: int) -> str:
        if index not in state:
            return f"GPU {index}: not one vtm may hand out (VTM_GPUS)"
        if index in claimed:
            return f"GPU {index}: for run {claimed[index]}, ahead in the queue"
        return f"GPU {index}: {state[index].why_busy()}"

    if request.devices is not None:
        return tuple(why(index) for index in request.devices if index not in free)
    if request.size > len(state):
        return (f"{request.describe()}: vtm may hand out {len(state)}",)
    head = f"{request.describe()}: {len(free)} free of {len(state)}"
    return (head, *(why(index) for index in state if index not in free))
