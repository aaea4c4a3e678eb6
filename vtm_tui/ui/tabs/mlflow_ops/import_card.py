"""The TensorBoard import card: a log directory, the target experiment and run name, start and
cancel, live progress while its worker imports, then the report.

The import runs in the card's own worker, cancelled with a threading.Event (it resumes next
time: points already in MLflow are skipped). Progress comes as coalescing `ImportProgress`
messages; `ImportFinished` bubbles up to the tab, which then shows the experiment imported into.
An import may start vtm's embedded server, as a launch does.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Static

from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.status_styles import TB_IMPORT
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.tensorboard import ImportReport

MAX_PROBLEMS_SHOWN = 3
MAX_RUNS_SHOWN = 3


def summary_lines(report: ImportReport) -> list[str]:
    """format_report's facts, short enough for the card: totals, skipped points, the runs."""
    verb = "cancelled after importing" if report.cancelled else "imported"
    runs = len(report.runs)
    lines = [(f"{verb} {report.points_imported:,} points, {report.params_logged} params into {runs} "
              f"run{'s' if runs != 1 else ''} of '{report.experiment_name}' in {report.elapsed:.1f}s")]
    if report.points_skipped:
        lines.append(f"{report.points_skipped:,} points were already in MLflow and were skipped")
    for run in report.runs[:MAX_RUNS_SHOWN]:
        lines.append(f"run '{run.name}' ({run.run_id[:8]}): {run.points:,} points"
                     + (" [new]" if run.created else ""))
    if len(report.runs) > MAX_RUNS_SHOWN:
        lines.append(f"… and {len(report.runs) - MAX_RUNS_SHOWN} more runs")
    return lines


