"""Pinned MLflow data for the MLflow Ops tab in screenshots and snapshot tests.

`with_demo_mlflow(sources)` pins the `tracking` source: it answers from the fixed experiments and
runs below (no server, no clock: times are relative to world.NOW), and `show_mlflow_ops(pilot)`
opens the tab and brings it to the state the pictures show: two runs marked for comparison and
the best run picked.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

from vtm_tui.core.tracking.client import ExperimentInfo, MetricPoint, RunInfo
from vtm_tui.ui.demo.world import NOW, TRACKING_URI, until
from vtm_tui.ui.sources import Sources

_NOW_MS = int(NOW * 1000)
_EXPERIMENTS = [("0", "Default"), ("4", "segmentation-sweep"), ("7", "tb-import-2025-12"),
                ("3", "void-train-manager")]
_RUNS = [
    # name, id, status, epochs logged, started (min before NOW), ran (min), final accuracy, lr
    ("clf-lr3e-3-e12", "a47c1e9b3d5f4e2a8b6c0d9e7f1a2b35", "RUNNING", 7, 2, None, 0.905, "0.003"),
    ("clf-lr1e-3-e10", "3f9c2a71d05b4e8e9a1c6b7d2e4f8a10", "FINISHED", 10, 95, 14, 0.931, "0.001"),
    ("clf-lr1e-2-e10", "c2d81f4a6b9e4c07a3e5d1f8b2a6c9e4", "FINISHED", 10, 180, 13, 0.874, "0.01"),
    ("clf-lr3e-4-e10", "e6b14a9c2f7d4e81b0c3a5d9f2e7b614", "FINISHED", 10, 260, 15, 0.902, "0.0003"),
    ("clf-lr1e-1-e5", "9d3e7b2a1c5f4a68b4e0d2c7f9a1b3e5", "FAILED", 2, 400, 3, 0.412, "0.1"),
    ("clf-baseline", "1b7f3c9e5a2d4b86a0c4e8f2d6b9a3c1", "FINISHED", 5, 1500, 8, 0.866, "0.001"),
]


def _curve(epoch: int, start: float, end: float, rate: float) -> float:
    return round(end + (start - end) * math.exp(-rate * (epoch - 1)), 4)


def _history(final_accuracy: float, lr: str, epochs: int) -> dict[str, list[float]]:
    rate = 0.2 + min(float(lr), 0.01) * 100  # a larger learning rate converges faster here
    steps = range(1, epochs + 1)
    return {"val_accuracy": [_curve(e, 0.3, final_accuracy, rate) for e in steps],
            "val_loss": [_curve(e, 1.5, 1.25 - final_accuracy, rate * 0.8) for e in steps],
            "train_loss": [_curve(e, 1.6, 1.1 - final_accuracy, rate * 1.1) for e in steps]}


def _classification_runs() -> tuple[list[RunInfo], dict[tuple[str, str], list[MetricPoint]]]:
    runs, histories = [], {}
    for name, run_id, status, epochs, started_min, ran_min, accuracy, lr in _RUNS:
        start = _NOW_MS - started_min * 60_000
        end = None if ran_min is None else start + ran_min * 60_000
        history = _history(accuracy, lr, epochs)
        for key, values in history.items():
            histories[(run_id, key)] = [MetricPoint(step, value, start + step * 60_000)
                                        for step, value in enumerate(values, 1)]
        runs.append(RunInfo(run_id, name, status, start, end,
                            params={"learning_rate": lr, "epochs": str(epochs)},
                            metrics={key: values[-1] for key, values in history.items()},
                            tags={"vtm.task_type": "classification"}, experiment_id="3"))
    return runs, histories


def _order_key(order: str):
    field_name, _, direction = order.rpartition(" ")
    if field_name.startswith("metrics."):
        key = field_name.removeprefix("metrics.").strip("`")
        return (lambda run: run.metrics.get(key)), direction == "DESC"
    attribute = {"attributes.run_name": "name", "attributes.status": "status"}.get(field_name, "start_time")
    return (lambda run: getattr(run, attribute)), direction == "DESC"


class DemoTracking:
    """Answers like core.tracking.Tracking, from fixed data (filters are not evaluated)."""

    uri = display_uri = TRACKING_URI

    def __init__(self) -> None:
        self._experiments = [ExperimentInfo(eid, name, creation_time=_NOW_MS - 86_400_000)
                             for eid, name in _EXPERIMENTS]
        self._runs, self._histories = _classification_runs()

    def experiments(self, include_deleted: bool = False) -> list[ExperimentInfo]:
        return list(self._experiments)

    def experiment(self, name_or_id: str) -> ExperimentInfo:
        from vtm_tui.errors import UserError

        for exp in self._experiments:
            if name_or_id in (exp.name, exp.experiment_id):
                return exp
        raise UserError(f"no experiment {name_or_id!r} at {self.display_uri}")

    def iter_runs(self, experiments, filter: str | None = None, order_by: list[str] | None = None,
                  max_results: int | None = None, include_deleted: bool = False, page_size: int = 0):
        experiments = experiments if isinstance(experiments, list) else [experiments]
        ids = {exp.experiment_id if isinstance(exp, ExperimentInfo) else self.experiment(exp).experiment_id
               for exp in experiments}
        runs = [run for run in self._runs if run.experiment_id in ids]
        for order in reversed(order_by or ["attributes.start_time DESC"]):
            key, descending = _order_key(order)
            present = sorted((r for r in runs if key(r) is not None), key=key, reverse=descending)
            runs = present + [r for r in runs if key(r) is None]  # missing values last, as MLflow
        return iter(runs[:max_results] if max_results is not None else runs)

    def search_runs(self, *args, **kwargs) -> list[RunInfo]:
        return list(self.iter_runs(*args, **kwargs))

    def run(self, run_id: str) -> RunInfo:
        return next(run for run in self._runs if run.run_id == run_id)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return list(self._histories.get((run_id, key), []))


def with_demo_mlflow(sources: Sources) -> Sources:
    """`sources` (e.g. world.make_demo's) with the pinned tracking data above."""
    return replace(sources, tracking=lambda _settings: DemoTracking())


async def show_mlflow_ops(pilot) -> None:
    """Open the MLflow Ops tab on the demo data, mark the two newest runs, pick the best run."""
    from vtm_tui.ui.tabs.mlflow_ops.history_chart import HistoryPlot
    from vtm_tui.ui.tabs.mlflow_ops.pane import MlflowOpsPane

    app = pilot.app
    deadline = time.monotonic() + 10
    while app.tabs.active != "mlflow-ops":  # a key pressed while the app still starts can be lost
        if time.monotonic() > deadline:
            raise AssertionError("the MLflow Ops tab did not open")
        await pilot.press("3")
        await pilot.pause(0.1)
    pane = app.query_one(MlflowOpsPane)
    await until(pilot, lambda: pane.ready and pane.runs and pane.best_card.metric,
                "the MLflow Ops demo's runs and defaults")
    pane.table.focus()
    await pilot.press("space", "down", "space")
    await until(pilot, lambda: len(pane.query(HistoryPlot)) == 3
                and all(len(plot.series) == 2 for plot in pane.query(HistoryPlot)), "the MLflow Ops demo's chart")
    await pilot.press("b")
    await until(pilot, lambda: pane.best_card.best is not None, "the MLflow Ops demo's best run")
    await pilot.pause(0.2)
