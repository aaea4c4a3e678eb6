"""The MLflow Ops tab: Pilot tests against the session's real MLflow server (runs of the example
classification training, a generated TensorBoard log), an unreachable server, the pure chart and
table helpers, and one snapshot on the pinned demo data (vtm_tui/ui/demo/pinned_mlflow.py)."""
from __future__ import annotations

import re
import uuid

import pytest
from fixtures.tui import screen_text, type_into, wait_for
from fixtures.vtm import REPO, free_port, make_vtm_env
from textual.widgets import Input, Static

from vtm_tui.core.tracking.client import RunInfo, Tracking
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_mlflow import show_mlflow_ops, with_demo_mlflow
from vtm_tui.ui.demo.world import make_demo
from vtm_tui.ui.tabs.mlflow_ops.history_chart import HistoryPlot, Series, render_lines
from vtm_tui.ui.tabs.mlflow_ops.pane import MlflowOpsPane
from vtm_tui.ui.tabs.mlflow_ops.runs_table import SortKey, metric_columns

CATALOG = str(REPO / "catalog.yaml")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def trained(embedded_server, tmp_path_factory):
    """Two runs of the example classification training in a fresh experiment, launched the way
    a user does (`vtm launch ... --wait`); the app's settings open that experiment."""
    cwd = tmp_path_factory.mktemp("mlflow-ops")
    experiment = unique("vtm-mlops")
    env = make_vtm_env(cwd, MLFLOW_TRACKING_URI=embedded_server.uri, TRAINING_CATALOG_PATH=CATALOG,
                       VTM_EXPERIMENT_NAME=experiment)
    for seed in (1, 2):  # different seeds: different accuracies, so "best" has one answer
        result = env.run("launch", "classification", "--set", "epochs=1", "--set", "samples=64",
                         "--set", f"seed={seed}", "--set", f"experiment_name={experiment}", "--wait",
                         timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    runs = Tracking(embedded_server.uri).search_runs(experiment)
    assert len(runs) == 2
    return env, experiment, runs


async def open_tab(pilot) -> MlflowOpsPane:
    await pilot.press("3")
    await wait_for(pilot, lambda: pilot.app.tabs.active == "mlflow-ops", what="the MLflow Ops tab")
    return pilot.app.query_one(MlflowOpsPane)


def tb_summary(pane: MlflowOpsPane) -> str:
    return str(pane.query_one("#tb-summary", Static).content)


def charted(pane: MlflowOpsPane) -> dict[str, int]:
    """metric -> how many runs its chart shows."""
    return {plot.key: len(plot.series) for plot in pane.query(HistoryPlot)}


async def test_lists_runs_compares_picks_best_and_registers(trained, embedded_server):
    from mlflow import MlflowClient

    env, experiment, runs = trained
    accuracy = {run.run_id: run.metrics["val_accuracy"] for run in runs}
    best = max(runs, key=lambda run: run.metrics["val_accuracy"])
    if len(set(accuracy.values())) == 1:
        pytest.fail(f"both runs reached the same val_accuracy {accuracy}: choose other seeds")
    model = unique("vtm-tui-model")
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_tab(pilot)
        await wait_for(pilot, lambda: pane.experiment and pane.experiment.name == experiment
                       and len(pane.runs) == 2, timeout=60, what="the experiment's two runs")
        assert {"train_loss", "val_loss", "val_accuracy"} <= set(pane.table.metrics)
        text = screen_text(app)
        assert "2 runs" in text and experiment in text
        for run in runs:
            assert run.run_id[:8] in text

        # Defaults from the catalog task named by the runs' vtm.task_type tag.
        await wait_for(pilot, lambda: pane.best_card.metric == "val_accuracy", what="the catalog defaults")
        assert app.query_one("#best-model", Input).value == "classification-best-model"
        assert app.query_one("#best-alias", Input).value == "dev"

        # Sort by a metric: MLflow orders the rows.
        pane.table.focus()
        while pane.sort.metric != "val_accuracy":
            await pilot.press("s")
        await wait_for(pilot, lambda: pane.runs[0].run_id == best.run_id and pane.sort.descending,
                       what="the runs sorted by val_accuracy")
        await pilot.press("S")
        await wait_for(pilot, lambda: pane.runs[-1].run_id == best.run_id, what="the order reversed")

        # Compare: mark both runs, each metric is charted once per run.
        while pane.table.cursor_row > 0:  # the cursor stays on its run through the re-sorts
            await pilot.press("up")
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: charted(pane).get("val_accuracy") == 2
                       and charted(pane).get("train_loss") == 2, timeout=30, what="the compare chart")

        # Filter with an MLflow expression; a broken one is an error line, not a crash.
        other = next(run for run in runs if run.run_id != best.run_id)
        await type_into(pilot, "#mlops-filter", f"attributes.run_id = '{other.run_id}'")
        await pilot.press("enter")
        await wait_for(pilot, lambda: [run.run_id for run in pane.runs] == [other.run_id],
                       what="the filtered runs")
        await type_into(pilot, "#mlops-filter", "metrics.val_accuracy >>> 1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.query_one("#mlops-filter").has_class("-invalid"),
                       what="the filter error")
        assert pane.unreachable is None
        await type_into(pilot, "#mlops-filter", "")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(pane.runs) == 2, what="every run back")

        # Pick the best run: the higher val_accuracy, how many runs were considered.
        await pilot.press("b")
        await wait_for(pilot, lambda: pane.best_card.best is not None, timeout=30, what="the best run")
        assert pane.best_card.best.run.run_id == best.run_id
        assert pane.table.current_run_id == best.run_id
        text = screen_text(app)
        assert best.run_id[:8] in text and "2 runs considered" in text

        # Register it under a typed model name with the default alias.
        await type_into(pilot, "#best-model", model)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Registered" in screen_text(app), timeout=120,
                       what="the registration")
        text = screen_text(app)
        assert "version 1" in text and "alias dev" in text
    version = MlflowClient(tracking_uri=embedded_server.uri).get_model_version_by_alias(model, "dev")
    assert version.run_id == best.run_id


