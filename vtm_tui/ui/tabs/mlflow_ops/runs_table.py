"""The MLflow runs table: one row per run, a column per metric (latest value), marks for
comparing runs, and the sort order it asks MLflow for (`order_by`, so sorting and filtering
happen in the tracking store, over every run, not just the rows on screen)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from vtm_tui.core.formatting import format_age, format_duration, format_number
from vtm_tui.ui.status_styles import MLFLOW_RUN
from vtm_tui.ui.tabs.mlflow_ops.history_chart import PALETTE
from vtm_tui.ui.widgets.live_table import LiveTable

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

    def following(self, metrics: list[str]) -> SortKey:
        """The next column to sort by (`s` cycles through the columns); numbers and times
        start descending, names and statuses ascending."""
        columns = ["started", *(f"metric:{key}" for key in metrics), "name", "status"]
        column = columns[(columns.index(self.column) + 1) % len(columns)] if self.column in columns else columns[0]
        return SortKey(column, column not in ("name", "status"))

    def clicked(self, column: str) -> SortKey | None:
        """A click on this column's header: sort by it, or reverse it; None: not sortable."""
        if column not in ("name", "status", "started") and not column.startswith("metric:"):
            return None
        if column == self.column:
            return SortKey(column, not self.descending)
        return SortKey(column, column not in ("name", "status"))


def runs_summary(count: int, limit: int, sort: SortKey, runs_filter: str, marked: int, hidden: int = 0) -> Text:
    """The line above the table: how many runs, in which order, filtered how, how many marked,
    how many columns a wider terminal would show."""
    text = Text.assemble((f"{count} run{'s' if count != 1 else ''}", "bold"),
                         f"{' (the first ' + str(limit) + ')' if count >= limit else ''}"
                         f" · sorted by {sort.label()}")
    if runs_filter:
        text.append(" · filter ")
        text.append(runs_filter, "cyan")
    if marked:
        text.append(f" · {marked} marked", "bold")
    if hidden:
        text.append(f" · {hidden} more column{'s' if hidden != 1 else ''} when wider", "dim")
    return text


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


def run_duration(run: RunInfo, now: float) -> float | None:
    if run.start_time is None:
        return None
    end = run.end_time / 1000 if run.end_time else (now if run.status == "RUNNING" else None)
    return None if end is None else max(0.0, end - run.start_time / 1000)


class MlflowRunsTable(LiveTable):
    """Rebuilt on every load, columns too (a few hundred rows at most); the cursor stays on its run."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runs: list[RunInfo] = []
        self.metrics: list[str] = []
        self.marked: list[str] = []  # run ids, in marking order (that order picks the colours)

    def show_runs(self, runs: list[RunInfo], metrics: list[str], sort: SortKey, now: float) -> None:
        current = self.current_run_id
        self.runs, self.metrics = runs, metrics
        ids = {run.run_id for run in runs}
        self.marked = [run_id for run_id in self.marked if run_id in ids]
        def label(name: str, column: str) -> Text:
            if sort.column != column:
                return Text(name)
            return Text.assemble(name, (" ▼" if sort.descending else " ▲", "bold"))

        columns = [("mark", " "), ("name", label("Run", "name")), ("id", "ID"), ("status", label("Status", "status")),
                   ("started", label("Started", "started")), ("duration", "Duration"),
                   *((f"metric:{key}", label(key, f"metric:{key}")) for key in metrics)]
        # too narrow for all: the other metrics give way first, then the ID, start, duration, status
        priorities = {"id": 4, "started": 3, "duration": 2, "status": 1,
                      **{f"metric:{key}": 5 for key in metrics[1:] if f"metric:{key}" != sort.column}}
        self.set_columns(columns, priorities, widths={"mark": 1})
        self.show_rows({run.run_id: self._cells(run, now) for run in runs}, keep=current)

    def _cells(self, run: RunInfo, now: float) -> list:
        return [self._mark(run.run_id), Text(run.name or "-", overflow="ellipsis"), run.run_id[:8],
                MLFLOW_RUN.text(run.status, run.status.lower()),
                format_age(None if run.start_time is None else now - run.start_time / 1000, compact=True),
                Text(format_duration(run_duration(run, now)), justify="right"),
                *(Text(format_number(run.metrics.get(key)), justify="right") for key in self.metrics)]

    def _mark(self, run_id: str) -> Text:
        if run_id not in self.marked:
            return Text(" ")
        return Text("●", style=PALETTE[self.marked.index(run_id) % len(PALETTE)])

    @property
    def current_run_id(self) -> str | None:
        return self.current_key

    @property
    def current_run(self) -> RunInfo | None:
        run_id = self.current_run_id
        return next((run for run in self.runs if run.run_id == run_id), None)

    def charted_runs(self) -> list[tuple[RunInfo, str]]:
        """(run, colour) to chart: the marked runs in marking order, else the highlighted run."""
        by_id = {run.run_id: run for run in self.runs}
        if self.marked:
            return [(by_id[run_id], PALETTE[i % len(PALETTE)])
                    for i, run_id in enumerate(self.marked) if run_id in by_id]
        run = self.current_run
        return [(run, PALETTE[0])] if run is not None else []

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
        return self.move_to(run_id)
