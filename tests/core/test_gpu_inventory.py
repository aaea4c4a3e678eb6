"""The GPU inventory (core/gpus/inventory.py) and the three GPU-box settings.

This machine has no NVIDIA driver: the real pynvml raises its real NVMLError_LibraryNotFound, and
the no-NVML path is tested against it. A GPU cannot be produced here, so the reading of devices is
tested against `FakeNvml`: the smallest stand-in for the NVML calls vtm makes, built from pynvml's
own error classes and result structures (labelled FAKE below).
"""
from __future__ import annotations

from types import SimpleNamespace

import pynvml
import pytest

from vtm_tui.core.gpus.inventory import NvmlReader, read_inventory
from vtm_tui.errors import UserError
from vtm_tui.settings import DEFAULT_GPU_BUSY_MB, Settings


def settings(**env: str) -> Settings:
    return Settings.from_environ(env)


# -- settings ---------------------------------------------------------------------------------

def test_gpu_settings_defaults_and_values():
    plain = settings()
    assert plain.gpus is None and plain.gpu_busy_mb == DEFAULT_GPU_BUSY_MB and plain.system_metrics_interval == 5.0
    assert settings(VTM_GPUS="0,1").gpus == (0, 1)
    assert settings(VTM_GPUS=" 2, 0 ").gpus == (2, 0)
    assert settings(VTM_GPUS="none").gpus == ()
    assert settings(VTM_GPU_BUSY_MB="0").gpu_busy_mb == 0
    assert settings(VTM_SYSTEM_METRICS_INTERVAL="0").system_metrics_interval == 0.0
    assert settings(VTM_SYSTEM_METRICS_INTERVAL="0.5").system_metrics_interval == 0.5


@pytest.mark.parametrize("name, value, expects", [
    ("VTM_GPUS", "0,x", "VTM_GPUS must be distinct GPU indices"),
    ("VTM_GPUS", "1,1", "VTM_GPUS must be distinct GPU indices"),
    ("VTM_GPUS", "-1", "VTM_GPUS must be distinct GPU indices"),
    ("VTM_GPU_BUSY_MB", "lots", "VTM_GPU_BUSY_MB must be a number of megabytes"),
    ("VTM_GPU_BUSY_MB", "-5", "VTM_GPU_BUSY_MB must be a number of megabytes"),
    ("VTM_SYSTEM_METRICS_INTERVAL", "-1", "VTM_SYSTEM_METRICS_INTERVAL must be a number of seconds"),
    ("VTM_SYSTEM_METRICS_INTERVAL", "often", "VTM_SYSTEM_METRICS_INTERVAL must be a number of seconds"),
])
def test_bad_gpu_settings_name_the_variable(name, value, expects):
    attribute = {"VTM_GPUS": "gpus", "VTM_GPU_BUSY_MB": "gpu_busy_mb",
                 "VTM_SYSTEM_METRICS_INTERVAL": "system_metrics_interval"}[name]
    with pytest.raises(UserError, match=expects):
        getattr(settings(**{name: value}), attribute)


# -- no NVML: the real pynvml on a machine without a driver -----------------------------------

def test_without_nvml_there_are_no_gpus_and_vtm_gpus_is_the_inventory():
    reader = NvmlReader()  # the real pynvml: libnvidia-ml.so.1 is not on this machine
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        pynvml.nvmlInit()  # the premise: a CPU box
    empty = read_inventory(settings(), reader)
    assert empty.devices == () and empty.source == "none"
    assert "NVML Shared Library Not Found" in empty.note
    declared = read_inventory(settings(VTM_GPUS="1,0"), reader)
    assert declared.source == "VTM_GPUS" and [d.index for d in declared.allocatable] == [0, 1]
    assert all(d.memory_used_mb is None and d.processes is None for d in declared.devices)
    assert read_inventory(settings(VTM_GPUS="none"), reader).devices == ()


# -- FAKE: a GPU machine, which cannot be produced here ----------------------------------------

