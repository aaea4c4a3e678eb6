"""MLflow Ops tab: experiments, their runs (filtered and sorted by MLflow), the metric history
of the selected or marked runs, the best run by a metric and its registration, and TensorBoard
import.

Every MLflow call runs in a thread worker (the tab's, or its cards': the chart, the best-run
card, the import card) and answers with a message; a tracking server that cannot be reached
becomes the tab's status line, never a frozen screen. Nothing connects until the tab is first
shown: importing mlflow is not free, and the other tabs should not wait for it. The tab never
starts vtm's embedded server just by being looked at (a TensorBoard import does, as a launch
does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.lazy import Lazy
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, OptionList, Static

from vtm_tui.settings import Settings
from vtm_tui.ui.latest import Latest
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.mlflow_ops.best_card import BestRunCard, TaskDefaults, task_defaults
from vtm_tui.ui.tabs.mlflow_ops.experiment_list import ExperimentList, choose_experiment
from vtm_tui.ui.tabs.mlflow_ops.history_chart import MAX_SERIES, HistoryCharts
from vtm_tui.ui.tabs.mlflow_ops.import_card import TbImportCard
from vtm_tui.ui.tabs.mlflow_ops.runs_table import MlflowRunsTable, SortKey, metric_columns, runs_summary
from vtm_tui.ui.tabs.mlflow_ops.status_line import TrackingStatus, unreachable_text
from vtm_tui.ui.tabs.mlflow_ops.tracking_link import TrackingFailed, TrackingLink
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Catalog
    from vtm_tui.core.tracking.client import ExperimentInfo, RunInfo

RUNS_LIMIT = 500  # rows asked of MLflow; the sort and filter apply to every run before the cut
CHART_METRICS = 6  # metric histories fetched and charted per run (the first metric columns)
NARROW = 100  # columns; below this the chart and the cards stack instead of sitting side by side
SORT = Binding.Group("Sort", compact=True)
BEST = Binding.Group("Best run", compact=True)
IMPORT = Binding.Group("TB import", compact=True)


class MlflowOpsPane(VtmPane):
    BODY = "#mlops-runs"
    BINDINGS = [
        Binding("ctrl+r", "refresh", "Refresh", id="mlflow_ops.refresh"),
        Binding("slash", "focus_filter", "Filter", id="mlflow_ops.filter",
                tooltip="Type an MLflow filter expression; enter applies it"),
        Binding("s", "sort", "Sort", id="mlflow_ops.sort", group=SORT,
                tooltip="Sort by the next column (or click a column header)"),
        Binding("S", "reverse_sort", "Reverse", id="mlflow_ops.reverse", group=SORT),
        Binding("space", "mark", "Mark", id="mlflow_ops.mark",
                tooltip="Mark the run to compare its metric history with other marked runs"),
        Binding("u", "clear_marks", "Unmark", id="mlflow_ops.unmark", tooltip="Unmark every run"),
        Binding("b", "pick_best", "Pick", id="mlflow_ops.best", group=BEST,
                tooltip="The best run by the card's metric and mode, among the filtered runs"),
        Binding("g", "register", "Register", id="mlflow_ops.register", group=BEST,
                tooltip="Register the picked run's model under the card's name and alias"),
        Binding("i", "import_tb", "Import", id="mlflow_ops.import", group=IMPORT),
        Binding("x", "cancel_import", "Cancel", id="mlflow_ops.cancel_import", group=IMPORT),
    ]

    # -- messages from the workers -----------------------------------------------------------

    @dataclass
    class Connected(Message):
        seq: int
        uri: str
        experiments: list[ExperimentInfo]
        select: str | None  # experiment name to show, if it exists

    @dataclass
    class RunsLoaded(Message):
        seq: int
        runs: list[RunInfo]

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("MLflow Ops", "mlflow-ops", settings, sources)
        self.link = TrackingLink(settings, sources.tracking)
        self._connects, self._runs_reads = Latest(), Latest()
        self._experiments: list[ExperimentInfo] = []
        self.experiment: ExperimentInfo | None = None
        self.runs_filter = ""
        self.sort = SortKey()
        self.runs: list[RunInfo] = []
        self.unreachable: str | None = None

    def compose(self) -> ComposeResult:
        yield TrackingStatus(id="mlops-status")
        experiments = Vertical(Label("Experiments", classes="mlops-heading"),
                               ExperimentList(id="mlops-experiments"), id="mlops-exp-side")
        filter_input = Input(placeholder="MLflow filter, e.g. metrics.val_accuracy > 0.8 and "
                             "params.learning_rate = '0.001' (enter applies)",
                             compact=True, id="mlops-filter")
        runs = Vertical(filter_input, TextLine(id="mlops-runs-info"), MlflowRunsTable(id="mlops-runs"),
                        id="mlops-runs-side")
        message = Static(id="mlops-message")
        chart = HistoryCharts(self.link, id="mlops-chart")
        chart.border_title = "Metric history"
        best = BestRunCard(self.link, self._pick_scope, id="mlops-best")
        best.border_title = "Best run"
        tb_card = TbImportCard(self.settings, id="mlops-tb")
        tb_card.border_title = "TensorBoard import"
        bottom = Horizontal(chart, VerticalScroll(best, tb_card, id="mlops-cards"), id="mlops-bottom")
        # Mounted just after the first frame, as in the Runs tab: this tab is hidden at start.
        yield Lazy(VerticalScroll(Horizontal(experiments, runs, id="mlops-top"), message, bottom,
                                  id="mlops-body"))

    @property
    def table(self) -> MlflowRunsTable:
        return self.query_one("#mlops-runs", MlflowRunsTable)

    @property
    def best_card(self) -> BestRunCard:
        return self.query_one(BestRunCard)

    @property
    def tb_card(self) -> TbImportCard:
        return self.query_one(TbImportCard)

    @property
    def chart(self) -> HistoryCharts:
        return self.query_one(HistoryCharts)

    @property
    def status(self) -> TrackingStatus:
        return self.query_one(TrackingStatus)

    def on_mount(self) -> None:
        self.status.not_connected()

    def load(self) -> None:
        self._connect(self.settings.experiment_name)

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def default_focus(self) -> Widget:
        if self.unreachable is not None:
            return self.query_one("#mlops-body")  # the table is hidden; the tab's keys still work
        return self.table

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_import":
            return True if self.built and self.tb_card.busy else None  # shown, dimmed when idle
        return True

    # -- status ------------------------------------------------------------------------------

    def _show_unreachable(self, uri: str, error: str, state: str = "unreachable") -> None:
        """The server or store did not answer (or, state "error", could not even be asked):
        the status line says so, the body explains; everything else waits for ctrl+r."""
        self.unreachable = error
        self.add_class("-unreachable")
        self.status.failed(uri, state)
        self.query_one("#mlops-message", Static).update(unreachable_text(uri, error, state))
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors:
            self.focus_default()

    def _reachable(self) -> bool:
        """For actions that need MLflow: a short notice instead, while it cannot be reached."""
        if self.unreachable is None:
            return True
        self.notify("MLflow is unreachable; ctrl+r retries", severity="warning")
        return False

    def _show_connected(self, uri: str) -> None:
        self.unreachable = None
        self.remove_class("-unreachable")
        self.status.connected(uri, len(self._experiments))

    def on_tracking_failed(self, message: TrackingFailed) -> None:
        """An MLflow call of the tab or of a card failed (the card has shown it where it belongs)."""
        if message.unreachable:
            self._show_unreachable(message.uri, message.error)
        elif message.what == "connect":
            self._show_unreachable(message.uri, message.error, "error")
        if message.what == "runs":
            self._runs_info(Text(message.error, style="red"))
            self.query_one("#mlops-filter", Input).set_class(not message.unreachable, "-invalid")
        if message.what in ("connect", "runs"):
            self.mark_ready()

    # -- connecting and experiments ----------------------------------------------------------

    def _connect(self, select: str | None = None) -> None:
        self.status.connecting(self.link.uri, retrying=self.unreachable is not None)
        self._list_experiments(self._connects.new(), select)

    @work(thread=True, exclusive=True, group="mlops-connect")
    def _list_experiments(self, seq: int, select: str | None) -> None:
        try:
            tracking = self.link.get()
            experiments = tracking.experiments()
        except Exception as exc:
            self.post_message(self.link.failed("connect", exc))
            return
        self.post_message(self.Connected(seq, tracking.display_uri, experiments, select))

    def on_mlflow_ops_pane_connected(self, message: Connected) -> None:
        if not self._connects.is_current(message.seq):
            return
        self._experiments = message.experiments
        was_unreachable = self.unreachable is not None
        self._show_connected(message.uri)
        if was_unreachable and self.screen.focused is self.query_one("#mlops-body"):
            self.table.focus()
        self.experiment = choose_experiment(message.experiments, message.select, self.experiment)
        self.query_one(ExperimentList).show(message.experiments, self.experiment)
        if self.experiment is None:
            self._runs_info(Text(f"No experiments at {message.uri} yet", style="dim"))
            self.mark_ready()
            return
        self._load_runs()

    @on(OptionList.OptionHighlighted, "#mlops-experiments")
    def _experiment_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        chosen = next((exp for exp in self._experiments if exp.experiment_id == event.option_id), None)
        if chosen is None or (self.experiment and chosen.experiment_id == self.experiment.experiment_id):
            return
        self.experiment = chosen
        self.best_card.clear_best()
        self.best_card.show_note(f"Pick ranks the runs of {chosen.name} that match the filter.")
        self._load_runs()

    @on(OptionList.OptionSelected, "#mlops-experiments")
    def _experiment_chosen(self) -> None:
        self.table.focus()

    # -- runs --------------------------------------------------------------------------------

    def _runs_info(self, text: Text) -> None:
        self.query_one("#mlops-runs-info", TextLine).update(text)

    def _load_runs(self) -> None:
        if self.experiment is None:
            return
        ticket = self._runs_reads.new()
        self._runs_info(Text(f"loading the runs of {self.experiment.name}…", style="dim"))
        self._fetch_runs(ticket, self.experiment, self.runs_filter, self.sort)

    @work(thread=True, exclusive=True, group="mlops-runs")
    def _fetch_runs(self, seq: int, experiment: ExperimentInfo, runs_filter: str, sort: SortKey) -> None:
        try:
            runs = self.link.get().search_runs([experiment], filter=runs_filter or None,
                                               order_by=sort.order_by(), max_results=RUNS_LIMIT)
        except Exception as exc:
            self.post_message(self.link.failed("runs", exc))
            return
        self.post_message(self.RunsLoaded(seq, runs))

    def on_mlflow_ops_pane_runs_loaded(self, message: RunsLoaded) -> None:
        if not self._runs_reads.is_current(message.seq):
            return  # an older answer: another experiment, filter or order was asked for since
        self.runs = message.runs
        self.query_one("#mlops-filter", Input).remove_class("-invalid")
        self.best_card.suggest_for(self.runs)
        self._show_table()
        self.mark_ready()

    def _show_table(self) -> None:
        metrics = metric_columns(self.runs, self.best_card.metric or None, self.sort.metric)
        self.table.show_runs(self.runs, metrics, self.sort, self.sources.clock())
        self._update_runs_info()
        self._update_chart()

    def _update_runs_info(self) -> None:
        self._runs_info(runs_summary(len(self.runs), RUNS_LIMIT, self.sort, self.runs_filter, len(self.table.marked),
                                    len(self.table.hidden_columns)))

    @on(Input.Submitted, "#mlops-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.runs_filter = event.value.strip()
        self._load_runs()
        self.table.focus()

    @on(DataTable.HeaderSelected, "#mlops-runs")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        sort = self.sort.clicked(str(event.column_key.value))
        if sort is not None:
            self.sort = sort
            self._load_runs()

    @on(DataTable.RowHighlighted, "#mlops-runs")
    def _run_highlighted(self) -> None:
        if not self.table.marked:
            self._update_chart()

    # -- chart (the chart card fetches what it lacks) ----------------------------------------

    def _update_chart(self) -> None:
        self.chart.chart(self.table.charted_runs(), self.table.metrics[:CHART_METRICS], bool(self.table.marked))

    def action_mark(self) -> None:
        run = self.table.current_run if self.built else None
        if run is None:
            return
        if run.run_id not in self.table.marked and len(self.table.marked) >= MAX_SERIES:
            self.notify(f"At most {MAX_SERIES} runs can be compared", severity="warning")
            return
        self.table.toggle_mark(run.run_id)
        self._update_runs_info()
        self._update_chart()

    def action_clear_marks(self) -> None:
        if self.built and self.table.marked:
            self.table.clear_marks()
            self._update_runs_info()
            self._update_chart()

    # -- sort, filter, refresh ---------------------------------------------------------------

    def action_sort(self) -> None:
        if not self.built or self.unreachable is not None:
            return
        self.sort = self.sort.following(self.table.metrics)
        self._load_runs()

    def action_reverse_sort(self) -> None:
        if not self.built or self.unreachable is not None:
            return
        self.sort = SortKey(self.sort.column, not self.sort.descending)
        self._load_runs()

    def action_focus_filter(self) -> None:
        if self.built and self.unreachable is None:
            self.query_one("#mlops-filter", Input).focus()

    def action_refresh(self) -> None:
        if not self.started:
            return
        self.link.reset()  # the server may have moved (embedded server restarted elsewhere)
        self.chart.forget()
        self._connect(self.experiment.name if self.experiment else self.settings.experiment_name)

    # -- catalog defaults --------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        tasks = task_defaults(catalog)
        self.when_built(lambda: self._set_tasks(tasks))

    def _set_tasks(self, tasks: list[TaskDefaults]) -> None:
        metric = self.best_card.metric
        self.best_card.set_tasks(tasks)
        self.best_card.suggest_for(self.runs)
        if self.runs and self.best_card.metric != metric:
            self._show_table()  # the card's metric leads the metric columns

    # -- best run and registration (the card runs them) --------------------------------------

    def _pick_scope(self) -> tuple[str | None, str]:
        return (self.experiment.name if self.experiment else None), self.runs_filter

    def action_pick_best(self) -> None:
        if self.built and self._reachable():
            self.best_card.request_pick()

    def on_best_run_card_best_picked(self, message: BestRunCard.BestPicked) -> None:
        self.best_card.show_best(message.best)
        self.table.select_run(message.best.run.run_id)

    def action_register(self) -> None:
        if self.built and self._reachable():
            self.best_card.request_register()

    # -- TensorBoard import (the card runs it) -----------------------------------------------

    def action_import_tb(self) -> None:
        if self.built:  # an import may start vtm's embedded server: unreachable is no reason to refuse
            self.tb_card.request_start()

    def action_cancel_import(self) -> None:
        if self.built:
            self.tb_card.request_cancel()

    def on_tb_import_card_import_finished(self, message: TbImportCard.ImportFinished) -> None:
        if message.report is None:
            return
        self.link.reset()  # an embedded server may just have been started for the import
        self.chart.forget()
        self._connect(message.report.experiment_name)  # show what was imported
