"""System metrics of one run: its process tree's CPU and memory (psutil), the host's CPU and
memory, and its GPUs (NVML), sampled by the run's supervisor every VTM_SYSTEM_METRICS_INTERVAL
seconds and named as MLflow names its own system metrics.

Names (MLflow's system-metrics monitor, mlflow/system_metrics/metrics/{cpu,gpu}_monitor.py; the
"system/" prefix puts them in the MLflow UI's system metrics view):

    system/cpu_utilization_percentage         the host's CPU, 0-100 (psutil.cpu_percent)
    system/system_memory_usage_megabytes      the host's used memory, MB (10^6 bytes)
    system/system_memory_usage_percentage     the same in percent of the total
    system/gpu_<i>_utilization_percentage     NVML utilization of GPU i (NVML index)
    system/gpu_<i>_memory_usage_megabytes     its used memory, MB (10^6 bytes)
    system/gpu_<i>_memory_usage_percentage
    system/gpu_<i>_power_usage_watts, system/gpu_<i>_power_usage_percentage (of the enforced limit)

and two that MLflow has no name for, the run's own share, named in the same pattern:

    system/process_cpu_utilization_percentage the run's process tree, 100 = one core busy (as top)
    system/process_memory_rss_megabytes       the sum of its processes' resident set sizes, MB

Finding the tree: Linux lists each thread's children in /proc/<pid>/task/<tid>/children (proc(5));
following those from the root costs ~0.1 ms for a small tree, while psutil's
`children(recursive=True)` reads the stat file of every process on the machine (2 ms with 120
processes here, growing with the process count: a busy GPU box would spend most of the 1%-of-a-core
budget on it). psutil is the fallback where that file is missing. proc(5) warns the file can miss a
child created or reaped at that instant; a sample then misses that process, the next one sees it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vtm_tui.core.formatting import MB
from vtm_tui.core.gpus.inventory import GpuDevice, NvmlReader

PREFIX = "system/"
PROCESS_CPU = PREFIX + "process_cpu_utilization_percentage"
PROCESS_RSS = PREFIX + "process_memory_rss_megabytes"
HOST_CPU = PREFIX + "cpu_utilization_percentage"
HOST_MEMORY = PREFIX + "system_memory_usage_megabytes"
HOST_MEMORY_PERCENT = PREFIX + "system_memory_usage_percentage"


def gpu_metric(index: int, what: str) -> str:
    """MLflow's name of a GPU metric: gpu_metric(1, "utilization_percentage") ->
    "system/gpu_1_utilization_percentage" (what: utilization_percentage, memory_usage_megabytes,
    memory_usage_percentage, power_usage_watts, power_usage_percentage)."""
    return f"{PREFIX}gpu_{index}_{what}"


_CHILDREN_FILES: bool | None = None


def _children_files() -> bool:
    """True where the kernel lists children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)."""
    global _CHILDREN_FILES
    if _CHILDREN_FILES is None:
        _CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
    return _CHILDREN_FILES


def _children(pid: int) -> list[int]:
    """Direct children of pid, from its threads' children files; [] once it is gone."""
    children: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                children.extend(int(part) for part in handle.read().split())
        except OSError:
            continue  # that thread (or the whole process) ended meanwhile
    return children