async def test_unreachable_server_is_a_status_line_and_the_app_keeps_working(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=uri, TRAINING_CATALOG_PATH=CATALOG)
    app = VtmApp(env.settings)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_tab(pilot)
        await wait_for(pilot, lambda: f"MLflow unreachable at {uri}" in screen_text(app), timeout=30,
                       what="the unreachable status")
        assert pane.has_class("-unreachable") and "Connection refused" in (pane.unreachable or "")
        await pilot.press("ctrl+r", "b", "s", "space")  # retry and actions: answers, no crash
        await pilot.press("1")
        await wait_for(pilot, lambda: app.tabs.active == "launcher", what="the Launcher tab")
        await pilot.press("2")
        await wait_for(pilot, lambda: app.tabs.active == "runs", what="the Runs tab")
        await pilot.press("3")
        await wait_for(pilot, lambda: app.tabs.active == "mlflow-ops"
                       and f"MLflow unreachable at {uri}" in screen_text(app), what="the tab again")


def write_tb_log(log_dir, steps: int) -> int:
    from torch.utils.tensorboard import SummaryWriter

    tags = ["train/loss", "val/accuracy"]
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for step in range(steps):
            writer.add_scalar(tags[0], 1.0 / (step + 1), step)
            writer.add_scalar(tags[1], step / steps, step)
    return len(tags) * steps


