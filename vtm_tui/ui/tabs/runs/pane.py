"""Runs tab: every run in the store, live; the selected run's progress, charts and log tail.

The TUI is only a viewer: a worker thread polls the run store (which the detached supervisors
write), so runs launched from the CLI or another TUI show up here too, and running runs
"reattach" simply by being in the store when the app opens. A store that was rebuilt (it went
missing or was damaged) or cannot be read (a full disk) is said in one line above the table;
the tab keeps polling, and no other tab waits for it.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Static

from vtm_tui.core.formatting import display_path, format_duration, format_epoch, format_number
from vtm_tui.core.runs.progress import fraction_done
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.messages import CloneRequested, RunLaunched
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.screens.log_view import LogScreen
from vtm_tui.ui.sources import RUNS_LIMIT, Sources
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.runs.run_detail import RunDetail, run_duration, status_text
from vtm_tui.ui.widgets.live_table import LiveTable
from vtm_tui.ui.widgets.log_tail import LogTail

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Catalog

POLL_INTERVAL = 0.5  # seconds; the supervisors write progress at most twice a second
# Asking the engines whether active runs are still alive (processes, later a Slurm queue) is
# dearer than reading the store, so it happens on every tenth poll only.
RECONCILE_EVERY = 10
COPY = Binding.Group("Copy id", compact=True)
COLUMNS = [("id", "ID"), ("status", "Status"), ("task", "Task"), ("progress", "Progress"),
           ("epoch", "Epoch"), ("metric", "Metric"), ("duration", "Duration"),
           ("mlflow", "MLflow run"), ("where", "Where")]
PRIORITIES = {"mlflow": 5, "where": 4, "progress": 3, "duration": 2, "epoch": 1}  # who gives way first


def row_cells(run: RunRecord, metric: str | None, now: float) -> tuple:
    done = fraction_done(run.progress)
    value = run.progress.get(metric) if metric else None
    return (
        Text(str(run.id), justify="right"),
        status_text(run),
        run.task,
        Text("-" if done is None else f"{done:.0%}", justify="right"),
        Text(format_epoch(run.progress), justify="right"),
        f"{metric} {format_number(value)}" if value is not None else "-",
        Text(format_duration(run_duration(run, now)), justify="right"),
        (run.mlflow_run_id or "-")[:12],
        run.where,  # local, or the Slurm job id, state and node
    )


SYSTEM_SAMPLES = 120  # system-metric samples charted: the last two minutes at 1 s


class RunsPane(VtmPane):
    EAGER = True  # live from the start: a launched run is selected here, whatever tab is shown
    BODY = "#runs-table"
    BINDINGS = [
        Binding("c", "cancel_run", "Cancel", id="runs.cancel"),
        Binding("r", "rerun", "Rerun", id="runs.rerun"),
        Binding("e", "clone", "Clone", id="runs.clone", tooltip="Clone into the Launcher form to edit"),
        Binding("l", "open_log", "Log", id="runs.log", tooltip="Full-screen log with search"),
        Binding("y", "copy_id", "Copy run id", id="runs.copy_id", group=COPY),
        Binding("m", "copy_mlflow_id", "Copy MLflow run id", id="runs.copy_mlflow_id", group=COPY),
    ]

    @dataclass
    class Polled(Message):
        """One snapshot of the store; a newer one supersedes any still queued."""
        runs: list[RunRecord]
        chart_key: tuple | None  # which (run, progress) the points belong to
        points: list[dict] | None  # None: the charted run's points have not changed
        system: list[dict] | None = None  # its system-metric samples (the last SYSTEM_SAMPLES)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsPane.Polled)

    @dataclass
    class StoreNote(Message):
        """What to say about the store in the tab's note line: a repair notice (kept), a failure
        to read it (until a poll works again), or None (the failure is over)."""
        text: str | None
        failure: bool = False

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("Runs", "runs", settings, sources)
        self._runs: dict[int, RunRecord] = {}
        self._metrics: dict[str, str | None] = {}  # task -> its key metric (catalog mlflow.metric)
        self.selected_id: int | None = None  # the run whose card and log are shown
        self._pending_select: int | None = None
        self.charted: tuple | None = None  # read by the poll thread: which (run, progress) the charts show
        self._wake = threading.Event()
        self._notice: str | None = None  # the last repair notice of the store, kept on screen

    def compose(self) -> ComposeResult:
        table = LiveTable(COLUMNS, PRIORITIES, id="runs-table")
        empty = Static("No runs yet. Launch one from the Launcher tab (1), or from a shell with "
                       "`vtm launch TASK`: it shows up here.", id="runs-empty")
        note = Static("", id="runs-note", markup=False)
        bottom = Horizontal(RunDetail(id="run-detail"), LogTail(id="run-log"), id="run-bottom")
        # Mounted just after the first frame: the tab is hidden at start, and its widgets'
        # styles would otherwise be parsed and applied before anything is on screen.
        yield Lazy(Vertical(note, table, empty, bottom, id="runs-body"))

    @property
    def table(self) -> LiveTable:
        return self.query_one("#runs-table", LiveTable)

    @property
    def run_ids(self) -> list[int]:
        """The runs in the table, top to bottom."""
        return [int(key) for key in self.table.keys] if self.built else []

    def on_mount(self) -> None:
        self.add_class("-empty")

    def load(self) -> None:
        self._poll()

    def on_unmount(self) -> None:
        self._wake.set()

    def default_focus(self) -> Widget:
        return self.table

    def set_catalog(self, catalog: Catalog) -> None:
        self._metrics = {task.task_type: task.mlflow.metric for task in catalog.tasks}
        self._wake.set()

    def select_run(self, run_id: int) -> None:
        """Select this run as soon as the table has it (a new run may not be polled yet)."""
        self._pending_select = run_id
        if run_id in self.run_ids:
            self._move_cursor(run_id)
        self._wake.set()

    # -- polling ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="runs-poll")
    def _poll(self) -> None:
        store = None
        polls = 0
        while True:
            self._wake.clear()
            try:
                store = store or RunStore(self.settings.runs_db)  # opening may repair it, or fail
                if polls % RECONCILE_EVERY == 0:
                    runs = self.sources.list_runs(self.settings)
                else:
                    runs = store.list(RUNS_LIMIT)
                polls += 1
                key = points = system = None
                selected = self.selected_id if self._pending_select is None else self._pending_select
                run = next((run for run in runs if run.id == selected), None)
                if run is not None:
                    system = store.system_samples(run.id, SYSTEM_SAMPLES)
                    key = (run.id, run.status, json.dumps(run.progress, sort_keys=True),
                           system[-1]["time"] if system else None)
                    if key != self.charted:
                        points = store.points(run.id)
                for notice in store.take_notices():
                    self.post_message(self.StoreNote(notice))
                self.post_message(self.Polled(runs, key, points, system))
            except Exception as exc:  # e.g. a full disk or a locked store: say so once, keep trying
                if self._poll_failure != error_text(exc):
                    self.post_message(self.StoreNote(f"Cannot read the run store: {error_text(exc)}", failure=True))
                self.report_poll_failure("Cannot read the run store", exc)
            else:
                if self._poll_failure is not None:
                    self.post_message(self.StoreNote(None, failure=True))
                self.report_poll_failure("Cannot read the run store", None)
            if not pause(POLL_INTERVAL, self._wake):
                return

    def on_runs_pane_store_note(self, message: StoreNote) -> None:
        if not message.failure and message.text:
            self._notice = message.text
            self.notify(message.text, title="Run store", severity="warning", markup=False)
        text = message.text if message.failure and message.text else self._notice
        failing = message.failure and bool(message.text)

        def show() -> None:
            note = self.query_one("#runs-note", Static)
            note.update(text or "")
            note.set_class(bool(text), "-shown")
            note.set_class(failing, "-failure")
            self.mark_ready()  # what could be read is on screen, or why not
        self.when_built(show)

    async def on_runs_pane_polled(self, message: Polled) -> None:
        self._runs = {run.id: run for run in message.runs}
        self.set_class(not message.runs, "-empty")
        self._update_table(message.runs)
        self.mark_ready()
        run = self._runs.get(self.selected_id) if self.selected_id is not None else None
        if run is None:
            return
        self.query_one(RunDetail).show_run(run, self.sources.clock())
        if message.points is not None and message.chart_key and message.chart_key[0] == run.id:
            await self.query_one(RunDetail).show_points(run, message.points, message.system)
            self.charted = message.chart_key

    def _update_table(self, runs: list[RunRecord]) -> None:
        now = self.sources.clock()
        order = [run.id for run in runs]
        target = self._pending_select or self.selected_id  # a rebuild keeps the selection
        keep = str(target if target in order else order[0]) if order else None
        if self.table.show_rows({str(run.id): row_cells(run, self._metrics.get(run.task), now) for run in runs},
                                keep) and keep is not None:
            self._select(int(keep))

    def _move_cursor(self, run_id: int) -> None:
        self.table.move_to(str(run_id))
        self._select(run_id)

    @on(DataTable.RowHighlighted, "#runs-table")
    def _row_highlighted(self) -> None:
        # Read the cursor, not the event: a rebuild queues highlights that are already stale.
        key = self.table.current_key
        if key is not None:
            self._select(int(key))

    @on(DataTable.RowSelected, "#runs-table")
    def _row_chosen(self) -> None:
        self.action_open_log()  # enter on a run: its full log

    def _select(self, run_id: int) -> None:
        if run_id == self._pending_select:
            self._pending_select = None
        run = self._runs.get(run_id)
        if run is None:
            return
        if run_id != self.selected_id:
            self.selected_id = run_id
            self.charted = None
            self._wake.set()  # fetch its chart points now
        self.query_one(RunDetail).show_run(run, self.sources.clock())
        log = self.query_one("#run-log", LogTail)
        log.border_title = f"log · {display_path(run.log_path, self.settings.workdir)}"
        log.follow(run.log_path)

    # -- actions ---------------------------------------------------------------------------

    def _current(self) -> RunRecord | None:
        run = self._runs.get(self.selected_id) if self.selected_id is not None else None
        if run is None:
            self.notify("No run selected", severity="warning")
        return run

    def action_cancel_run(self) -> None:
        run = self._current()
        if run is None:
            return
        if not run.active:
            self.notify(f"Run {run.id} is already {run.status}")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._cancel(run.id)

        self.app.push_screen(ConfirmScreen(
            f"Cancel run {run.id} ({run.task})?\nIts processes get SIGINT, then SIGTERM, then SIGKILL.",
            yes="Cancel run"), answered)

    @work(thread=True, group="run-actions")
    def _cancel(self, run_id: int) -> None:
        from vtm_tui.core.runs.lifecycle import cancel

        try:
            cancel(self.settings, run_id)
        except Exception as exc:
            self.report_failure(exc, "Cancel failed")
            return
        self.notify(f"Cancel requested for run {run_id}")
        self._wake.set()

    def action_rerun(self) -> None:
        run = self._current()
        if run is not None:
            self.notify(f"Relaunching run {run.id}…")
            self._rerun(run.id)

    @work(thread=True, group="run-actions")
    def _rerun(self, run_id: int) -> None:
        from vtm_tui.core.runs.lifecycle import rerun

        try:
            run = rerun(self.settings, run_id)
        except Exception as exc:
            self.report_failure(exc, "Rerun failed")
            return
        self.post_message(RunLaunched(run))

    def action_clone(self) -> None:
        run = self._current()
        if run is not None:
            self.post_message(CloneRequested(run))

    def action_open_log(self) -> None:
        run = self._current()
        if run is not None:
            title = f"Run {run.id} · {run.task} · {display_path(run.log_path, self.settings.workdir)}"
            self.app.push_screen(LogScreen(title, run.log_path))

    def action_copy_id(self) -> None:
        run = self._current()
        if run is not None:
            self.app.copy_to_clipboard(str(run.id))
            self.notify(f"Copied run id {run.id}")

    def action_copy_mlflow_id(self) -> None:
        run = self._current()
        if run is None:
            return
        if not run.mlflow_run_id:
            self.notify(f"Run {run.id} has no MLflow run (yet)", severity="warning")
            return
        self.app.copy_to_clipboard(run.mlflow_run_id)
        self.notify(f"Copied MLflow run id {run.mlflow_run_id}", markup=False)
