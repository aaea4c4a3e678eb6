"""The shape every tab shares (vtm_tui/ui/tabs/base.py), on the pinned demo world: a tab loads
when it is first shown (the Launcher and Runs tabs at once), says when its first load is on
screen (`ready`, `wait_ready`), and is handed the catalog the Launcher reads; and the live table
the Runs, MLflow Ops and Serving tables are made of."""
from __future__ import annotations

from fixtures.tui import wait_for
from textual.app import App, ComposeResult

from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_mlflow import with_demo_mlflow
from vtm_tui.ui.demo.pinned_registry import fill_demo_registry
from vtm_tui.ui.demo.pinned_serving import with_serving
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.mlflow_ops.pane import MlflowOpsPane
from vtm_tui.ui.tabs.registry.pane import RegistryPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.tabs.serving.pane import ServingPane
from vtm_tui.ui.widgets.live_table import LiveTable


async def test_tabs_load_when_first_shown_say_when_ready_and_get_the_catalog(tmp_path):
    settings, sources = make_demo(tmp_path)
    fill_demo_registry(settings)
    app = VtmApp(settings, with_serving(with_demo_mlflow(sources)))
    async with app.run_test(size=(120, 40)) as pilot:
        launcher, runs = app.query_one(LauncherPane), app.query_one(RunsPane)
        await launcher.wait_ready(10)
        await runs.wait_ready(10)
        await pilot.pause()
        assert launcher.form.rows and runs.run_ids == [4, 3, 2, 1]
        mlflow, registry = app.query_one(MlflowOpsPane), app.query_one(RegistryPane)
        serving = app.query_one(ServingPane)
        # The catalog reaches a tab nobody has looked at yet, which has read nothing itself.
        await wait_for(pilot, lambda: mlflow.built and mlflow.best_card.tasks, what="the catalog in MLflow Ops")
        assert {"classification", "segmentation"} <= set(mlflow.best_card.tasks)
        for pane in (mlflow, registry, serving):
            assert not pane.started and not pane.ready, pane.id
        for key, pane in (("3", mlflow), ("4", registry), ("5", serving)):
            await pilot.press(key)
            await pane.wait_ready(10)
            assert pane.started
            await pilot.pause()
        assert mlflow.runs and registry.listing.models and serving.catalogue.models


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield LiveTable([("id", "ID"), ("value", "Value")])


async def test_live_table_updates_cells_in_place_and_keeps_the_cursor_on_its_row():
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(LiveTable)
        assert table.show_rows({"a": ("a", "1"), "b": ("b", "2")})  # new rows: built
        assert table.move_to("b") and not table.move_to("z")
        assert not table.show_rows({"a": ("a", "1"), "b": ("b", "3")})  # the same rows: updated in place
        assert table.get_row("b") == ["b", "3"] and table.current_key == "b"
        assert table.show_rows({"c": ("c", "0"), "b": ("b", "3"), "a": ("a", "1")}, keep=table.current_key)
        await pilot.pause()
        assert table.keys == ["c", "b", "a"] and table.current_key == "b"
        assert table.show_rows({"c": ("c", "0")}, keep="b") and table.current_key == "c"  # gone: the first row
