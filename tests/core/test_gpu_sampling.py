"""A run's system metrics (core/gpus/sampling.py): real process trees measured with psutil, and
the names MLflow's own system-metrics monitor uses, read from the installed mlflow."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vtm_tui.core.gpus import sampling
from vtm_tui.core.gpus.inventory import GpuDevice, NvmlReader
from vtm_tui.core.gpus.sampling import SystemSample, SystemSampler, TreeSampler, TreeUsage, process_tree

BUSY_TRAIN = Path(__file__).resolve().parents[1] / "data" / "busy_train.py"


def _wait_for_tree(root: int, size: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = process_tree(root)
        if len(tree) >= size:
            return tree
        time.sleep(0.05)
    raise AssertionError(f"the tree of {root} never reached {size} processes: {process_tree(root)}")


@pytest.fixture
def busy_run(tmp_path):
    """busy_train.py holding 300 MB and a busy core in a child: a two-process tree."""
    stop = tmp_path / "stop"
    proc = subprocess.Popen([sys.executable, str(BUSY_TRAIN), "--hold_mb", "300", "--busy", "--until_file", str(stop),
                             "--epoch_seconds", "0.2"], stdout=subprocess.DEVNULL,
                            start_new_session=True)  # as a supervisor starts a training script
    yield proc
    stop.touch()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_the_tree_of_a_run_holding_300_mb_and_a_busy_core_shows_both(busy_run):
    tree = _wait_for_tree(busy_run.pid, 2)
    assert tree[0] == busy_run.pid
    sampler = TreeSampler(lambda: process_tree(busy_run.pid))
    deadline = time.monotonic() + 30
    usage = TreeUsage(0, 0, 0)
    while time.monotonic() < deadline:  # the child touches its 300 MB first
        time.sleep(1.0)
        usage = sampler.sample()
        if usage.rss_mb >= 300 and usage.cpu_percent > 50:
            break
    assert usage.processes == 2 and usage.rss_mb >= 300 and usage.cpu_percent > 50, usage


def test_psutil_finds_the_same_tree_where_the_kernel_lists_no_children(busy_run, monkeypatch):
    from_proc = sorted(_wait_for_tree(busy_run.pid, 2))
    monkeypatch.setattr(sampling, "_CHILDREN_FILES", False)  # a kernel without CONFIG_PROC_CHILDREN
    assert sorted(process_tree(busy_run.pid)) == from_proc
    assert sorted(process_tree(busy_run.pid, include_root=False)) == [pid for pid in from_proc if pid != busy_run.pid]


def test_a_gone_process_has_no_tree_and_a_sampler_of_it_reports_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert process_tree(proc.pid) == []
    sampler = TreeSampler(lambda: process_tree(proc.pid))
    assert sampler.sample() == TreeUsage(0.0, 0.0, 0)


def test_cpu_is_counted_from_the_samplers_start_not_from_the_process_start():
    # This process has used CPU time before; an idle interval after the baseline reads near zero.
    sum(range(2_000_000))
    sampler = TreeSampler(lambda: [os.getpid()])
    time.sleep(0.5)
    assert sampler.sample().cpu_percent < 20


def test_system_metrics_carry_mlflows_own_names():
    import mlflow.system_metrics.metrics.cpu_monitor as cpu_monitor
    import mlflow.system_metrics.metrics.gpu_monitor as gpu_monitor
    import mlflow.system_metrics.system_metrics_monitor as monitor

    gpu = GpuDevice(0, "H100", memory_used_mb=3200.0, memory_total_mb=80000.0, utilization_percent=87.0,
                    power_w=250.5, power_limit_w=700.0)
    no_power = GpuDevice(3, "L4", memory_used_mb=0.0, memory_total_mb=24000.0, utilization_percent=0.0)
    sample = SystemSample(time.time(), TreeUsage(101.26, 312.04, 2), 55.5, 6000.0, 40.0, (gpu, no_power))
    metrics = sample.metrics()
    assert metrics == {
        "system/process_cpu_utilization_percentage": 101.3, "system/process_memory_rss_megabytes": 312.0,
        "system/cpu_utilization_percentage": 55.5, "system/system_memory_usage_megabytes": 6000.0,
        "system/system_memory_usage_percentage": 40.0,
        "system/gpu_0_utilization_percentage": 87.0, "system/gpu_0_memory_usage_megabytes": 3200.0,
        "system/gpu_0_memory_usage_percentage": 4.0, "system/gpu_0_power_usage_watts": 250.5,
        "system/gpu_0_power_usage_percentage": 35.8,
        "system/gpu_3_utilization_percentage": 0.0, "system/gpu_3_memory_usage_megabytes": 0.0,
        "system/gpu_3_memory_usage_percentage": 0.0,
    }
    # The same names as MLflow's monitor (its prefix, its keys), read from its source.
    assert 'self._metrics_prefix = "system/"' in inspect.getsource(monitor)
    mlflow_keys = inspect.getsource(cpu_monitor) + inspect.getsource(gpu_monitor)
    for name in metrics:
        key = name.removeprefix("system/")
        if not key.startswith("process_"):  # the run's own share: MLflow has no name for it
            assert ('"' + key + '"') in mlflow_keys or ('f"' + key.replace("_0_", "_{i}_").replace("_3_", "_{i}_")
                                                       + '"') in mlflow_keys, key


def test_a_system_sampler_without_nvml_samples_the_tree_and_the_host(busy_run):
    _wait_for_tree(busy_run.pid, 2)
    sampler = SystemSampler(lambda: process_tree(busy_run.pid), gpus=(0,), reader=NvmlReader())
    time.sleep(0.5)
    sample = sampler.sample()
    assert sample.gpus == () and sample.tree.processes == 2
    assert 0 <= sample.host_cpu_percent <= 100 and sample.host_memory_mb > 0
    assert "system/gpu_0_utilization_percentage" not in sample.metrics()
