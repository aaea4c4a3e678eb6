"""MLflow Ops tab: experiments, their runs (filtered and sorted by MLflow), the metric history
of the selected or marked runs, the best run by a metric and its registration, and TensorBoard
import.

Every MLflow call runs in a thread worker and answers with a message; a tracking server that
cannot be reached becomes the tab's status line, never a frozen screen. Nothing connects until
the tab is first shown: importing mlflow is not free, and the other tabs should not wait for it.
The tab never starts vtm's embedded server just by being looked at (a TensorBoard import does,
as a launch does).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.lazy import Lazy
from textual.message import Message
from textual.widgets import DataTable, Input, Label, OptionList, Static, TabPane
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.tabs.mlflow_ops.best_card import BestRunCard, TaskDefaults
from vtm_tui.ui.tabs.mlflow_ops.history_chart import MAX_SERIES, PALETTE, HistoryCharts, Series
from vtm_tui.ui.tabs.mlflow_ops.import_card import TbImportCard
from vtm_tui.ui.tabs.mlflow_ops.runs_table import MlflowRunsTable, SortKey, metric_columns
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.tracking.client import ExperimentInfo, RunInfo, Tracking

RUNS_LIMIT = 500  # rows asked of MLflow; the sort and filter apply to every run before the cut
CHART_METRICS = 6  # metric histories fetched and charted per run (the first metric columns)
CHART_DELAY = 0.15  # seconds; scrolling through the table fetches only where the cursor rests
NARROW = 100  # columns; below this the chart and the cards stack instead of sitting side by side
SORT = Binding.Group("Sort", compact=True)
BEST = Binding.Group("Best run", compact=True)
IMPORT = Binding.Group("TB import", compact=True)
TASK_TAG = "vtm.task_type"  # set by vtm's training helper: which catalog task made the run


def open_tracking(settings: Settings, sources: Sources) -> Tracking:
    """The Tracking the tab reads from: a `tracking` source when one is pinned (demo, tests),
    else MLFLOW_TRACKING_URI, else vtm's embedded server where it runs, without starting it."""
    pinned = getattr(sources, "tracking", None)
    if pinned is not None:
        return pinned(settings)
    from vtm_tui.core.tracking.client import Tracking

    uri = settings.tracking_uri
    if not uri:
        state = sources.server_status(settings)
        uri = state.uri if state.state == "up" else settings.effective_tracking_uri
    return Tracking(uri)


def _unreachable(exc: BaseException) -> bool:
    from vtm_tui.core.tracking.client import TrackingUnavailable

    return isinstance(exc, TrackingUnavailable)


