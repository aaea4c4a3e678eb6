"""The host view (key h from any tab) at 80x24: every GPU's utilization and memory, who holds it,
the queue; on the pinned demo box, and on this machine (no NVML, VTM_GPUS=0,1)."""
from __future__ import annotations

from fixtures.tui import screen_text, wait_for, wait_for_text
from fixtures.vtm import make_vtm_env

from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_host import show_host
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.screens.host_view import GpuCard, HostScreen
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.widgets.level_spark import LevelSpark, level_bars
from vtm_tui.ui.widgets.live_table import LiveTable


def test_level_bars_draw_on_a_fixed_scale():
    assert level_bars([0, 50, 100, None, 250, -3], 8) == "  ▁▄█·█▁"
    assert level_bars([87.0] * 3, 3) == "▇▇▇"  # a steady 87% is high, not flat at the bottom
    assert level_bars(range(100), 4) == "████" and level_bars([], 3) == "   " and level_bars([5], 0) == ""


async def _open_host(app, pilot, polls: int = 1) -> HostScreen:
    await pilot.press("h")
    screen = await wait_for(pilot, lambda: isinstance(app.screen, HostScreen) and app.screen, what="the host view")
    await wait_for(pilot, lambda: screen.polls >= polls, what=f"{polls} reads of the box")
    return screen


async def test_host_view_and_queue_at_80x24_from_any_tab(tmp_path):
    settings, sources = make_demo(tmp_path)
    app = VtmApp(settings, sources)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.query_one(RunsPane).wait_ready(10)
        await pilot.press("2")
        screen = await _open_host(app, pilot, polls=1)
        screen.interval = 0.05  # the sparklines fill faster than once a second
        await wait_for(pilot, lambda: screen.polls >= 12, what="a dozen reads")
        text = screen_text(app)
        lines = text.splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        for shown in ("CPU 37%  RAM 41.2/134.7 GB  2 GPUs (NVML)",
                      "GPU 0  held by run 4 (classification)  ", "/81.6 GB  63°C  512 W  NVIDIA",
                      "run 4: pid 48890 python", "GPU 1  busy: 12.3 GB used by other processes  ",
                      "pid 31337 jupyter-lab 12.3 GB", "Queue: 2 runs waiting for GPUs",
                      "run 5 (segmentation) waits for 1 GPU: 0 free of 2; GPU 0: held by run 4;",
                      "used by other processes (pid 31337 jupyter-lab)"):
            assert shown in text, f"{shown!r} not on screen:\n{text}"
        # Every GPU's utilization and memory, as a history on a 0-100 scale.
        util = screen.query_one("#gpu-0 .gpu-util", LevelSpark)
        assert len(util.values) >= 12 and util.size.width >= 20
        assert screen.query_one("#gpu-1 .gpu-memory", LevelSpark).values[-1] == 100 * 12_950 / 81_559
        assert "▇" in text or "█" in text  # GPU 0 at 72-96%: tall bars on screen
        assert [card.index for card in screen.query(GpuCard)] == [0, 1]
        assert screen.query_one("#gpu-1", GpuCard).has_class("-busy")
        # The queue: place, run, what it waits for, on screen.
        queue = screen.query_one("#host-queue", LiveTable)
        assert queue.keys == ["5", "6"]
        assert [str(cell) for cell in queue.get_row("5")][:4] == ["1", "5", "segmentation", "1 GPU"]
        waits = str(queue.get_row("5")[5])
        assert waits == "1 GPU: 0 free of 2; GPU 0: held by run 4; GPU 1: 12.3 GB used by other processes " \
                        "(pid 31337 jupyter-lab)"
        assert str(queue.get_row("6")[5]) == "GPU 1: 12.3 GB used by other processes (pid 31337 jupyter-lab)"
        assert screen.query_one("#queue-detail").region.bottom <= 23  # above the footer
        # The whole reason of the highlighted run, wrapped under the table; the cursor picks the run.
        await pilot.press("down")
        detail = screen.query_one("#queue-detail")
        await wait_for(pilot, lambda: str(detail.content) == "run 6 (classification) waits for GPU 1: 12.3 GB used by "
                       "other processes (pid 31337 jupyter-lab)", what="run 6's reason")
        # escape closes it; from the Launcher tab the same key opens it again.
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostScreen), what="the view to close")
        await pilot.press("1")
        await app.query_one(LauncherPane).wait_ready(10)
        await _open_host(app, pilot)
        await pilot.press("h")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostScreen), what="h to close it")


async def test_host_view_on_this_machine_without_nvml_shows_the_declared_gpus(tmp_path):
    vtm = make_vtm_env(tmp_path, VTM_GPUS="0,1")
    app = VtmApp(vtm.settings)  # the real sources: NVML (absent here), /proc and the run store
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_host(app, pilot)
        text = await wait_for_text(pilot, "2 GPUs declared by VTM_GPUS, no NVML", "NVML: NVML Shared Library Not Found",
                                   "GPU 0  free  unknown model (no NVML)", "GPU 1  free  unknown model",
                                   "processes: unknown (no NVML)", "Queue: empty")
        assert "RAM " in text and "CPU " in text


async def test_host_view_without_any_gpu_says_so(tmp_path):
    vtm = make_vtm_env(tmp_path, VTM_GPUS="none")
    app = VtmApp(vtm.settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_host(app, pilot)
        await wait_for_text(pilot, "no GPUs", "NVML: NVML Shared Library Not Found", "No GPU here")


def test_host_view_snapshot_80x24(snap_compare, tmp_path):
    settings, sources = make_demo(tmp_path)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.query_one(LauncherPane).form.rows, what="the demo to load")
        await show_host(pilot)

    assert snap_compare(VtmApp(settings, sources), terminal_size=(80, 24), run_before=run_before)