async def test_tb_import_card_shows_progress_cancels_and_imports(tmp_path, embedded_server, monkeypatch):
    from mlflow import MlflowClient

    log_dir = tmp_path / "tb" / "exp1"
    steps = 15000  # 30 batches: far more than the import has workers, so a cancel lands mid-way
    total = write_tb_log(log_dir, steps)
    experiment = unique("vtm-mlops-tb")
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri, TRAINING_CATALOG_PATH=CATALOG)
    monkeypatch.setenv("VTM_TB_IMPORT_BATCH_DELAY", "0.5")  # the import's own hook: slow batches
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_tab(pilot)
        await wait_for(pilot, lambda: pane.experiment is not None, timeout=60, what="the connection")
        await type_into(pilot, "#tb-dir", str(log_dir))
        await type_into(pilot, "#tb-experiment", experiment)
        await type_into(pilot, "#tb-run-name", "tui-import")
        pane.table.focus()
        await pilot.press("i")
        rate, bar = pane.query_one("#tb-rate"), pane.query_one("#tb-bar")
        await wait_for(pilot, lambda: bar.progress > 0 and "points/s" in str(rate.text),
                       timeout=60, what="live progress")
        assert re.fullmatch(r"[\d,]+ / ~[\d,]+ points · [\d,]+ points/s", str(rate.text)), rate.text
        await pilot.press("x")
        await wait_for(pilot, lambda: not pane.tb_card.running, timeout=60, what="the cancelled import")
        assert "cancelled after importing" in tb_summary(pane), tb_summary(pane)
        monkeypatch.delenv("VTM_TB_IMPORT_BATCH_DELAY")
        await pilot.press("i")  # resumes: only the missing points are sent
        await wait_for(pilot, lambda: pane.tb_card.running, what="the second import")
        await wait_for(pilot, lambda: not pane.tb_card.running, timeout=120, what="the second import")
        text = tb_summary(pane)
        assert text.startswith("imported") and "already in MLflow and were skipped" in text, text
        assert "run 'tui-import'" in text
        # The tab now shows the experiment the points went to.
        await wait_for(pilot, lambda: pane.experiment and pane.experiment.name == experiment
                       and len(pane.runs) == 1, timeout=30, what="the imported run in the table")
        assert {"train/loss", "val/accuracy"} <= set(pane.table.metrics)
    client = MlflowClient(tracking_uri=embedded_server.uri)
    run = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])[0]
    assert run.info.run_name == "tui-import" and run.info.status == "FINISHED"
    histories = [client.get_metric_history(run.info.run_id, key) for key in ("train/loss", "val/accuracy")]
    assert sum(len(h) for h in histories) == total
    assert sorted(p.step for p in histories[0]) == list(range(steps))


def test_snapshot_120x40(snap_compare, tmp_path):
    settings, sources = make_demo(tmp_path)
    assert snap_compare(VtmApp(settings, with_demo_mlflow(sources)), terminal_size=(120, 40),
                        run_before=show_mlflow_ops)


async def test_demo_is_usable_at_80x24(tmp_path):
    """Everything can be reached at 80x24: the body scrolls to the cards."""
    settings, sources = make_demo(tmp_path)
    app = VtmApp(settings, with_demo_mlflow(sources))
    async with app.run_test(size=(80, 24)) as pilot:
        await show_mlflow_ops(pilot)
        pane = app.query_one(MlflowOpsPane)
        assert pane.has_class("-narrow")
        assert "Log dir" not in screen_text(app)
        app.query_one("#tb-dir", Input).focus()
        await wait_for(pilot, lambda: "Log dir" in screen_text(app), what="the TB card scrolled into view")
        assert "Best clf-lr1e-3-e10" in str(pane.query_one("#best-result").render())


# ---------------------------------------------------------------- pure helpers

def test_render_lines_shares_one_scale_and_colours_each_run():
    a = Series("a", ((0, 0.0), (10, 1.0)), "#111111")
    b = Series("b", ((0, 1.0), (10, 0.0)), "#222222")
    lines = render_lines([a, b], 30, 8)
    assert len(lines) == 8 and all(len(line) <= 30 for line in lines)
    assert lines[0].plain.startswith("1┤") and lines[6].plain.startswith("0┤")
    assert "step 0" in lines[-1].plain and lines[-1].plain.rstrip().endswith("10")
    styles = {str(span.style) for line in lines for span in line.spans}
    assert {"#111111", "#222222"} <= styles
    assert render_lines([Series("nan", ((0, float("nan")),), "red")], 30, 5)[0].plain == "no points"
    assert len(render_lines([Series("one", ((3, 2.0),), "red")], 20, 4)) == 4  # one point, flat range


def test_sort_keys_and_metric_columns():
    assert SortKey().order_by() == ["attributes.start_time DESC"]
    assert SortKey("metric:val/acc", False).order_by() == ["metrics.`val/acc` ASC",
                                                          "attributes.start_time DESC"]
    runs = [RunInfo("r1", "a", "FINISHED", 0, 1, metrics={"b": 1, "system/cpu": 2, "a": 3}),
            RunInfo("r2", "b", "FINISHED", 0, 1, metrics={"z": 1})]
    assert metric_columns(runs, "z") == ["z", "a", "b", "system/cpu"]
    assert metric_columns(runs, "missing") == ["a", "b", "z", "system/cpu"]
    many = [RunInfo("r", "r", "FINISHED", 0, 1, metrics={f"m{i:02}": i for i in range(12)})]
    assert metric_columns(many, "m05", also="m11") == ["m05", "m00", "m01", "m02", "m03", "m04", "m06",
                                                        "m07", "m11"]