class MlflowOpsPane(TabPane):
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
    class Failed(Message):
        """An MLflow call went wrong; `unreachable` when the server or store did not answer."""
        what: str  # connect, runs, history, best, register
        uri: str
        error: str
        unreachable: bool

    @dataclass
    class RunsLoaded(Message):
        seq: int
        runs: list[RunInfo]

    @dataclass
    class HistoriesLoaded(Message):
        histories: dict[tuple[str, str], list[tuple[float, float]]]

    @dataclass
    class TasksRead(Message):
        tasks: list[TaskDefaults]

    @dataclass
    class BestPicked(Message):
        best: Any  # tracking_best.BestRun

    @dataclass
    class Registered(Message):
        registration: Any  # tracking_register.Registration

    @dataclass
    class ImportProgress(Message):
        done: int
        total: int
        elapsed: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, MlflowOpsPane.ImportProgress)

    @dataclass
    class ImportFinished(Message):
        report: Any  # tb_import.ImportReport
        lines: list[str] = field(default_factory=list)
        error: str | None = None

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("MLflow Ops", id="mlflow-ops")
        self.tab_title = "MLflow Ops"
        self.settings, self.sources = settings, sources
        self._tracking: Tracking | None = None
        self._started = False
        self._connect_seq = 0
        self._runs_seq = 0
        self._experiments: list[ExperimentInfo] = []
        self.experiment: ExperimentInfo | None = None
        self.runs_filter = ""
        self.sort = SortKey()
        self.runs: list[RunInfo] = []
        self._histories: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._chart_wanted: tuple | None = None
        self._draw_pending = False
        self._import_cancel: threading.Event | None = None
        self.unreachable: str | None = None

    def compose(self) -> ComposeResult:
        yield TextLine(id="mlops-status")
        experiments = Vertical(Label("Experiments", classes="mlops-heading"),
                               OptionList(id="mlops-experiments"), id="mlops-exp-side")
        filter_input = Input(placeholder="MLflow filter, e.g. metrics.val_accuracy > 0.8 and "
                             "params.learning_rate = '0.001' (enter applies)",
                             compact=True, id="mlops-filter")
        runs = Vertical(filter_input, TextLine(id="mlops-runs-info"), MlflowRunsTable(id="mlops-runs"),
                        id="mlops-runs-side")
        message = Static(id="mlops-message")
        chart = HistoryCharts(id="mlops-chart")
        chart.border_title = "Metric history"
        best = BestRunCard(id="mlops-best")
        best.border_title = "Best run"
        tb_card = TbImportCard(self.settings.experiment_name, id="mlops-tb")
        tb_card.border_title = "TensorBoard import"
        bottom = Horizontal(chart, VerticalScroll(best, tb_card, id="mlops-cards"), id="mlops-bottom")
        # Mounted just after the first frame, as in the Runs tab: this tab is hidden at start.
        yield Lazy(VerticalScroll(Horizontal(experiments, runs, id="mlops-top"), message, bottom,
                                  id="mlops-body"))

    @property
    def ready(self) -> bool:
        return bool(self.query("#mlops-runs"))

    @property
    def table(self) -> MlflowRunsTable:
        return self.query_one("#mlops-runs", MlflowRunsTable)

    @property
    def best_card(self) -> BestRunCard:
        return self.query_one(BestRunCard)

    @property
    def tb_card(self) -> TbImportCard:
        return self.query_one(TbImportCard)

    def on_mount(self) -> None:
        self._status(Text.assemble(("MLflow ", "bold"), ("not connected yet", "dim")))

    def on_show(self) -> None:
        if not self._started:
            self._started = True
            self.call_after_refresh(self._start)

    def _start(self) -> None:
        if not self.ready:
            self.call_after_refresh(self._start)
            return
        self._read_catalog()
        self._connect(self.settings.experiment_name)

    def on_unmount(self) -> None:
        if self._import_cancel is not None:
            self._import_cancel.set()  # the import resumes next time; the app must not wait for it

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def focus_default(self) -> None:
        if not self.ready:
            self.call_after_refresh(self.focus_default)
        elif self.unreachable is not None:
            self.query_one("#mlops-body").focus()  # the table is hidden; the tab's keys still work
        else:
            self.table.focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_import":
            return True if self._import_cancel is not None else None  # shown, dimmed when idle
        return True

    # -- status ------------------------------------------------------------------------------

    def _status(self, text: Text) -> None:
        self.query_one("#mlops-status", TextLine).update(text)

    def _show_unreachable(self, uri: str, error: str, state: str = "unreachable") -> None:
        """The server or store did not answer (or, state "error", could not even be asked):
        the status line says so, the body explains; everything else waits for ctrl+r."""
        self.unreachable = error
        self.add_class("-unreachable")
        self._status(Text.assemble((f"MLflow {state} at ", "bold red"), (uri, "bold red"),
                                   ("  ctrl+r retries", "dim")))
        self.query_one("#mlops-message", Static).update(Text.assemble(
            (f"MLflow {state} at {uri}\n\n", "bold"), (error, "red"),
            "\n\nStart the server (`vtm mlflow up`, or launch a run), or point MLFLOW_TRACKING_URI "
            "at one, then press ctrl+r."))
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
        count = len(self._experiments)
        self._status(Text.assemble(("MLflow ", "bold"), ("● ", "bold green"), uri,
                                   f" · {count} experiment{'s' if count != 1 else ''}"))

    def on_mlflow_ops_pane_failed(self, message: Failed) -> None:
        if message.unreachable:
            self._show_unreachable(message.uri, message.error)
        elif message.what == "connect":
            self._show_unreachable(message.uri, message.error, "error")
        if message.what == "runs":
            self._runs_info(Text(message.error, style="red"))
            self.query_one("#mlops-filter", Input).set_class(not message.unreachable, "-invalid")
        elif message.what == "best":
            self.best_card.show_error(message.error)
        elif message.what == "register":
            self.best_card.show_error(message.error)
            self.notify(message.error, title="Register failed", severity="error", markup=False)
        elif message.what == "history":
            self.call_later(self.query_one(HistoryCharts).show, {}, message.error)

    def _failed(self, what: str, exc: BaseException) -> None:
        """From a worker thread: report an MLflow failure to the tab."""
        tracking = self._tracking
        uri = tracking.display_uri if tracking is not None else self.settings.effective_tracking_uri
        self.post_message(self.Failed(what, uri, error_text(exc), _unreachable(exc)))

    # -- connecting and experiments ----------------------------------------------------------

    def _tracking_now(self) -> Tracking:
        if self._tracking is None:
            self._tracking = open_tracking(self.settings, self.sources)
        return self._tracking

    def _connect(self, select: str | None = None) -> None:
        self._connect_seq += 1
        uri = self._tracking.display_uri if self._tracking else self.settings.effective_tracking_uri
        if self.unreachable is None:
            self._status(Text.assemble(("MLflow ", "bold"), ("● connecting ", "bold yellow"), uri))
        else:
            self._status(Text.assemble(("MLflow unreachable at ", "bold red"), (uri, "bold red"),
                                       ("  retrying…", "yellow")))
        self._list_experiments(self._connect_seq, select)

    @work(thread=True, exclusive=True, group="mlops-connect")
    def _list_experiments(self, seq: int, select: str | None) -> None:
        try:
            tracking = self._tracking_now()
            experiments = tracking.experiments()
        except Exception as exc:
            self._failed("connect", exc)
            return
        self.post_message(self.Connected(seq, tracking.display_uri, experiments, select))

    def on_mlflow_ops_pane_connected(self, message: Connected) -> None:
        if message.seq != self._connect_seq:
            return
        self._experiments = message.experiments
        was_unreachable = self.unreachable is not None
        self._show_connected(message.uri)
        if was_unreachable and self.screen.focused is self.query_one("#mlops-body"):
            self.table.focus()
        names = [exp.name for exp in message.experiments]
        wanted = message.select if message.select in names else \
            self.experiment.name if self.experiment and self.experiment.name in names else \
            names[0] if names else None
        self.experiment = message.experiments[names.index(wanted)] if wanted else None
        listing = self.query_one("#mlops-experiments", OptionList)
        with listing.prevent(OptionList.OptionHighlighted):  # the list is set up, not browsed
            listing.clear_options()
            listing.add_options(Option(Text(exp.name, overflow="ellipsis"), id=exp.experiment_id)
                                for exp in message.experiments)
            if wanted:
                listing.highlighted = names.index(wanted)
        if self.experiment is None:
            self._runs_info(Text(f"No experiments at {message.uri} yet", style="dim"))
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
        self._runs_seq += 1
        self._runs_info(Text(f"loading the runs of {self.experiment.name}…", style="dim"))
        self._fetch_runs(self._runs_seq, self.experiment, self.runs_filter, self.sort)

    @work(thread=True, exclusive=True, group="mlops-runs")
    def _fetch_runs(self, seq: int, experiment: ExperimentInfo, runs_filter: str, sort: SortKey) -> None:
        try:
            runs = self._tracking_now().search_runs([experiment], filter=runs_filter or None,
                                                    order_by=sort.order_by(), max_results=RUNS_LIMIT)
        except Exception as exc:
            self._failed("runs", exc)
            return
        self.post_message(self.RunsLoaded(seq, runs))

    def on_mlflow_ops_pane_runs_loaded(self, message: RunsLoaded) -> None:
        if message.seq != self._runs_seq:
            return  # an older answer: another experiment, filter or order was asked for since
        self.runs = message.runs
        self.query_one("#mlops-filter", Input).remove_class("-invalid")
        self._suggest_task()
        self._show_table()

    def _show_table(self) -> None:
        metrics = metric_columns(self.runs, self.best_card.metric or None, self.sort.metric)
        self.table.show_runs(self.runs, metrics, self.sort, self.sources.clock())
        self._update_runs_info()
        self._update_chart()

    def _suggest_task(self) -> None:
        """The catalog task that made most of these runs gives the best-run card its defaults."""
        tasks = Counter(run.tags.get(TASK_TAG) for run in self.runs if run.tags.get(TASK_TAG))
        if tasks:
            self.best_card.suggest_task(tasks.most_common(1)[0][0])

    def _update_runs_info(self) -> None:
        count = len(self.runs)
        text = Text.assemble((f"{count} run{'s' if count != 1 else ''}", "bold"),
                             f"{' (the first ' + str(RUNS_LIMIT) + ')' if count >= RUNS_LIMIT else ''}"
                             f" · sorted by {self.sort.label()}")
        if self.runs_filter:
            text.append(" · filter ")
            text.append(self.runs_filter, "cyan")
        if self.table.marked:
            text.append(f" · {len(self.table.marked)} marked", "bold")
        self._runs_info(text)

    @on(Input.Submitted, "#mlops-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.runs_filter = event.value.strip()
        self._load_runs()
        self.table.focus()

    @on(DataTable.HeaderSelected, "#mlops-runs")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column not in ("name", "status", "started") and not column.startswith("metric:"):
            return
        if column == self.sort.column:
            self.sort = SortKey(column, not self.sort.descending)
        else:
            self.sort = SortKey(column, column not in ("name", "status"))
        self._load_runs()

    @on(DataTable.RowHighlighted, "#mlops-runs")
    def _run_highlighted(self) -> None:
        if not self.table.marked:
            self._update_chart()

    # -- chart -------------------------------------------------------------------------------

    def _charted_runs(self) -> list[tuple[RunInfo, str]]:
        """(run, colour): the marked runs in marking order, else the highlighted run."""
        by_id = {run.run_id: run for run in self.runs}
        if self.table.marked:
            return [(by_id[run_id], PALETTE[i % len(PALETTE)])
                    for i, run_id in enumerate(self.table.marked) if run_id in by_id]
        run = self.table.current_run
        return [(run, PALETTE[0])] if run is not None else []

    def _update_chart(self) -> None:
        charted = self._charted_runs()
        keys = self.table.metrics[:CHART_METRICS]
        wanted = (tuple(run.run_id for run, _ in charted), tuple(keys))
        self._chart_wanted = wanted
        missing = [(run.run_id, key) for run, _ in charted for key in keys
                   if key in run.metrics and (run.run_id, key) not in self._histories]
        if missing:
            self._fetch_histories(missing)
        else:
            self._schedule_draw()

    @work(thread=True, exclusive=True, group="mlops-history")
    def _fetch_histories(self, wanted: list[tuple[str, str]]) -> None:
        if not pause(CHART_DELAY):
            return
        found, worker = {}, get_current_worker()
        try:
            tracking = self._tracking_now()
            for run_id, key in wanted:
                if worker.is_cancelled:
                    return
                found[(run_id, key)] = [(p.step, p.value) for p in tracking.metric_history(run_id, key)]
        except Exception as exc:
            self._failed("history", exc)
            return
        self.post_message(self.HistoriesLoaded(found))

    def on_mlflow_ops_pane_histories_loaded(self, message: HistoriesLoaded) -> None:
        self._histories.update(message.histories)
        self._schedule_draw()

    def _schedule_draw(self) -> None:
        if not self._draw_pending:  # one redraw for a burst of marks and highlights
            self._draw_pending = True
            self.call_later(self._draw_chart)

    async def _draw_chart(self) -> None:
        self._draw_pending = False
        charted = self._charted_runs()
        keys = self.table.metrics[:CHART_METRICS]
        if (tuple(run.run_id for run, _ in charted), tuple(keys)) != self._chart_wanted:
            return  # the wanted picture changed meanwhile; its own fetch will draw it
        series: dict[str, list[Series]] = {}
        for key in keys:
            lines = [Series(run.name or run.run_id[:8], tuple(self._histories[(run.run_id, key)]), color)
                     for run, color in charted if (run.run_id, key) in self._histories]
            if lines:
                series[key] = lines
        chart = self.query_one(HistoryCharts)
        chart.border_title = ("Metric history · " + (f"{len(charted)} marked runs" if self.table.marked
                              else "highlighted run (space marks runs)"))
        if series != chart.charted or not chart.children:
            empty = "no metrics logged" if charted else "no run selected"
            await chart.show(series, empty)

    def action_mark(self) -> None:
        run = self.table.current_run if self.ready else None
        if run is None:
            return
        if run.run_id not in self.table.marked and len(self.table.marked) >= MAX_SERIES:
            self.notify(f"At most {MAX_SERIES} runs can be compared", severity="warning")
            return
        self.table.toggle_mark(run.run_id)
        self._update_runs_info()
        self._update_chart()

    def action_clear_marks(self) -> None:
        if self.ready and self.table.marked:
            self.table.clear_marks()
            self._update_runs_info()
            self._update_chart()

    # -- sort, filter, refresh ---------------------------------------------------------------

    def action_sort(self) -> None:
        if not self.ready or self.unreachable is not None:
            return
        columns = ["started", *(f"metric:{key}" for key in self.table.metrics), "name", "status"]
        following = columns[(columns.index(self.sort.column) + 1) % len(columns)] \
            if self.sort.column in columns else columns[0]
        self.sort = SortKey(following, following not in ("name", "status"))
        self._load_runs()

    def action_reverse_sort(self) -> None:
        if not self.ready or self.unreachable is not None:
            return
        self.sort = SortKey(self.sort.column, not self.sort.descending)
        self._load_runs()

    def action_focus_filter(self) -> None:
        if self.ready and self.unreachable is None:
            self.query_one("#mlops-filter", Input).focus()

    def action_refresh(self) -> None:
        if not self._started:
            return
        self._tracking = None  # the server may have moved (embedded server restarted elsewhere)
        self._histories.clear()
        self._read_catalog()
        self._connect(self.experiment.name if self.experiment else self.settings.experiment_name)

    # -- catalog defaults --------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="mlops-catalog")
    def _read_catalog(self) -> None:
        try:
            from vtm_tui.core.catalog.loader import load_catalog

            catalog = load_catalog(self.settings.catalog_path)
        except Exception:
            return  # the Launcher shows catalog errors; the card just offers no task defaults
        tasks = [TaskDefaults(task.task_type, task.mlflow.metric, task.mlflow.mode or "max",
                              task.mlflow.model_name, task.mlflow.artifact_path or "model")
                 for task in catalog.tasks]
        self.post_message(self.TasksRead(tasks))

    def on_mlflow_ops_pane_tasks_read(self, message: TasksRead) -> None:
        metric = self.best_card.metric
        self.best_card.set_tasks(message.tasks)
        self._suggest_task()
        if self.runs and self.best_card.metric != metric:
            self._show_table()  # the card's metric leads the metric columns

    # -- best run and registration -----------------------------------------------------------

    def action_pick_best(self) -> None:
        if self.ready and self._reachable():
            self.best_card.request_pick()

    @on(BestRunCard.PickRequested)
    def _pick_requested(self, message: BestRunCard.PickRequested) -> None:
        if self.experiment is None:
            self.best_card.show_error("No experiment selected")
            return
        self._pick(self.experiment.name, message.metric, message.mode, self.runs_filter)

    @work(thread=True, exclusive=True, group="mlops-best")
    def _pick(self, experiment: str, metric: str, mode: str, runs_filter: str) -> None:
        from vtm_tui.core.tracking.best import best_run

        try:
            best = best_run(self._tracking_now(), experiment, metric, mode, runs_filter or None)
        except Exception as exc:
            self._failed("best", exc)
            return
        self.post_message(self.BestPicked(best))

    def on_mlflow_ops_pane_best_picked(self, message: BestPicked) -> None:
        self.best_card.show_best(message.best)
        self.table.select_run(message.best.run.run_id)

    def action_register(self) -> None:
        if self.ready and self._reachable():
            self.best_card.request_register()

    @on(BestRunCard.RegisterRequested)
    def _register_requested(self, message: BestRunCard.RegisterRequested) -> None:
        self._register(message.run_id, message.model_name, message.alias, message.artifact_path)

    @work(thread=True, exclusive=True, group="mlops-register")
    def _register(self, run_id: str, model_name: str, alias: str | None, artifact_path: str) -> None:
        from vtm_tui.core.tracking.register import register_run

        try:
            registration = register_run(self._tracking_now(), run_id, model_name, artifact_path, alias)
        except Exception as exc:
            self._failed("register", exc)
            return
        self.post_message(self.Registered(registration))

    def on_mlflow_ops_pane_registered(self, message: Registered) -> None:
        self.best_card.show_registration(message.registration)
        self.notify(message.registration.summary(), title="Model registered", markup=False)

    # -- TensorBoard import ------------------------------------------------------------------

    def action_import_tb(self) -> None:
        if self.ready:  # an import may start vtm's embedded server: unreachable is no reason to refuse
            self.tb_card.request_start()

    def action_cancel_import(self) -> None:
        if self.ready:
            self.tb_card.request_cancel()

    @on(TbImportCard.StartRequested)
    def _import_requested(self, message: TbImportCard.StartRequested) -> None:
        log_dir = Path(message.log_dir).expanduser()
        if not log_dir.is_absolute():
            log_dir = self.settings.workdir / log_dir
        self._import_cancel = threading.Event()
        note = " (starting the MLflow server first if it is down)" if self.settings.embedded_tracking else ""
        self.tb_card.set_running(True, f"Importing {message.log_dir} into {message.experiment}…{note}")
        self.refresh_bindings()
        self._import(log_dir, message.experiment, message.run_name, self._import_cancel)

    @on(TbImportCard.CancelRequested)
    def _cancel_requested(self) -> None:
        if self._import_cancel is not None:
            self._import_cancel.set()

    @work(thread=True, exclusive=True, group="mlops-tb-import")
    def _import(self, log_dir: Path, experiment: str, run_name: str | None, cancel: threading.Event) -> None:
        from vtm_tui.core.tensorboard import format_report, import_tensorboard

        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            self.post_message(self.ImportProgress(done, total, time.monotonic() - started))

        try:
            report = import_tensorboard(log_dir, tracking_uri=self.settings.tracking_uri,
                                        experiment_name=experiment, run_name=run_name,
                                        on_progress=progress, cancel=cancel, settings=self.settings)
        except Exception as exc:
            self.post_message(self.ImportFinished(None, error=error_text(exc)))
            return
        self.post_message(self.ImportFinished(report, format_report(report)))

    def on_mlflow_ops_pane_import_progress(self, message: ImportProgress) -> None:
        if self._import_cancel is not None:
            self.tb_card.show_progress(message.done, message.total, message.elapsed)

    def on_mlflow_ops_pane_import_finished(self, message: ImportFinished) -> None:
        self._import_cancel = None
        self.refresh_bindings()
        if message.report is None:
            self.tb_card.show_error(message.error or "the import failed")
            return
        report = message.report
        self.tb_card.show_report(report)
        self.query_one("#tb-summary").scroll_visible(animate=False)
        severity = "warning" if report.problems or report.cancelled else "information"
        self.notify(message.lines[0] if message.lines else "TensorBoard import finished",
                    title="TensorBoard import", severity=severity, markup=False)
        self._tracking = None  # an embedded server may just have been started for the import
        self._histories.clear()
        self._connect(report.experiment_name)  # show what was imported
