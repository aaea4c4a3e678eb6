"""Every tab at 80x24 (tmux over SSH) and 100x30, on the pinned demo world: every key the tab
offers is in sight in the footer (not past the edge, not under the command palette's key), and
no table shows a cut value (a column cut at the table's edge: `0` for 0.9314 under `val_acc`)."""
from __future__ import annotations

import pytest
from fixtures.tui import screen_text, wait_for
from textual.widgets import DataTable

from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_mlflow import show_mlflow_ops, with_demo_mlflow
from vtm_tui.ui.demo.pinned_registry import fill_demo_registry
from vtm_tui.ui.demo.pinned_serving import show_serving, with_serving
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.registry.pane import RegistryPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.widgets.footer import VtmFooter


async def _press(key: str, pilot) -> None:
    await pilot.press(key)


async def _registry(pilot) -> None:
    await pilot.press("4")
    await wait_for(pilot, lambda: pilot.app.query_one(RegistryPane).settled, what="the demo registry")


TABS = {"launcher": lambda pilot: _press("1", pilot), "runs": lambda pilot: _press("2", pilot),
        "mlflow-ops": show_mlflow_ops, "registry": _registry, "serving": show_serving}


def footer_problems(app) -> list[str]:
    """Actions the screen offers whose key the footer does not show whole, in sight."""
    footer = app.query_one(VtmFooter)
    width, height = app.size
    palette = next((key for key in footer.keys_shown if key.has_class("-command-palette")), None)
    shown = {key.action: key for key in footer.keys_shown}  # one key per action (f5 and ^l: ^l)
    problems = []
    for _node, binding, _enabled, _tooltip in app.screen.active_bindings.values():
        if not binding.show:
            continue
        key = shown.get(binding.action)
        if key is None:
            problems.append(f"{binding.key} ({binding.description}): not in the footer")
            continue
        region = key.region
        if region.x < 0 or region.right > width or not 0 <= region.y < height or not region.width:
            problems.append(f"{binding.key} ({binding.description}): at {region}, off screen")
        elif palette is not None and key is not palette and region.overlaps(palette.region):
            problems.append(f"{binding.key} ({binding.description}): under the command palette's key")
    return problems


def cut_columns(app) -> list[str]:
    """Columns of the tables in sight that do not fit their table whole."""
    problems = []
    for table in app.screen.query(DataTable):
        if not table.region.width or not table.visible or not table.ordered_columns:
            continue
        available = table.scrollable_content_region.width
        right = -table.scroll_x
        for column in table.ordered_columns:
            right += column.get_render_width(table)
            left = right - column.get_render_width(table)
            if left < available < right:
                problems.append(f"#{table.id} column {column.label.plain!r} is cut at {available - left} of "
                                f"{right - left} cells")
    return problems


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
@pytest.mark.parametrize("tab", list(TABS))
async def test_every_key_in_sight_and_no_cut_column(tab, size, tmp_path):
    settings, sources = make_demo(tmp_path)
    fill_demo_registry(settings)
    app = VtmApp(settings, with_serving(with_demo_mlflow(sources)))
    async with app.run_test(size=size) as pilot:
        form, runs = app.query_one(LauncherPane).form, app.query_one(RunsPane)
        await wait_for(pilot, lambda: form.rows and runs.charted, what="the demo to load")
        await TABS[tab](pilot)
        await pilot.pause(0.5)
        await wait_for(pilot, lambda: not footer_problems(app), timeout=5,
                       what=f"every key of the {tab} tab in sight: {footer_problems(app)}")
        assert not cut_columns(app), (cut_columns(app), screen_text(app))
        if tab == "mlflow-ops":  # the numbers are whole: the best-run metric's column stays
            assert "val_accuracy" in screen_text(app) and "0.8749" in screen_text(app)
