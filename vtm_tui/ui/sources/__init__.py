"""Where the UI gets the time and outside state.

The app takes one `Sources`; production uses the defaults below. Snapshot tests and the
screenshot script pass pinned ones (see `demo.py`) so a picture never depends on the clock,
the machine's GPUs or whether an MLflow server happens to answer.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from vtm_tui.settings import Settings

if TYPE_CHECKING:
    from vtm_tui.core.runs.store import RunRecord
    from vtm_tui.core.tracking.server import ServerStatus

RUNS_LIMIT = 200  # the table shows the newest runs; older ones stay in `vtm runs`


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


def _server_status(settings: Settings) -> ServerStatus:
    from vtm_tui.core.tracking.server import status

    return status(settings)


def _list_runs(settings: Settings) -> list[RunRecord]:
    from vtm_tui.core.runs.lifecycle import list_runs

    return list_runs(settings, RUNS_LIMIT)  # also marks runs whose supervisor vanished as lost


@dataclass(frozen=True)
class Sources:
    clock: Callable[[], float] = time.time
    server_status: Callable[[Settings], ServerStatus] = _server_status
    gpus: Callable[[], list[Gpu]] = probe_gpus
    list_runs: Callable[[Settings], list[RunRecord]] = _list_runs
