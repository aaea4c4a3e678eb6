"""The TUI with a run store that is damaged (rebuilt, said in one line) or unreadable (a full
disk: said in one line, polled again): it starts, the Runs tab says so, and the other tabs work."""
from __future__ import annotations

import os

from fixtures.tui import screen_text, wait_for, wait_for_text
from fixtures.vtm import DATA, VtmEnv, base_env, fill_disk

from vtm_tui.settings import Settings
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.mlflow_ops.pane import MlflowOpsPane
from vtm_tui.ui.tabs.registry.pane import RegistryPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.tabs.serving.pane import ServingPane


async def _other_tabs_work(pilot) -> None:
    app = pilot.app
    await app.query_one(LauncherPane).wait_ready(20)
    for key, pane in (("3", MlflowOpsPane), ("4", RegistryPane), ("5", ServingPane)):
        await pilot.press(key)
        await app.query_one(pane).wait_ready(30)
        await pilot.pause()


async def test_damaged_store_is_rebuilt_and_said_in_one_line(offline_env):
    run = offline_env.launch_json("fake", "--set", "epochs=2", "--set", "sleep=0", "--set", "tag=kept")
    offline_env.wait_finished(run.id)
    offline_env.settings.runs_db.write_bytes(os.urandom(32 * 1024))
    app = VtmApp(offline_env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.query_one(RunsPane)
        await pilot.press("2")
        await runs.wait_ready(20)
        await wait_for(pilot, lambda: runs.run_ids == [run.id], what="the rebuilt run")
        await wait_for_text(pilot, "the run store was damaged (file is not a database): moved aside as runs.db.corrupt")
        assert not app.query_one("#runs-empty").display
        note = [line for line in screen_text(app).splitlines() if "was damaged" in line]
        assert len(note) == 1
        await _other_tabs_work(pilot)
    assert list(offline_env.settings.home.glob("runs.db.corrupt-*"))


async def test_unreadable_store_on_a_full_disk_keeps_the_tui_working(tmp_path, small_disk):
    env = base_env(VTM_HOME=str(small_disk / ".vtm"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                   TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"), VTM_REGISTRY_URL=str(tmp_path / "registry"))
    vtm = VtmEnv(tmp_path, env, Settings.load(cwd=tmp_path, environ=env))
    run = vtm.launch_json("fake", "--set", "epochs=1", "--set", "sleep=0")
    vtm.wait_finished(run.id)
    filler = fill_disk(small_disk)
    app = VtmApp(vtm.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.query_one(RunsPane)
        await pilot.press("2")
        await runs.wait_ready(20)
        await wait_for_text(pilot, "Cannot read the run store: no space left on device")
        await _other_tabs_work(pilot)
        filler.unlink()  # space again: the tab reads the store on its next poll
        await pilot.press("2")
        await wait_for(pilot, lambda: runs.run_ids == [run.id], timeout=20, what="the run, once readable")
        await wait_for(pilot, lambda: not app.query_one("#runs-note").has_class("-shown"), what="the note gone")
