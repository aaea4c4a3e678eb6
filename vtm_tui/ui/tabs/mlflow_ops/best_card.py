"""The best-run card: rank the experiment's runs by a metric, then register the winner.

The card runs both in workers of its own, on the tab's tracking link. `BestPicked` goes up to
the tab, which shows the pick on the card and puts the table's cursor on that run in one go;
`Registered` the card shows itself; a failure is a `TrackingFailed`, shown on the card and told
to the tab. Metric, mode and model name come from a
catalog task (chosen, or guessed from the runs' task tag) or are typed; the experiment and the
filter are the tab's (`scope`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from vtm_tui.core.formatting import format_number
from vtm_tui.ui.tabs.base import report_failure
from vtm_tui.ui.tabs.mlflow_ops.tracking_link import TrackingFailed, TrackingLink

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Catalog
    from vtm_tui.core.tracking.best import BestRun
    from vtm_tui.core.tracking.client import RunInfo
    from vtm_tui.core.tracking.register import Registration

DEFAULT_ALIAS = "dev"
TASK_TAG = "vtm.task_type"  # set by vtm's training helper: which catalog task made the run


@dataclass(frozen=True)
class TaskDefaults:
    """A catalog task's mlflow block, as plain values (the card never imports the catalog)."""
    task: str
    metric: str | None
    mode: str
    model_name: str
    artifact_path: str


def task_defaults(catalog: Catalog) -> list[TaskDefaults]:
    return [TaskDefaults(task.task_type, task.mlflow.metric, task.mlflow.mode or "max", task.mlflow.model_name,
                         task.mlflow.artifact_path or "model") for task in catalog.tasks]


class BestRunCard(Vertical):
    @dataclass
    class BestPicked(Message):
        best: BestRun

    @dataclass
    class Registered(Message):
        registration: Registration

    def __init__(self, link: TrackingLink, scope: Callable[[], tuple[str | None, str]], **kwargs) -> None:
        """scope: the tab's (experiment name or None, MLflow filter) that a pick ranks."""
        super().__init__(**kwargs)
        self.link, self.scope = link, scope
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

    def suggest_for(self, runs: list[RunInfo]) -> None:
        """The catalog task that made most of these runs gives the card its defaults."""
        tasks = Counter(run.tags.get(TASK_TAG) for run in runs if run.tags.get(TASK_TAG))
        if tasks:
            self.suggest_task(tasks.most_common(1)[0][0])

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
        experiment, runs_filter = self.scope()
        if experiment is None:
            self.show_error("No experiment selected")
            return
        self._find_best(experiment, self.metric, self.mode, runs_filter)

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
        self._register_model(self.best.run.run_id, model, alias, self.artifact_path)

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

    # -- workers ----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="mlops-best")
    def _find_best(self, experiment: str, metric: str, mode: str, runs_filter: str) -> None:
        from vtm_tui.core.tracking.best import best_run

        try:
            best = best_run(self.link.get(), experiment, metric, mode, runs_filter or None)
        except Exception as exc:
            self.post_message(self.link.failed("best", exc))
            return
        self.post_message(self.BestPicked(best))

    @work(thread=True, exclusive=True, group="mlops-register")
    def _register_model(self, run_id: str, model_name: str, alias: str | None, artifact_path: str) -> None:
        from vtm_tui.core.tracking.register import register_run

        try:
            registration = register_run(self.link.get(), run_id, model_name, artifact_path, alias)
        except Exception as exc:
            self.post_message(self.link.failed("register", exc))
            return
        self.post_message(self.Registered(registration))

    def on_best_run_card_registered(self, message: Registered) -> None:
        message.stop()
        self.show_registration(message.registration)
        self.notify(message.registration.summary(), title="Model registered", markup=False)

    def on_tracking_failed(self, message: TrackingFailed) -> None:
        self.show_error(message.error)  # and on to the tab, which says when MLflow is unreachable
        if message.what == "register":
            report_failure(self, message.error, "Register failed")

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