class FakeNvml(SimpleNamespace):
    """FAKE NVML with two devices: only the calls vtm makes, answering with pynvml's own result
    structures and raising pynvml's own error classes. Device 1 does not report power (as some
    boards do not); PID 4242 is both a compute and a graphics client of device 0."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, init_error: int | None = None) -> None:
        super().__init__(init_error=init_error, inits=0)

    def nvmlInit(self):
        self.inits += 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)  # NVMLError(code) gives the code's subclass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return ["NVIDIA H100 80GB HBM3", b"NVIDIA L4"][handle]

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-0000000{handle}-fake"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return pynvml.c_nvmlMemory_t(total=80_000_000_000, free=0, used=[3_200_000_000, 0][handle])

    def nvmlDeviceGetUtilizationRates(self, handle):
        return pynvml.c_nvmlUtilization_t(gpu=[87, 0][handle], memory=10)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return [64, 31][handle]

    def nvmlDeviceGetPowerUsage(self, handle):
        if handle == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 250_500  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        if handle == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 700_000

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=4242, usedGpuMemory=3_000_000_000)] if handle == 0 else []

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        if handle == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
        return [SimpleNamespace(pid=4242, usedGpuMemory=100_000_000), SimpleNamespace(pid=77, usedGpuMemory=None)]


def test_devices_are_read_with_nvml_units_and_unsupported_readings_are_none():
    nvml = FakeNvml()
    inventory = read_inventory(settings(), NvmlReader(nvml))
    assert inventory.source == "nvml" and inventory.note is None and inventory.problems == ()
    h100, l4 = inventory.devices
    assert (h100.index, h100.name, h100.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-00000000-fake")
    assert l4.name == "NVIDIA L4"  # bytes from older pynvml versions become text
    assert h100.memory_used_mb == 3200 and h100.memory_total_mb == 80000 and h100.memory_percent == 4.0
    assert (h100.utilization_percent, h100.temperature_c, h100.power_w, h100.power_limit_w) == (87.0, 64, 250.5, 700)
    assert l4.power_w is None and l4.power_limit_w is None and l4.temperature_c == 31
    assert [(p.pid, p.used_mb) for p in h100.processes] == [(77, None), (4242, 3100.0)]
    assert l4.processes == ()  # compute answered (none), graphics refused: still a known empty list
    assert nvml.inits == 1


def test_vtm_gpus_limits_what_vtm_hands_out_and_names_devices_nvml_does_not_see():
    inventory = read_inventory(settings(VTM_GPUS="1,5"), NvmlReader(FakeNvml()))
    assert [d.index for d in inventory.devices] == [0, 1]  # every GPU is still seen
    assert [d.index for d in inventory.allocatable] == [1]
    assert inventory.problems == ("VTM_GPUS names GPU 5, which NVML does not see (it sees 2)",)


def test_nvml_is_initialized_once_and_a_sample_reads_only_the_runs_devices():
    nvml = FakeNvml()
    reader = NvmlReader(nvml)
    assert [d.index for d in reader.read([1], processes=False)] == [1]
    assert reader.read([1], processes=False)[0].processes is None
    assert len(reader.read()) == 2 and nvml.inits == 1


@pytest.mark.parametrize("code, retried", [
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, False),  # no driver: no GPUs for this process
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, True),  # a driver upgrade without reboot: try again later
])
def test_nvml_that_fails_to_start_means_no_gpus_not_an_error(code, retried):
    nvml = FakeNvml(init_error=code)
    reader = NvmlReader(nvml)
    inventory = read_inventory(settings(VTM_GPUS="0"), reader)
    assert inventory.source == "VTM_GPUS" and inventory.note.startswith("NVML: ")
    nvml.init_error = None
    again = read_inventory(settings(), reader)
    assert (again.source == "nvml") is retried and nvml.inits == 1 + retried


# -- CUDA_VISIBLE_DEVICES: a shell already given some GPUs ------------------------------------

@pytest.mark.parametrize("value, entries", [
    ("2,3", ("2", "3")), (" 1 , 0", ("1", "0")), ("", ()), ("-1", ()), ("0,-1,1", ("0",)),
    ("GPU-00000001-fake,0", ("GPU-00000001-fake", "0")), ("0,all,1", ("0",)),
])
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, entries):
    assert settings(CUDA_VISIBLE_DEVICES=value).cuda_visible_devices == entries
    assert settings().cuda_visible_devices is None


def test_an_inherited_cuda_visible_devices_limits_what_vtm_hands_out():
    reader = NvmlReader(FakeNvml())
    limited = read_inventory(settings(CUDA_VISIBLE_DEVICES="1"), reader)
    assert [d.index for d in limited.devices] == [0, 1]  # every GPU is still seen
    assert [d.index for d in limited.allocatable] == [1] and limited.problems == ()
    assert read_inventory(settings(CUDA_VISIBLE_DEVICES=""), reader).allocatable == ()  # hidden: none
    beyond = read_inventory(settings(CUDA_VISIBLE_DEVICES="1,5"), reader)
    assert beyond.problems == ("CUDA_VISIBLE_DEVICES names GPU 5, which NVML does not see (it sees 2)",)
    # VTM_GPUS, when set, is what vtm hands out, whatever the shell was given
    assert [d.index for d in read_inventory(settings(VTM_GPUS="0", CUDA_VISIBLE_DEVICES="1"),
                                            reader).allocatable] == [0]


def test_gpu_uuids_in_cuda_visible_devices_are_mapped_through_nvml():
    reader = NvmlReader(FakeNvml())
    by_uuid = read_inventory(settings(CUDA_VISIBLE_DEVICES="GPU-00000001-fake"), reader)
    assert [d.index for d in by_uuid.allocatable] == [1]
    by_prefix = read_inventory(settings(CUDA_VISIBLE_DEVICES="gpu-00000001,GPU-00000000"), reader)  # as CUDA takes it
    assert [d.index for d in by_prefix.allocatable] == [0, 1]
    unknown = read_inventory(settings(CUDA_VISIBLE_DEVICES="GPU-0000000"), reader)  # both start so: not unique
    assert unknown.allocatable == () and unknown.problems == (
        "CUDA_VISIBLE_DEVICES names GPU GPU-0000000, which NVML does not see (it sees 2)",)


def test_without_nvml_cuda_visible_devices_indices_are_the_inventory_and_uuids_are_refused():
    reader = NvmlReader()  # the real pynvml, no library on this machine
    declared = read_inventory(settings(CUDA_VISIBLE_DEVICES="3,1"), reader)
    assert declared.source == "CUDA_VISIBLE_DEVICES" and [d.index for d in declared.allocatable] == [1, 3]
    with pytest.raises(UserError) as refused:
        read_inventory(settings(CUDA_VISIBLE_DEVICES="GPU-8932f937-d72c"), reader)
    assert str(refused.value) == ("CUDA_VISIBLE_DEVICES names GPUs by UUID (GPU-8932f937-d72c) and there is no NVML "
                                  "here to tell their indices: set VTM_GPUS to the GPU indices vtm may hand out")
    assert read_inventory(settings(VTM_GPUS="0", CUDA_VISIBLE_DEVICES="GPU-8932f937-d72c"), reader).source == \
        "VTM_GPUS"