def process_tree(root: int, include_root: bool = True) -> list[int]:
    """PIDs of root's descendants (and root itself with include_root), root first; [] when root
    is gone. See the module docstring for how they are found."""
    if not _children_files():
        import psutil

        try:
            rest = [child.pid for child in psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            return []
        return ([root] if include_root else []) + rest
    if not os.path.isdir(f"/proc/{root}/task"):
        return []
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(_children(pid))
    return found if include_root else found[1:]


@dataclass(frozen=True)
class TreeUsage:
    """A process tree's share of this machine over the last interval: cpu_percent (100 = one
    core busy the whole interval; more with several), rss_mb (sum of the processes' resident set
    sizes, MB = 10^6 bytes; pages shared between them count once per process) and processes (how
    many were found)."""
    cpu_percent: float
    rss_mb: float
    processes: int


class TreeSampler:
    """CPU and memory of a process tree, from the CPU time each process used since the previous
    sample (a process born since then counts all its CPU time). The first sample measures from
    the sampler's creation. roots: callable giving the PIDs to sample now (e.g. a run's tree)."""

    def __init__(self, pids: Callable[[], Iterable[int]], clock: Callable[[], float] = time.monotonic) -> None:
        self._pids, self._clock = pids, clock
        self._last: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds seen
        self._processes: dict[int, object] = {}
        self._then = clock()
        self.sample()  # the baseline: CPU time used before the sampler started does not count

    def sample(self) -> TreeUsage:
        """The tree's CPU use since the previous call and its memory now."""
        import psutil

        now = self._clock()
        elapsed, self._then = max(now - self._then, 1e-6), now
        cpu = rss = 0.0
        count = 0
        seen: dict[tuple[int, float], float] = {}
        processes = {}
        for pid in self._pids():
            proc = self._processes.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    times, memory = proc.cpu_times(), proc.memory_info()
                key = (pid, proc.create_time())
            except psutil.Error:
                continue
            used = times.user + times.system
            cpu += used - self._last.get(key, 0.0)
            rss += memory.rss
            seen[key], processes[pid] = used, proc
            count += 1
        self._last, self._processes = seen, processes
        return TreeUsage(max(cpu, 0.0) / elapsed * 100.0, rss / MB, count)


@dataclass(frozen=True)
class SystemSample:
    """One sample of a run: time (seconds since the epoch), its tree's usage, the host's CPU
    (0-100 of all cores) and used memory (MB and percent), and its GPUs as NVML read them."""
    time: float
    tree: TreeUsage
    host_cpu_percent: float
    host_memory_mb: float
    host_memory_percent: float
    gpus: tuple[GpuDevice, ...] = ()

    def metrics(self) -> dict[str, float]:
        """{MLflow system-metric name: value} (names in the module docstring); readings NVML
        does not have are left out, values rounded to 0.1 like MLflow's monitor."""
        values: dict[str, float | None] = {
            PROCESS_CPU: self.tree.cpu_percent, PROCESS_RSS: self.tree.rss_mb,
            HOST_CPU: self.host_cpu_percent, HOST_MEMORY: self.host_memory_mb,
            HOST_MEMORY_PERCENT: self.host_memory_percent,
        }
        for gpu in self.gpus:
            power_percent = None
            if gpu.power_w is not None and gpu.power_limit_w:
                power_percent = 100.0 * gpu.power_w / gpu.power_limit_w
            values.update({
                gpu_metric(gpu.index, "utilization_percentage"): gpu.utilization_percent,
                gpu_metric(gpu.index, "memory_usage_megabytes"): gpu.memory_used_mb,
                gpu_metric(gpu.index, "memory_usage_percentage"): gpu.memory_percent,
                gpu_metric(gpu.index, "power_usage_watts"): gpu.power_w,
                gpu_metric(gpu.index, "power_usage_percentage"): power_percent,
            })
        return {name: round(float(value), 1) for name, value in values.items() if value is not None}


class SystemSampler:
    """Samples one run: its process tree (`pids`, called at each sample) and its GPUs (NVML
    indices; none without NVML). Cheap enough to call every second from a supervisor; see
    benchmarks/system_sampling.py."""

    def __init__(self, pids: Callable[[], Iterable[int]], gpus: Sequence[int] = (),
                 reader: NvmlReader | None = None, clock: Callable[[], float] = time.time) -> None:
        import psutil

        from vtm_tui.core.gpus.inventory import shared_reader

        self.gpus = tuple(gpus)
        self._reader = reader or shared_reader()
        self._clock = clock
        self._tree = TreeSampler(pids)
        psutil.cpu_percent(None)  # the baseline of the host's CPU figure

    def sample(self) -> SystemSample:
        """Read everything now (a few milliseconds; NVML only for this run's GPUs)."""
        import psutil

        memory = psutil.virtual_memory()
        gpus = self._reader.read(self.gpus, processes=False) if self.gpus else None
        return SystemSample(
            time=self._clock(), tree=self._tree.sample(), host_cpu_percent=psutil.cpu_percent(None),
            host_memory_mb=memory.used / MB, host_memory_percent=100.0 * memory.used / memory.total,
            gpus=tuple(gpus or ()))
