"""End to end through the TUI: the default catalog's classification task, the real example
training script and a real MLflow tracking server (the session's embedded one)."""
from __future__ import annotations

import pytest
from fixtures.tui import wait_for, wait_for_text
from fixtures.vtm import REPO, make_vtm_env
from test_tui_flows import fill, open_app, runs_row
from textual.widgets import ProgressBar, Sparkline

from vtm_tui.core.runs.lifecycle import cancel
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.tabs.runs.metric_chart import MetricChart
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.widgets.log_tail import LogTail


@pytest.fixture
def classification_env(tmp_path, embedded_server):
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri,
                       TRAINING_CATALOG_PATH=str(REPO / "catalog.yaml"))
    yield env
    for run in env.store.active():
        cancel(env.settings, run.id)


async def test_launch_classification_and_watch_it_finish(classification_env):
    env = classification_env
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_app(pilot)
        assert app.query_one("#task-list").highlighted == 0  # classification comes first
        await fill(pilot, "epochs", "2")
        await fill(pilot, "samples", "64")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.tabs.active == "runs", what="the Runs tab")
        run_id = (await wait_for(pilot, lambda: env.store.list(), what="the run"))[0].id
        runs = app.query_one(RunsPane)

        def finished():
            return (run_id in runs.run_ids and runs.selected_id == run_id
                    and runs_row(app, run_id)[1] not in ("queued", "running"))

        await wait_for(pilot, finished, timeout=240, what="the run to finish")
        run = env.store.get(run_id)
        assert run.status == "succeeded", open(run.log_path).read()[-3000:]
        row = runs_row(app, run_id)
        assert row[1:5] == ["succeeded", "classification", "100%", "2/2"]
        assert row[5].startswith("val_accuracy ")
        assert row[7] == run.mlflow_run_id[:12]
        assert app.query_one("#run-bar", ProgressBar).percentage == 1.0

        await wait_for(pilot, lambda: {chart.key for chart in app.query(MetricChart)}
                       >= {"train_loss", "val_loss", "val_accuracy"}, what="the metric charts")
        accuracy = next(chart for chart in app.query(MetricChart) if chart.key == "val_accuracy")
        assert len(accuracy.query_one(Sparkline).data) == 2  # one point per epoch

        log = app.query_one("#run-log", LogTail)
        await wait_for(pilot, lambda: any(line.startswith("best val_accuracy=") for line in log.lines),
                       what="the log tail")
        await wait_for_text(pilot, "succeeded", "val_accuracy", run.mlflow_run_id[:12])
