"""The MLflow runs table: one row per run, a column per metric (latest value), marks for
comparing runs, and the sort order it asks MLflow for (`order_by`, so sorting and filtering
happen in the tracking store, over every run, not just the rows on screen)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from vtm_tui.core.formatting import format_duration, format_number
from vtm_tui.ui.status_styles import MLFLOW_RUN
from vtm_tui.ui.tabs.mlflow_ops.history_chart import PALETTE

if TYPE_CHECKING:
    from vtm_tui.core.tracking.client import RunInfo

MAX_METRIC_COLUMNS = 8
# Columns MLflow can order by (attributes), by column key; metrics are "metric:<key>".
ATTRIBUTE_ORDER = {"name": "attributes.run_name", "status": "attributes.status",
                   "started": "attributes.start_time"}


@dataclass(frozen=True)
class SortKey:
    column: str = "started"  # "name", "status", "started" or "metric:<key>"
    descending: bool = True

    @property
    def metric(self) -> str | None:
        return self.column.removeprefix("metric:") if self.column.startswith("metric:") else None

    def order_by(self) -> list[str]:
        """MLflow's order_by; the start time breaks ties so the order is stable."""
        field = f"metrics.`{self.metric}`" if self.metric else ATTRIBUTE_ORDER[self.column]
        order = [f"{field} {'DESC' if self.descending else 'ASC'}"]
        if self.column != "started":
            order.append("attributes.start_time DESC")
        return order

    def label(self) -> str:
        name = self.metric or {"started": "start time"}.get(self.column, self.column)
        return f"{name} {'▼' if self.descending else '▲'}"


def metric_columns(runs: list[RunInfo], first: str | None = None, also: str | None = None) -> list[str]:
    """The metric keys to show: `first` (the best-run metric) when present, then the rest
    alphabetically with MLflow's system/ metrics last, at most MAX_METRIC_COLUMNS; `also` (the
    sort metric) is added if the cut left it out. The order does not follow the sort, so that
    cycling through the sort keys visits every column."""
    keys = {key for run in runs for key in run.metrics}
    wanted = [first] if first in keys else []
    rest = sorted(keys - set(wanted), key=lambda key: (key.startswith("system/"), key))
    shown = (wanted + rest)[:MAX_METRIC_COLUMNS]
    if also in keys and also not in shown:
        shown.append(also)
    return shown


def format_ago(ms: int | None, now: float) -> str:
    if ms is None:
        return "-"
    seconds = max(0.0, now - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def run_duration(run: RunInfo, now: float) -> float | None:
    if run.start_time is None:
        return None
    end = run.end_time / 1000 if run.end_time else (now if run.status == "RUNNING" else None)
    return None if end is None else max(0.0, end - run.start_time / 1000)


class MlflowRunsTable(DataTable):
    """Rebuilt on every load (a few hundred rows at most); the cursor stays on its run."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.runs: list[RunInfo] = []
        self.metrics: list[str] = []
        self.marked: list[str] = []  # run ids, in marking order (that order picks the colours)

    def show_runs(self, runs: list[RunInfo], metrics: list[str], sort: SortKey, now: float) -> None:
        current = self.current_run_id
        self.runs, self.metrics = runs, metrics
        ids = {run.run_id for run in runs}
        self.marked = [run_id for run_id in self.marked if run_id in ids]
        self.clear(columns=True)
        self.add_column(" ", key="mark", width=1)

        def label(name: str, column: str) -> Text:
            if sort.column != column:
                return Text(name)
            return Text.assemble(name, (" ▼" if sort.descending else " ▲", "bold"))

        self.add_column(label("Run", "name"), key="name")
        self.add_column("ID", key="id")
        self.add_column(label("Status", "status"), key="status")
        self.add_column(label("Started", "started"), key="started")
        self.add_column("Duration", key="duration")
        for key in metrics:
            self.add_column(label(key, f"metric:{key}"), key=f"metric:{key}")
        for run in runs:
            self.add_row(*self._cells(run, now), key=run.run_id)
        if current in ids:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def _cells(self, run: RunInfo, now: float) -> list:
        return [self._mark(run.run_id), Text(run.name or "-", overflow="ellipsis"), run.run_id[:8],
                MLFLOW_RUN.text(run.status, run.status.lower()),
                format_ago(run.start_time, now),
                Text(format_duration(run_duration(run, now)), justify="right"),
                *(Text(format_number(run.metrics.get(key)), justify="right") for key in self.metrics)]

    def _mark(self, run_id: str) -> Text:
        if run_id not in self.marked:
            return Text(" ")
        return Text("●", style=PALETTE[self.marked.index(run_id) % len(PALETTE)])

    @property
    def current_run_id(self) -> str | None:
        if not self.runs or not 0 <= self.cursor_row < len(self.runs) or self.row_count == 0:
            return None
        return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value

    @property
    def current_run(self) -> RunInfo | None:
        run_id = self.current_run_id
        return next((run for run in self.runs if run.run_id == run_id), None)

    def toggle_mark(self, run_id: str) -> None:
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        for marked in [run_id, *self.marked]:  # colours follow the order: repaint every mark
            self.update_cell(marked, "mark", self._mark(marked))

    def clear_marks(self) -> None:
        marked, self.marked = self.marked, []
        for run_id in marked:
            self.update_cell(run_id, "mark", self._mark(run_id))

    def select_run(self, run_id: str) -> bool:
        if run_id not in {run.run_id for run in self.runs}:
            return False
        self.move_cursor(row=self.get_row_index(run_id), animate=False)
        return True
