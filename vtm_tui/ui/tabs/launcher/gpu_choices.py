"""The Launcher's GPU picker: the devices vtm may hand out, each shown free or busy (and why),
from the host state core reads (NVML, VTM_GPUS, the run store)."""
from __future__ import annotations

from vtm_tui.core.gpus.host import HostState


def gpu_options(state: HostState | None) -> list[tuple[str, str]]:
    """(label, the `gpus` value launch() takes) for each choice: every device vtm may hand out
    ('GPU 0: NVIDIA L4 (free)', '0'), all of them together when there are several, and CPU,
    which is always there (with no GPU, the only choice)."""
    views = [view for view in state.gpus if view.allocatable] if state is not None else []
    options = []
    for view in views:
        holder = state.run(view.holder) if state is not None else None
        why = f"held by run {holder.run_id} ({holder.task})" if holder is not None else view.state
        options.append((f"GPU {view.device.index}: {view.device.name} ({'busy: ' if view.busy else ''}{why})",
                        str(view.device.index)))
    if len(views) > 1:
        every = ",".join(str(view.device.index) for view in views)
        options.append((f"All GPUs ({every})", every))
    return options + [("CPU", "cpu")]
