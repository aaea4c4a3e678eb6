"""The Launcher's GPU picker takes both forms (any N GPUs, or exactly some) into the GPU queue;
on this machine without NVML, VTM_GPUS=0,1 declares the GPUs."""
from __future__ import annotations

from fixtures.tui import wait_for, wait_for_text
from fixtures.vtm import DATA, make_vtm_env
from textual.widgets import OptionList, Select

from vtm_tui.core.runs.lifecycle import cancel
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.tabs.launcher.pane import LauncherPane


async def test_launcher_queues_any_n_and_exact_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("VTM_GPUS", "0,1")  # what the supervisors the app starts read
    vtm = make_vtm_env(tmp_path, VTM_GPUS="0,1", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"), VTM_SYSTEM_METRICS_INTERVAL="0")
    stop = tmp_path / "stop"
    app = VtmApp(vtm.settings)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            pane = app.query_one(LauncherPane)
            tasks = app.query_one("#task-list", OptionList)
            await wait_for(pilot, lambda: pane.form.rows and [o.id for o in tasks.options], what="the catalog")
            tasks.highlighted = [o.id for o in tasks.options].index("busy")
            await wait_for(pilot, lambda: pane.form.query("#field-until_file"), what="the busy task's form")
            picker = app.query_one("#gpu-picker", Select)
            await wait_for(pilot, lambda: "any:1" in pane._gpu_values, what="the declared GPUs in the picker")
            pane._drafts.clear()
            for value, expected in (("any:1", ("count:1", "0")), ("1", ("devices:1", "1")),
                                    ("any:1", ("count:1", None))):
                pane.form.query_one("#field-until_file").value = str(stop)
                picker.value = value
                await pilot.pause()
                launched = len(vtm.store.list()) + 1
                await pilot.press("ctrl+l")
                run = (await wait_for(pilot, lambda n=launched: len(vtm.store.list()) == n and vtm.store.list()[0],
                                      what="the launched run"))
                run = vtm.wait_for(run.id, lambda r, expected=expected: r.status == (
                    "queued" if expected[1] is None else "running") and r.supervisor_pid, timeout=60)
                assert (run.gpu_request, run.gpus) == expected
                if expected[1] is None:  # the Runs tab says what the queued run waits for
                    await wait_for_text(pilot, "waits in the GPU queue for 1 GPU; h: its place and why")
                await wait_for(pilot, lambda: app.tabs.active == "runs", what="the Runs tab")
                app.action_show_tab("launcher")  # back to the Launcher (what key 1 does)
                await wait_for(pilot, lambda: app.tabs.active == "launcher", what="the Launcher")
                await pilot.pause(0.2)
    finally:
        stop.touch()
        for run in vtm.store.active():
            cancel(vtm.settings, run.id)
        for run in vtm.store.list():
            vtm.wait_finished(run.id, timeout=60)
