"""SVG snapshots of every tab (pytest-textual-snapshot), on the pinned demo world of
vtm_tui/ui/demo/world.py: fixed clock, server status, GPUs, runs and logs; paths shown relative to
the demo's folder. Regenerate after an intended change with `--snapshot-update`."""
from __future__ import annotations

import pytest
from fixtures.tui import wait_for

from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.runs.metric_chart import MetricChart
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.widgets.log_tail import LogTail

# MLflow Ops, Registry and Serving are snapshotted by their own test modules, on their own
# pinned demo data (test_tui_mlflow_ops.py, test_tui_registry.py, test_tui_serving.py).
TABS = {"launcher": "1", "runs": "2"}


def settled(tab_key: str):
    """run_before: wait until every worker has delivered (catalog, runs, charts, log), then
    open the tab, so the picture never depends on timing."""

    async def run_before(pilot) -> None:
        app = pilot.app
        form = app.query_one(LauncherPane).form
        runs = app.query_one(RunsPane)

        def loaded() -> bool:
            logs = app.query(LogTail)  # the Runs tab mounts just after the first frame
            lines = logs.first().lines if logs else []
            return bool(form.rows and runs.run_ids and runs.charted and len(app.query(MetricChart)) == 3
                        and any("VTM_PROGRESS" in line for line in lines[-3:]))

        await wait_for(pilot, loaded, what="the demo to load")
        await pilot.press(tab_key)
        await pilot.pause(0.2)

    return run_before


@pytest.mark.parametrize("tab", list(TABS))
def test_tab_120x40(tab, snap_compare, tmp_path):
    settings, sources = make_demo(tmp_path)
    assert snap_compare(VtmApp(settings, sources), terminal_size=(120, 40),
                        run_before=settled(TABS[tab]))


@pytest.mark.parametrize("tab", ["launcher", "runs"])
def test_tab_80x24(tab, snap_compare, tmp_path):
    settings, sources = make_demo(tmp_path)
    assert snap_compare(VtmApp(settings, sources), terminal_size=(80, 24),
                        run_before=settled(TABS[tab]))
