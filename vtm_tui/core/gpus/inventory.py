"""This machine's GPUs, from NVML (nvidia-ml-py, module `pynvml`: the library nvidia-smi is built
on), filtered by VTM_GPUS; while that is unset, by the CUDA_VISIBLE_DEVICES vtm was started with
(a shell already given some GPUs hands out no others), its UUIDs mapped to indices through NVML.

NVML numbers devices in PCI bus order, as nvidia-smi does; vtm uses those indices everywhere
(VTM_GPUS, `--gpus`, the host view) and starts runs with CUDA_DEVICE_ORDER=PCI_BUS_ID so that
CUDA numbers them the same way. Where NVML cannot be loaded (no library: a CPU box; no driver)
there are no GPUs to see, which is not an error: VTM_GPUS (else CUDA_VISIBLE_DEVICES's indices),
when set, is then the inventory (devices vtm may hand out, with nothing known about them).

NVML calls used (NVML API reference, "Device Queries"): nvmlInit, nvmlDeviceGetCount,
nvmlDeviceGetHandleByIndex, nvmlDeviceGetName, nvmlDeviceGetUUID, nvmlDeviceGetMemoryInfo (bytes),
nvmlDeviceGetUtilizationRates (percent over the driver's last sample period),
nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU) (degrees C), nvmlDeviceGetPowerUsage and
nvmlDeviceGetEnforcedPowerLimit (milliwatts), nvmlDeviceGetComputeRunningProcesses and
nvmlDeviceGetGraphicsRunningProcesses (pid, usedGpuMemory in bytes or None). A reading a device
does not support (NVMLError_NotSupported, e.g. power on some boards) is None, not a failure.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Iterable, Sequence

from vtm_tui.core.formatting import MB
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings

# NVML return codes that mean "there is no NVML here": the library or the driver is missing.
# Values from nvml.h (NVML_ERROR_DRIVER_NOT_LOADED = 9, NVML_ERROR_LIBRARY_NOT_FOUND = 12), the
# same in every pynvml; named here so that telling them apart needs no pynvml import.
NO_NVML_CODES = (9, 12)
DECLARED = "unknown model (no NVML)"  # the name of a GPU that only VTM_GPUS tells of


@dataclass(frozen=True)
class GpuProcess:
    """A process NVML lists on a device: its PID (the host's PID namespace), the device memory it
    uses in MB (10^6 bytes; None when NVML cannot tell, e.g. without permission) and its name
    (psutil; '' when the process is gone or not ours to see)."""
    pid: int
    used_mb: float | None
    name: str = ""


@dataclass(frozen=True)
class GpuDevice:
    """One GPU. index: NVML's (nvidia-smi's) index; memory in MB (10^6 bytes); utilization in
    percent of the last sample period; temperature in degrees C; power and its enforced limit in
    watts; processes: what NVML lists on it (None: not known, e.g. without NVML). Any reading is
    None when NVML does not have it. allocatable: vtm may hand it out (VTM_GPUS, else
    CUDA_VISIBLE_DEVICES, else every device)."""
    index: int
    name: str
    uuid: str | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    utilization_percent: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    processes: tuple[GpuProcess, ...] | None = None
    allocatable: bool = True

    @property
    def memory_percent(self) -> float | None:
        """Used memory in percent of the total; None when either is unknown."""
        if self.memory_used_mb is None or not self.memory_total_mb:
            return None
        return 100.0 * self.memory_used_mb / self.memory_total_mb


@dataclass(frozen=True)
class Inventory:
    """The GPUs of this machine. devices: every device NVML sees (or, without NVML, the ones
    VTM_GPUS or CUDA_VISIBLE_DEVICES declares), by index; source: "nvml", "VTM_GPUS" or
    "CUDA_VISIBLE_DEVICES" (no NVML: the declared list) or "none"; note: why NVML is not there
    (its error text), else None; problems: VTM_GPUS (CUDA_VISIBLE_DEVICES) entries that NVML does
    not see, as sentences."""
    devices: tuple[GpuDevice, ...] = ()
    source: str = "none"
    note: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allocatable(self) -> tuple[GpuDevice, ...]:
        """The devices vtm may hand out to runs (VTM_GPUS, else CUDA_VISIBLE_DEVICES, in NVML's index
        order)."""
        return tuple(device for device in self.devices if device.allocatable)

    def device(self, index: int) -> GpuDevice | None:
        """The device with this NVML index, or None."""
        return next((device for device in self.devices if device.index == index), None)


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlReader:
    """Reads NVML, initialized once per process (nvmlInit costs tens of milliseconds, more with
    the driver's persistence mode off) and kept open: a supervisor samples every few seconds.
    Thread-safe. `nvml` is the pynvml module (tests hand in a stand-in where a fault cannot be
    produced for real); by default it is imported on first use."""

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()
        self._handles: list | None = None
        self._static: dict[int, tuple[str, str | None]] = {}  # index -> (name, uuid): they never change
        self.note: str | None = None  # why NVML is unavailable, once known
        self._gone = False  # no library or no driver: final for this process

    def _open(self) -> list | None:
        if self._handles is not None or self._gone:
            return self._handles
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.note = None
        except ImportError as exc:
            self.note, self._gone = f"nvidia-ml-py is not installed ({exc})", True
        except Exception as exc:
            if self._nvml is None or not isinstance(exc, self._nvml.NVMLError):
                raise
            # Other NVML errors (a driver/library version mismatch after an upgrade, no
            # permission) may pass: try again on the next read.
            self.note, self._gone = f"NVML: {exc}", getattr(exc, "value", None) in NO_NVML_CODES
        return self._handles

    def _reading(self, call, *args, scale: float = 1.0):
        """One NVML query; None for an NVML error (not supported, GPU lost, no permission)."""
        try:
            value = call(*args)
        except self._nvml.NVMLError:
            return None
        return value * scale if scale != 1.0 else value

    def _processes(self, handle) -> tuple[GpuProcess, ...] | None:
        nvml, seen, found = self._nvml, {}, False
        for call in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            listed = self._reading(call, handle)
            if listed is None:
                continue
            found = True
            for proc in listed:
                used = getattr(proc, "usedGpuMemory", None)
                mb = None if used is None else used / MB
                old = seen.get(proc.pid)  # a process can be both a compute and a graphics client
                seen[proc.pid] = mb if old is None else old + (mb or 0.0)
        if not found:
            return None
        return tuple(GpuProcess(pid, mb, _process_name(pid)) for pid, mb in sorted(seen.items()))

    def _device(self, index: int, handle, processes: bool) -> GpuDevice:
        nvml = self._nvml
        if index not in self._static:
            name, uuid = self._reading(nvml.nvmlDeviceGetName, handle), self._reading(nvml.nvmlDeviceGetUUID, handle)
            self._static[index] = (_text(name) if name else f"GPU {index}", None if uuid is None else _text(uuid))
        name, uuid = self._static[index]
        memory = self._reading(nvml.nvmlDeviceGetMemoryInfo, handle)
        rates = self._reading(nvml.nvmlDeviceGetUtilizationRates, handle)
        return GpuDevice(
            index=index, name=name, uuid=uuid,
            memory_used_mb=None if memory is None else memory.used / MB,
            memory_total_mb=None if memory is None else memory.total / MB,
            utilization_percent=None if rates is None else float(rates.gpu),
            temperature_c=self._reading(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
            power_w=self._reading(nvml.nvmlDeviceGetPowerUsage, handle, scale=1e-3),
            power_limit_w=self._reading(nvml.nvmlDeviceGetEnforcedPowerLimit, handle, scale=1e-3),
            processes=self._processes(handle) if processes else None,
        )

    def read(self, indices: Iterable[int] | None = None, *, processes: bool = True) -> list[GpuDevice] | None:
        """The devices NVML sees (only `indices`, when given), read now, in index order; None
        when NVML is unavailable (see `note`). processes=False skips listing their processes (a
        supervisor's samples need none). A device that stops answering keeps its index with
        every reading None."""
        with self._lock:
            handles = self._open()
            if handles is None:
                return None
            wanted = range(len(handles)) if indices is None else sorted(set(indices) & set(range(len(handles))))
            return [self._device(index, handles[index], processes) for index in wanted]


def _process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return ""


_READER = NvmlReader()


def shared_reader() -> NvmlReader:
    """The process's one NvmlReader (NVML is initialized once per process)."""
    return _READER


def read_inventory(settings: Settings, reader: NvmlReader | None = None) -> Inventory:
    """This machine's GPUs now, with VTM_GPUS applied, else CUDA_VISIBLE_DEVICES (see the module
    docstring). Never raises for a missing NVML; UserError for a malformed VTM_GPUS, or GPU UUIDs
    in CUDA_VISIBLE_DEVICES with no NVML to map them to indices. Blocking (NVML, /proc): call it
    from a worker thread in the UI."""
    reader = reader or _READER
    wanted, named_by = settings.gpus, "VTM_GPUS"
    seen = reader.read()
    if wanted is None and settings.cuda_visible_devices is not None:
        wanted, named_by = visible_indices(settings.cuda_visible_devices, seen), "CUDA_VISIBLE_DEVICES"
    if seen is None:
        declared = tuple(GpuDevice(index, DECLARED) for index in sorted(set(wanted or ())))
        return Inventory(declared, named_by if declared else "none", reader.note)
    if wanted is None:
        return Inventory(tuple(seen), "nvml")
    indices = {device.index for device in seen}
    problems = tuple(f"{named_by} names GPU {index}, which NVML does not see (it sees {len(seen)})"
                     for index in wanted if index not in indices)
    devices = tuple(replace(device, allocatable=device.index in wanted) for device in seen)
    return Inventory(devices, "nvml", None, problems)


def visible_indices(entries: Sequence[str], seen: Sequence[GpuDevice] | None) -> tuple[int | str, ...]:
    """CUDA_VISIBLE_DEVICES entries (Settings.cuda_visible_devices) -> NVML indices. A UUID (or a
    unique prefix of one, as CUDA takes it) is looked up among the devices NVML sees (`seen`);
    one NVML does not see stays as it was written, for the caller's problems. UserError when
    there is a UUID and no NVML to look it up (set VTM_GPUS instead)."""
    found: list[int | str] = []
    for entry in entries:
        if entry.isdigit():
            found.append(int(entry))
            continue
        if seen is None:
            raise UserError(f"CUDA_VISIBLE_DEVICES names GPUs by UUID ({entry}) and there is no NVML here to "
                            "tell their indices: set VTM_GPUS to the GPU indices vtm may hand out")
        matches = [device.index for device in seen if device.uuid and device.uuid.lower().startswith(entry.lower())]
        found.append(matches[0] if len(matches) == 1 else entry)
    return tuple(dict.fromkeys(found))
