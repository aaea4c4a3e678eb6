"""Launcher tab: the catalog's tasks, the form of the highlighted one, GPU picker, launch.

The catalog file is watched from a worker thread (mtime, about once a second; ctrl+r forces a
reload); a broken file shows its errors, file:line first, in place of the form.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from vtm_tui.core.formatting import display_path
from vtm_tui.core.runs.store import RunRecord
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.messages import CatalogLoaded, RunLaunched
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.launcher.gpu_choices import gpu_options, launch_gpus
from vtm_tui.ui.tabs.launcher.task_form import FieldRow, TaskForm
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:  # the catalog module (pydantic, ~0.3 s) loads in the watcher thread
    from vtm_tui.core.catalog.loader import Catalog, Task
    from vtm_tui.core.gpus.host import HostState

CATALOG_POLL = 1.0  # seconds between mtime checks of the catalog file


def _file_signature(path) -> tuple | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _read_catalog(path, base) -> CatalogLoaded:
    from vtm_tui.core.catalog.loader import CatalogErrors, load_catalog

    try:
        return CatalogLoaded(load_catalog(path))
    except CatalogErrors as exc:
        return CatalogLoaded(None, [_error_line(error, base) for error in exc.errors])
    except Exception as exc:  # never let a strange file take the app down
        return CatalogLoaded(None, [f"{display_path(path, base)}: {error_text(exc)}"])


def _error_line(error, base) -> str:
    where = display_path(error.path, base)
    if error.line is not None:
        where += f":{error.line}"
    return f"{where}: {error.key}: {error.message}" if error.key else f"{where}: {error.message}"


class LauncherPane(VtmPane):
    # The first tab, and the catalog's reader for the others: live from the start. Its first job
    # imports the catalog module (pydantic), which would otherwise hold the GIL while the first
    # frame is being drawn, hence after it.
    EAGER = True
    BINDINGS = [
        Binding("ctrl+l,f5", "launch", "Launch", id="launcher.launch"),
        Binding("ctrl+r", "reload_catalog", "Reload catalog", id="launcher.reload"),
    ]

    @dataclass
    class GpusFound(Message):
        state: HostState | None  # None: the box could not be read (the picker offers CPU only)

    @dataclass
    class LaunchFailed(Message):
        error: BaseException

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("Launcher", "launcher", settings, sources)
        self.catalog: Catalog | None = None
        self._drafts: dict[str, dict] = {}  # per task: what the user changed, kept across switches
        self._pending_gpus: str | None = None
        self._gpu_values = [value for _, value in gpu_options(None)]
        self._launching = False
        self._reload = threading.Event()

    def compose(self) -> ComposeResult:
        with Horizontal(id="launcher-body"):
            with Vertical(id="task-side"):
                yield OptionList(id="task-list")
            with Vertical(id="form-side"):
                yield Static(id="task-title")
                yield TaskForm(id="task-form")
                yield TextLine(id="field-help")
                with Horizontal(id="launch-bar"):
                    yield Select([("local", "local"), ("slurm", "slurm")], value="local",
                                 allow_blank=False, compact=True, id="engine-picker")
                    yield Label("GPUs", id="gpu-label")
                    yield Select(gpu_options(None), value="cpu", allow_blank=False, compact=True,
                                 id="gpu-picker")
                    yield Button("Launch ^l", variant="primary", compact=True, id="launch-button")
        yield Static(id="catalog-errors")

    def load(self) -> None:
        self._watch_catalog()
        self._probe_gpus()

    def on_unmount(self) -> None:
        self._reload.set()  # wake the watcher so it sees it was cancelled

    def default_focus(self) -> Widget:
        return self.query_one("#task-list", OptionList)

    @property
    def form(self) -> TaskForm:
        return self.query_one(TaskForm)

    # -- catalog ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="catalog")
    def _watch_catalog(self) -> None:
        path, seen = self.settings.catalog_path, object()  # object(): load on the first pass
        while True:
            forced = self._reload.is_set()
            self._reload.clear()
            signature = _file_signature(path)
            if forced or signature != seen:
                seen = signature
                self.post_message(_read_catalog(path, self.settings.workdir))
            if not pause(CATALOG_POLL, self._reload):
                return

    def action_reload_catalog(self) -> None:
        self._reload.set()

    async def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        # Handed straight to the app, which hands the catalog to every tab: bubbling up through
        # the screen would queue it behind the screen's layout work (most of a second when a
        # tab is opened at start-up), and a tab shown meanwhile would load without it.
        message.stop()
        self.app.post_message(CatalogLoaded(message.catalog, message.errors))
        errors_box = self.query_one("#catalog-errors", Static)
        if message.catalog is None:
            self.catalog = None
            text = Text("The catalog has errors. Fix the file: it reloads by itself (or press ctrl+r).\n\n",
                        style="bold")
            text.append("\n".join(message.errors), style="red")
            errors_box.update(text)
            self.add_class("-broken")
            self.mark_ready()
            return
        self.remove_class("-broken")
        errors_box.update("")
        self.catalog = message.catalog
        task_list = self.query_one("#task-list", OptionList)
        current = self.form.shown_task.task_type if self.form.shown_task else None
        tasks = self.catalog.enabled_tasks()
        task_list.clear_options()
        task_list.add_options(Option(_task_prompt(task), id=task.task_type) for task in tasks)
        if not tasks:
            self.query_one("#task-title", Static).update(Text(
                f"No enabled tasks in {display_path(self.catalog.path, self.settings.workdir)}"))
            await self.form.show(None)
        else:
            ids = [task.task_type for task in tasks]
            task_list.highlighted = ids.index(current) if current in ids else 0
            await self._show_task(ids[task_list.highlighted])
        self.mark_ready()

    # -- task and form ---------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#task-list")
    async def _task_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        shown = self.form.shown_task
        if event.option_id and (shown is None or shown.task_type != event.option_id):
            await self._show_task(event.option_id)

    @on(OptionList.OptionSelected, "#task-list")
    def _task_chosen(self, event: OptionList.OptionSelected) -> None:
        rows = self.form.rows
        if rows:
            rows[0].control.focus()

    async def _show_task(self, task_type: str) -> None:
        if self.catalog is None:
            return
        if self.form.shown_task is not None:
            self._drafts[self.form.shown_task.task_type] = self.form.changed_values()
        task = self.catalog.task(task_type)
        title = Text.assemble((task.title, "bold"), "  ", (task.task_type, "dim"))
        if task.description:
            title.append("\n" + task.description)
        self.query_one("#task-title", Static).update(title)
        self._sync_gpu_picker(task)
        await self.form.show(task, self._drafts.get(task_type))

    async def edit_run(self, run: RunRecord) -> None:
        """Clone: the run's task, its field values and GPUs in the form, ready to edit."""
        if self.catalog is None:
            self.notify("The catalog has errors; fix it before cloning a run", severity="error")
            return
        ids = [task.task_type for task in self.catalog.enabled_tasks()]
        if run.task not in ids:
            self.notify(f"Task {run.task!r} is not an enabled task of the catalog any more",
                        severity="error", markup=False)
            return
        shown = {field.name for field in self.catalog.task(run.task).form_fields()}
        self._drafts[run.task] = {k: v for k, v in run.field_values.items() if k in shown}
        kind, _, asked = (run.gpu_request or "").partition(":")
        if kind == "count":  # --num-gpus N: any N again, not the devices it got
            self._set_gpus(f"any:{asked}")
        elif kind == "devices":
            self._set_gpus(asked)
        elif run.gpus is not None:
            self._set_gpus(run.gpus)
        self.form.shown_task = None  # the drafts above replace whatever the form holds
        task_list = self.query_one("#task-list", OptionList)
        task_list.highlighted = ids.index(run.task)
        await self._show_task(run.task)
        self.notify(f"Run {run.id}'s settings are in the form: edit, then ctrl+l to launch")

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        row = next((node for node in event.widget.ancestors if isinstance(node, FieldRow)), None)
        help_box = self.query_one("#field-help", TextLine)
        if row is None:
            help_box.update("")
            return
        field = row.field
        name = "" if field.label == field.name else f"{field.name}, "
        text = Text.assemble((field.label, "bold"), f" ({name}{field.value_type})")
        if field.help:
            text.append(": " + field.help)
        help_box.update(text)

    # -- GPUs ------------------------------------------------------------------------------

    @work(thread=True, group="gpus")
    def _probe_gpus(self) -> None:
        try:
            state = self.sources.host(self.settings)
        except Exception as exc:  # e.g. a damaged run store: the picker still offers CPU
            self.post_message(self.GpusFound(None))
            self.report_failure(exc, "Reading the GPUs failed")  # safe from a worker thread
            return
        self.post_message(self.GpusFound(state))

    def on_launcher_pane_gpus_found(self, message: GpusFound) -> None:
        picker = self.query_one("#gpu-picker", Select)
        options = gpu_options(message.state)
        wanted = self._pending_gpus or picker.value
        picker.set_options(options)
        self._gpu_values = [value for _, value in options]
        picker.value = wanted if wanted in self._gpu_values else self._gpu_values[0]

    def _set_gpus(self, gpus: str) -> None:
        picker = self.query_one("#gpu-picker", Select)
        gpus = gpus or "cpu"
        self._pending_gpus = gpus  # in case the GPU list is still being probed
        if gpus in self._gpu_values:
            picker.value = gpus

    def _sync_gpu_picker(self, task: Task) -> None:
        self.query_one("#engine-picker", Select).value = task.runner.engine
        self._engine_changed()

    @on(Select.Changed, "#engine-picker")
    def _engine_changed(self) -> None:
        # This machine's GPUs mean nothing to a run that another engine (Slurm) places.
        engine = self.selected_engine()
        local = engine == "local"
        self.query_one("#gpu-picker", Select).disabled = not local
        self.query_one("#gpu-label", Label).update("GPUs" if local else f"GPUs: {engine}")

    def selected_engine(self) -> str:
        value = self.query_one("#engine-picker", Select).value
        return "local" if value is Select.NULL else str(value)

    def selected_gpus(self) -> str | None:
        """The GPU picker's value ('any:N', '0,2', 'cpu'; launch_gpus reads it); None leaves
        CUDA_VISIBLE_DEVICES to the engine."""
        picker = self.query_one("#gpu-picker", Select)
        if picker.disabled:
            return None
        return "cpu" if picker.value is Select.NULL else str(picker.value)

    # -- launch ----------------------------------------------------------------------------

    @on(Button.Pressed, "#launch-button")
    def _launch_pressed(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        task = self.form.shown_task
        if self.catalog is None or task is None:
            self.notify("Nothing to launch: pick a task first", severity="warning")
            return
        bad = self.form.validate()
        if bad:
            bad[0].control.focus()
            names = ", ".join(row.field.name for row in bad)
            self.notify(f"Not launched: fix {names}", severity="error", markup=False)
            return
        if self._launching:
            self.notify("Already launching; one moment")
            return
        self._launching = True
        note = " (starting the MLflow server first if it is down)" if self.settings.embedded_tracking else ""
        self.notify(f"Launching {task.title}…{note}", markup=False)
        self._launch(task.task_type, self.form.values(), self.selected_gpus(), self.catalog,
                     self.selected_engine())

    @work(thread=True, group="launch")
    def _launch(self, task_type: str, values: dict, gpus: str | None, catalog: Catalog,
                engine: str = "local") -> None:
        from vtm_tui.core.runs.lifecycle import launch

        try:
            gpus, num_gpus = launch_gpus(gpus)
            run = launch(self.settings, task_type, values, gpus=gpus, num_gpus=num_gpus, catalog=catalog,
                         engine=engine)
        except Exception as exc:
            self.post_message(self.LaunchFailed(exc))
        else:
            self.post_message(RunLaunched(run))

    def on_run_launched(self, message: RunLaunched) -> None:
        self._launching = False  # and on to the app, which shows the run

    def on_launcher_pane_launch_failed(self, message: LaunchFailed) -> None:
        self._launching = False
        from vtm_tui.core.catalog import FieldValueErrors

        if isinstance(message.error, FieldValueErrors):
            for error in message.error.errors:
                row = self.form.row(error.field)
                if row is not None:
                    row.show_error(error.message.removeprefix(f"{error.field}: "))
        self.report_failure(message.error, "Launch failed", timeout=10)


def _task_prompt(task: Task) -> Text:
    prompt = Text(task.title, style="bold")
    if task.description:
        prompt.append("\n" + task.description, style="dim")
    return prompt
