"""The host view's part of the pinned demo world (see `world.py`): a two-GPU box where the demo's
running classification run (run 4) holds GPU 0, somebody's notebook uses 12 GB of GPU 1, and two
runs wait in the queue. Each read returns the next of a fixed series of utilization and memory
figures, so the sparklines fill the same way every time. Nothing is read from this machine."""
from __future__ import annotations

import math
from dataclasses import replace

from vtm_tui.core.gpus.allocation import GpuRequest
from vtm_tui.core.gpus.host import ActiveRun, HostState, host_state
from vtm_tui.core.gpus.inventory import GpuDevice, GpuProcess, Inventory
from vtm_tui.settings import Settings
from vtm_tui.ui.sources import Sources

TRAINER_PID, NOTEBOOK_PID = 48890, 31337


def demo_runs(now: float) -> tuple[ActiveRun, ...]:
    """The demo's active runs: run 4 (the demo world's running run) on GPU 0, runs 5 and 6 queued."""
    return (ActiveRun(4, "classification", "running", (0,), GpuRequest(count=1), 0, now - 109, 48871),
            ActiveRun(5, "segmentation", "queued", (), GpuRequest(count=1), 0, now - 60, 49002),
            ActiveRun(6, "classification", "queued", (), GpuRequest(devices=(1,)), 0, now - 20, 49100))


def demo_host_state(tick: int, now: float) -> HostState:
    """The box at the tick-th read (0, 1, ...) at `now`: the same figures for the same tick."""
    wave = math.sin(tick / 3.0)
    trainer_mb = 18_400 + 1_200 * (tick % 6)
    gpu0 = GpuDevice(0, "NVIDIA H100 80GB HBM3", "GPU-demo-0", trainer_mb + 600, 81_559, round(84 + 12 * wave),
                     63, 512.0, 700.0, (GpuProcess(TRAINER_PID, trainer_mb, "python"),))
    gpu1 = GpuDevice(1, "NVIDIA H100 80GB HBM3", "GPU-demo-1", 12_950, 81_559, (7 * tick) % 23, 41, 96.0, 700.0,
                     (GpuProcess(NOTEBOOK_PID, 12_350, "jupyter-lab"),))
    inventory = Inventory((gpu0, gpu1), "nvml")
    return host_state(inventory, demo_runs(now), 1024, {TRAINER_PID: 4}, now=now, cpu_percent=37.0,
                      memory_used_mb=41_200, memory_total_mb=134_700)


def with_demo_host(sources: Sources) -> Sources:
    """`sources` with the pinned host at the sources' clock: each read is the next tick (the demo
    world's own sources read tick 0 only, so that what the Launcher reads first changes nothing)."""
    ticks = iter(range(1 << 30))

    def host(_settings: Settings) -> HostState:
        return demo_host_state(next(ticks), sources.clock())

    return replace(sources, host=host)


async def show_host(pilot, reads: int = 30) -> None:
    """Open the host view on the ticking pinned box and let it read it exactly `reads` times."""
    import time

    from vtm_tui.ui.screens.host_view import HostScreen

    app = pilot.app
    screen = HostScreen(app.settings, with_demo_host(app.sources), interval=0.02, max_reads=reads)
    await app.push_screen(screen)
    deadline = time.monotonic() + 20
    while screen.polls < reads:
        if time.monotonic() > deadline:
            raise AssertionError(f"the host view read the box {screen.polls} times, not {reads}")
        await pilot.pause(0.05)
    await pilot.pause(0.1)