class TbImportCard(Vertical):
    @dataclass
    class ImportProgress(Message):
        done: int
        total: int
        elapsed: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TbImportCard.ImportProgress)

    @dataclass
    class ImportFinished(Message):
        report: ImportReport | None
        lines: list[str] = field(default_factory=list)
        error: str | None = None

    def __init__(self, settings: Settings, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._experiment = settings.experiment_name
        self.running = False
        self._cancel: threading.Event | None = None  # while an import runs

    @property
    def busy(self) -> bool:
        """An import is running (until its report is in)."""
        return self._cancel is not None

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # the import resumes next time; the app must not wait for it

    def compose(self) -> ComposeResult:
        with Horizontal(classes="card-line"):
            yield Label("Log dir", classes="card-label")
            yield Input(placeholder="folder with *tfevents* files", compact=True, id="tb-dir")
        with Horizontal(classes="card-line"):
            yield Label("Experiment", classes="card-label")
            yield Input(self._experiment, placeholder="MLflow experiment", compact=True,
                        id="tb-experiment")
        with Horizontal(classes="card-line"):
            yield Label("Run name", classes="card-label")
            yield Input(placeholder="default: the folder's name", compact=True, id="tb-run-name")
        with Horizontal(classes="card-buttons"):
            yield Button("Import i", compact=True, variant="primary", id="tb-start")
            yield Button("Cancel x", compact=True, id="tb-cancel", disabled=True)
            yield TextLine(id="tb-rate")
        yield ProgressBar(total=100, show_eta=False, id="tb-bar")
        yield Static("Every scalar point lands in MLflow once; importing again resumes.",
                     id="tb-summary")

    def request_start(self) -> None:
        if self.running:
            self._hint("An import is already running (x cancels it)")
            return
        log_dir = self.query_one("#tb-dir", Input).value.strip()
        experiment = self.query_one("#tb-experiment", Input).value.strip()
        if not log_dir:
            self.query_one("#tb-dir", Input).focus()
            self._hint("Type the TensorBoard log folder to import")
            return
        if not experiment:
            self.query_one("#tb-experiment", Input).focus()
            self._hint("Name the MLflow experiment to import into")
            return
        run_name = self.query_one("#tb-run-name", Input).value.strip() or None
        folder = Path(log_dir).expanduser()
        if not folder.is_absolute():
            folder = self.settings.workdir / folder
        self._cancel = threading.Event()
        note = " (starting the MLflow server first if it is down)" if self.settings.embedded_tracking else ""
        self.set_running(True, f"Importing {log_dir} into {experiment}…{note}")
        self.refresh_bindings()
        self._import(folder, experiment, run_name, self._cancel)

    def request_cancel(self) -> None:
        if self.running:
            self.query_one("#tb-rate", TextLine).update(TB_IMPORT.text("cancelling", "cancelling…"))
            if self._cancel is not None:
                self._cancel.set()

    @on(Button.Pressed, "#tb-start")
    @on(Input.Submitted, "#tb-dir, #tb-experiment, #tb-run-name")
    def _start(self, event: Message) -> None:
        event.stop()
        self.request_start()

    @on(Button.Pressed, "#tb-cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.request_cancel()

    # -- the import ------------------------------------------------------------------------

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

    def on_tb_import_card_import_progress(self, message: ImportProgress) -> None:
        message.stop()
        if self._cancel is not None:
            self.show_progress(message.done, message.total, message.elapsed)

    def on_tb_import_card_import_finished(self, message: ImportFinished) -> None:
        self._cancel = None  # and on to the tab, which then shows what was imported
        self.refresh_bindings()
        if message.report is None:
            self.show_error(message.error or "the import failed")
            return
        report = message.report
        self.show_report(report)
        self.query_one("#tb-summary").scroll_visible(animate=False)
        severity = "warning" if report.problems or report.cancelled else "information"
        self.notify(message.lines[0] if message.lines else "TensorBoard import finished",
                    title="TensorBoard import", severity=severity, markup=False)

    # -- what the worker says ---------------------------------------------------------------

    def set_running(self, running: bool, note: str = "") -> None:
        self.running = running
        self.set_class(running, "-running")
        self.query_one("#tb-start", Button).disabled = running
        self.query_one("#tb-cancel", Button).disabled = not running
        if running:
            self.query_one("#tb-bar", ProgressBar).update(total=100, progress=0)
            self.query_one("#tb-rate", TextLine).update(Text("starting…", style="dim"))
            self.query_one("#tb-summary", Static).update(Text(note, style="dim"))

    def show_progress(self, done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        # Never an indeterminate bar: it animates forever (see the Runs tab).
        self.query_one("#tb-bar", ProgressBar).update(total=max(total, done, 1), progress=done)
        shown = f"{done:,} / ~{max(total, done):,} points · {rate:,.0f} points/s"
        self.query_one("#tb-rate", TextLine).update(Text(shown))

    def show_report(self, report: ImportReport) -> None:
        self.set_running(False)
        bar = self.query_one("#tb-bar", ProgressBar)
        done = report.points_imported + report.points_skipped
        bar.update(total=max(done, 1), progress=done if not report.cancelled else bar.progress)
        rate = report.points_imported / report.elapsed if report.elapsed > 0 else 0.0
        state = "cancelled" if report.cancelled else "problems" if report.problems else "done"
        self.query_one("#tb-rate", TextLine).update(Text.assemble(
            TB_IMPORT.text(state), f" · {report.points_imported:,} points · {rate:,.0f} points/s"))
        text = Text("\n".join(summary_lines(report)))
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            text.append(f"\nproblem: {problem}", style="red")
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            text.append(f"\n… and {len(report.problems) - MAX_PROBLEMS_SHOWN} more problems", style="red")
        self.query_one("#tb-summary", Static).update(text)

    def show_error(self, error: str) -> None:
        self.set_running(False)
        self.query_one("#tb-rate", TextLine).update(TB_IMPORT.text("failed"))
        self._hint(error)

    def _hint(self, text: str) -> None:
        self.query_one("#tb-summary", Static).update(Text(text, style="red"))
