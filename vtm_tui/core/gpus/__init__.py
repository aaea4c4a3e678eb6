"""The GPU box: this machine's GPUs (NVML), a run's system metrics (psutil, NVML) and the GPU
queue's rule.

    from vtm_tui.core.gpus import read_inventory, plan

    inventory = read_inventory(settings)          # Inventory: devices, source ("nvml", "VTM_GPUS", "none")
    placements = plan(waiters, devices, settings.gpu_busy_mb)   # who starts now, what the rest wait for

Modules: inventory (NVML devices, VTM_GPUS), sampling (a run's process tree, the host, its GPUs,
under MLflow's system-metric names), allocation (the queue's rule, pure functions). Importing this
package loads neither pynvml nor psutil: they load on first use.
"""
from __future__ import annotations

from vtm_tui.core.lazy import lazy_exports

_EXPORTS = {
    "inventory": ("GpuDevice", "GpuProcess", "Inventory", "NvmlReader", "read_inventory", "shared_reader"),
    "sampling": ("SystemSample", "SystemSampler", "TreeSampler", "TreeUsage", "gpu_metric", "process_tree"),
    "allocation": ("DeviceState", "GpuRequest", "Placement", "Waiter", "check_request", "parse_request", "plan",
                   "queue_order"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
