"""This machine's GPUs (nvidia-smi), and the Launcher's GPU choices made of them."""
from __future__ import annotations

import shutil
import subprocess
from typing import NamedTuple


class Gpu(NamedTuple):
    index: str
    name: str


def probe_gpus(timeout: float = 5.0) -> list[Gpu]:
    """GPUs from nvidia-smi; [] when there is none (or it does not answer). Blocking: call it
    from a worker thread."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return parse_gpu_csv(out.stdout)


def parse_gpu_csv(text: str) -> list[Gpu]:
    gpus = []
    for line in text.splitlines():
        index, sep, name = line.partition(",")
        if sep and index.strip().isdigit():
            gpus.append(Gpu(index.strip(), name.strip()))
    return gpus


def gpu_options(gpus: list[Gpu]) -> list[tuple[str, str]]:
    """The GPU picker's options: (label, the `gpus` value launch() takes, i.e. what becomes
    CUDA_VISIBLE_DEVICES). CPU is always there; with no GPU it is the only choice."""
    options = [(f"GPU {gpu.index}: {gpu.name}", gpu.index) for gpu in gpus]
    if len(gpus) > 1:
        every = ",".join(gpu.index for gpu in gpus)
        options.append((f"All GPUs ({every})", every))
    return options + [("CPU", "cpu")]
