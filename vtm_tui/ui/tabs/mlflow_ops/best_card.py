"""The best-run card: rank the experiment's runs by a metric, then register the winner.

A form only: it asks for a pick or a registration with messages, and the MLflow Ops tab runs
them in workers and hands the answers back (`show_best`, `show_registration`, `show_error`).
Metric, mode and model name come from a catalog task (chosen, or guessed from the runs' task
tag) or are typed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from vtm_tui.core.formatting import format_number

if TYPE_CHECKING:
    from vtm_tui.core.tracking.best import BestRun
    from vtm_tui.core.tracking.register import Registration

DEFAULT_ALIAS = "dev"


@dataclass(frozen=True)
class TaskDefaults:
    """A catalog task's mlflow block, as plain values (the card never imports the catalog)."""
    task: str
    metric: str | None
    mode: str
    model_name: str
    artifact_path: str


class BestRunCard(Vertical):
    @dataclass
    class PickRequested(Message):
        metric: str
        mode: str

    @dataclass
    class RegisterRequested(Message):
        run_id: str
        model_name: str
        alias: str | None
        artifact_path: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tasks: dict[str, TaskDefaults] = {}
        self.best: BestRun | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="card-line"):
            yield Label("Task", classes="card-label")
            yield Select([], prompt="typed", compact=True, id="best-task")
            yield Select([("max", "max"), ("min", "min")], value="max", allow_blank=False,
                         compact=True, id="best-mode")
        with Horizontal(classes="card-line"):
            yield Label("Metric", classes="card-label")
            yield Input(placeholder="metric, e.g. val_accuracy", compact=True, id="best-metric")
        with Horizontal(classes="card-line"):
            yield Label("Model", classes="card-label")
            yield Input(placeholder="registered model name", compact=True, id="best-model")
            yield Input(DEFAULT_ALIAS, placeholder="alias", compact=True, id="best-alias")
        with Horizontal(classes="card-buttons"):
            yield Button("Pick b", compact=True, variant="primary", id="best-pick")
            yield Button("Register g", compact=True, id="best-register", disabled=True)
        yield Static("Pick ranks the runs that match the filter above.", id="best-result")

    def set_tasks(self, tasks: list[TaskDefaults]) -> None:
        self.tasks = {task.task: task for task in tasks}
        select = self.query_one("#best-task", Select)
        current = select.value
        select.set_options([(task.task, task.task) for task in tasks])
        if current in self.tasks:
            select.value = current

    def suggest_task(self, task: str | None) -> None:
        """Use this task's defaults unless the user already chose a task or typed a metric."""
        select = self.query_one("#best-task", Select)
        if task in self.tasks and select.value is Select.NULL and not self.metric:
            select.value = task
            self._apply(self.tasks[task])  # now, not when Select.Changed arrives: the tab reads it

    @on(Select.Changed, "#best-task")
    def _task_chosen(self, event: Select.Changed) -> None:
        if event.value in self.tasks:
            self._apply(self.tasks[event.value])

    def _apply(self, defaults: TaskDefaults) -> None:
        if defaults.metric:
            self.query_one("#best-metric", Input).value = defaults.metric
        self.query_one("#best-mode", Select).value = defaults.mode
        self.query_one("#best-model", Input).value = defaults.model_name

    @property
    def metric(self) -> str:
        return self.query_one("#best-metric", Input).value.strip()

    @property
    def mode(self) -> str:
        return str(self.query_one("#best-mode", Select).value)

    @property
    def artifact_path(self) -> str:
        task = self.query_one("#best-task", Select).value
        return self.tasks[task].artifact_path if task in self.tasks else "model"

    # -- requests ---------------------------------------------------------------------------

    def request_pick(self) -> None:
        if not self.metric:
            self.query_one("#best-metric", Input).focus()
            self.show_error("Name the metric to rank by (or choose a task)")
            return
        self.show_note(f"Ranking runs by {self.metric} ({self.mode})…")
        self.post_message(self.PickRequested(self.metric, self.mode))

    def request_register(self) -> None:
        model = self.query_one("#best-model", Input).value.strip()
        alias = self.query_one("#best-alias", Input).value.strip() or None
        if self.best is None:
            self.show_error("Pick the best run first (b), then register it")
            return
        if not model:
            self.query_one("#best-model", Input).focus()
            self.show_error("Name the registered model")
            return
        self.show_note(f"Registering run {self.best.run.run_id[:8]} as {model}…")
        self.post_message(self.RegisterRequested(self.best.run.run_id, model, alias, self.artifact_path))

    @on(Button.Pressed, "#best-pick")
    @on(Input.Submitted, "#best-metric")
    def _pick(self, event: Message) -> None:
        event.stop()
        self.request_pick()

    @on(Button.Pressed, "#best-register")
    @on(Input.Submitted, "#best-model, #best-alias")
    def _register(self, event: Message) -> None:
        event.stop()
        self.request_register()

    # -- answers ----------------------------------------------------------------------------

    def show_best(self, best: BestRun) -> None:
        self.best = best
        self.query_one("#best-register", Button).disabled = False
        run = best.run
        text = Text.assemble(("Best ", "bold"), (run.name or run.run_id[:8], "bold cyan"),
                             f" ({run.run_id[:8]})\n", (best.metric, "bold"),
                             f" = {format_number(best.value)} ({best.mode})\n")
        text.append(f"{best.considered} run{'s' if best.considered != 1 else ''} considered, "
                    f"{best.eligible} eligible, {best.excluded} excluded", style="dim")
        self.query_one("#best-result", Static).update(text)

    def clear_best(self) -> None:
        self.best = None
        self.query_one("#best-register", Button).disabled = True

    def show_registration(self, registration: Registration) -> None:
        verb = "Registered" if registration.created else "Already registered:"
        text = Text.assemble((f"{verb} ", "bold green"), (registration.model_name, "bold"),
                             f" version {registration.version}")
        if registration.alias:
            text.append(f"\nalias {registration.alias} → v{registration.version}  ")
            text.append(registration.alias_uri or "", style="cyan")
        self.query_one("#best-result", Static).update(text)

    def show_note(self, note: str) -> None:
        self.query_one("#best-result", Static).update(Text(note, style="dim"))

    def show_error(self, error: str) -> None:
        self.query_one("#best-result", Static).update(Text(error, style="red"))
