"""System metrics of a run, end to end: a script that holds ~300 MB and keeps a core busy (in a
child process: the sampler follows the tree) and uses no vtm helper; its supervisor samples it
every 0.5 s into the run store, the Runs tab charts the samples in a "system" group, and its
MLflow run (the session's real server) gets them as system/ metrics."""
from __future__ import annotations

import json

from fixtures.tui import screen_text, wait_for
from fixtures.vtm import DATA, make_vtm_env

from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.tabs.runs.metric_chart import MetricChart
from vtm_tui.ui.tabs.runs.pane import RunsPane

RSS = "system/process_memory_rss_megabytes"
CPU = "system/process_cpu_utilization_percentage"


async def test_a_busy_run_shows_its_memory_and_cpu_in_store_chart_and_mlflow(tmp_path, embedded_server):
    vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri, VTM_SYSTEM_METRICS_INTERVAL="0.5",
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    result = vtm.run("launch", "busy", "--set", "hold_mb=300", "--set", "busy=true", "--set", "epochs=12",
                     "--set", "epoch_seconds=0.5", "--set", "mlflow=true", "--wait", "--json", timeout=180)
    run = vtm.store.get(json.loads(result.stdout)["id"])
    assert run.status == "succeeded", run

    samples = vtm.store.system_samples(run.id)
    assert len(samples) >= 6
    assert max(sample[RSS] for sample in samples) >= 300
    assert max(sample[CPU] for sample in samples) > 50

    from mlflow import MlflowClient

    client = MlflowClient(embedded_server.uri)
    history = {key: [m.value for m in client.get_metric_history(run.mlflow_run_id, key)] for key in (RSS, CPU)}
    assert len(history[RSS]) == len(samples) and max(history[RSS]) >= 300 and max(history[CPU]) > 50
    assert "system/cpu_utilization_percentage" in client.get_run(run.mlflow_run_id).data.metrics  # the host's

    app = VtmApp(vtm.settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        pane = await wait_for(pilot, lambda: app.query(RunsPane) and app.query_one(RunsPane), what="the Runs tab")
        pane.select_run(run.id)
        charts = await wait_for(pilot, lambda: {chart.key: chart for chart in app.query(MetricChart)
                                                if chart.key in (RSS, CPU)}, timeout=20, what="the system charts")
        assert len(charts) == 2
        assert max(charts[RSS].query_one("Sparkline").data) >= 300
        assert max(charts[CPU].query_one("Sparkline").data) > 50
        assert (charts[RSS].label, charts[CPU].label) == ("rss MB", "cpu %")
        assert app.query(".chart-group")
        text = screen_text(app)
        assert "system" in text and "cpu %" in text, text
