"""The Launcher's GPU picker: the devices vtm may hand out, each shown free or busy (and why),
from the host state core reads (NVML, VTM_GPUS, the run store)."""
from __future__ import annotations

from vtm_tui.core.gpus.host import HostState


def gpu_options(state: HostState | None) -> list[tuple[str, str]]:
    """(label, value) for each choice: any N of the devices vtm may hand out ('Any 1 GPU (1 of 2
    free; vtm picks, queued until free)', 'any:1', i.e. --num-gpus 1), every device ('GPU 0:
    NVIDIA L4 (free)', '0', i.e. --gpus 0), all of them together when there are several, and CPU,
    which is always there (with no GPU, the only choice). launch_gpus() turns a value into
    launch()'s arguments."""
    views = [view for view in state.gpus if view.allocatable] if state is not None else []
    free = sum(not view.busy for view in views)
    options = [(f"Any {count} GPU{'s' if count > 1 else ''} ({free} of {len(views)} free; vtm picks, "
                 "queued until free)", f"any:{count}") for count in range(1, len(views) + 1)]
    for view in views:
        holder = state.run(view.holder) if state is not None else None
        why = f"held by run {holder.run_id} ({holder.task})" if holder is not None else view.state
        options.append((f"GPU {view.device.index}: {view.device.name} ({'busy: ' if view.busy else ''}{why})",
                        str(view.device.index)))
    if len(views) > 1:
        every = ",".join(str(view.device.index) for view in views)
        options.append((f"All GPUs ({every})", every))
    return options + [("CPU", "cpu")]


def launch_gpus(value: str | None) -> tuple[str | None, int | None]:
    """A picker value -> launch()'s (gpus, num_gpus): 'any:2' -> (None, 2), '0,1' -> ('0,1', None),
    'cpu' -> ('cpu', None), None (another engine places the run) -> (None, None)."""
    if value is not None and value.startswith("any:"):
        return None, int(value.removeprefix("any:"))
    return value, None
