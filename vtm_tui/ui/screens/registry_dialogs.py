"""The Registry tab's small forms, as modal screens: pull destination, publish a file, publish
the best MLflow run, convert to the standard format (these three with the model spec rows of
spec_fields.py), FTP password.

Each returns a small request (or None when dismissed with escape); the tab runs it. The forms
only check what they can without I/O (a path's existence is for the worker to find out).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static, Switch

from vtm_tui.ui.screens.spec_fields import SpecFields, field_row, spec_texts
from vtm_tui.ui.widgets.path_suggester import PathInput, PathSuggester

T = TypeVar("T")
MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".pt2")  # what publish takes: core.standard CHECKPOINT_SUFFIXES
STAGE_OPTIONS = [("dev", "dev"), ("release", "release")]
TASK_TYPES = [("classification", "classification"), ("segmentation", "segmentation")]


@dataclass
class PublishRequest:
    path: str
    model: str
    stage: str = "dev"
    set_latest: bool = False
    convert_standard: bool = False
    task_type: str | None = None
    num_classes: int | None = None
    spec_texts: dict = field(default_factory=dict)  # what was typed in the spec rows
    spec: object = None  # core.standard ConvertRequest parsed from them (with conversion on)


@dataclass
class BestRequest:
    task: str
    stage: str = "dev"
    set_latest: bool = False
    convert_standard: bool = False
    spec_texts: dict = field(default_factory=dict)
    spec: object = None  # core.standard ConvertRequest: overrides of the task's model: block


@dataclass
class ConvertVersionRequest:
    task_type: str | None
    num_classes: int | None
    set_latest: bool = True
    spec: object = None  # core.standard ConvertRequest


def parse_classes(text: str) -> int | None:
    """'' -> None (from the checkpoint); else a positive integer, or ValueError."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"classes must be a positive whole number, got {text!r}")
    return int(text)


def check_model_name(name: str) -> str:
    from vtm_tui.core.registry.layout import check_model  # pure: names only

    return check_model(name.strip())


class RegistryDialog(ModalScreen[T], Generic[T]):
    """A titled box of rows, an error line, OK and Cancel. Enter in a text field submits. The box
    scrolls when a terminal is too short for its rows (the spec rows at 80x24)."""

    BINDINGS = [Binding("escape", "dismiss_dialog", "Cancel", id="registry.dialog.cancel"),
                Binding("ctrl+s", "submit", "OK", id="registry.dialog.ok")]
    OK = "OK"
    OK_KEY = "^s"  # enter submits from a text field too; on a switch or a list it is theirs

    def __init__(self, title: str, note: str | Text = "") -> None:
        super().__init__(classes="registry-dialog-screen")
        self.title_text, self.note = title, note

    def rows(self) -> ComposeResult:
        yield from ()

    def result(self) -> T | None:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="registry-dialog"):
            yield Label(Text(self.title_text, "bold"), classes="dialog-title")
            if self.note:
                yield Static(self.note, classes="dialog-note")
            yield from self.rows()
            yield Static("", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.OK} {self.OK_KEY}", variant="primary", compact=True, id="dialog-ok")
                yield Button("Cancel esc", compact=True, id="dialog-cancel")

    def fail(self, message: str) -> None:
        error = self.query_one(".dialog-error", Static)
        error.update(Text(message))
        error.display = True
        self.call_after_refresh(error.scroll_visible, animate=False)

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        try:
            result = self.result()
        except ValueError as exc:
            self.fail(str(exc))
            return
        if result is not None:
            self.dismiss(result)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "dialog-ok":
            self.action_submit()
        else:
            self.dismiss(None)


class PullDialog(RegistryDialog[str]):
    OK, OK_KEY = "Pull", "⏎"

    def __init__(self, ref: str, destination: str, base: Path) -> None:
        model, stage, version = ref.split("/")
        super().__init__(f"Pull {ref}", Text.assemble(
            "Downloaded, checked against the manifest's sha256 and unpacked into ",
            ("DESTINATION", "bold"), f"/{model}/{stage}/{version}/ (nothing is left there if it fails).",
            style="dim"))
        self.destination, self.base = destination, base

    def rows(self) -> ComposeResult:
        yield field_row("Destination", PathInput(self.destination, suggester=PathSuggester(self.base, dirs_only=True),
                                                 id="pull-dest"))

    def on_mount(self) -> None:
        self.query_one("#pull-dest", Input).focus()

    def result(self) -> str | None:
        value = self.query_one("#pull-dest", Input).value.strip()
        if not value:
            raise ValueError("name a destination folder")
        return value


class PublishDialog(RegistryDialog[PublishRequest]):
    OK = "Publish"

    def __init__(self, base: Path, models: list[str], last: PublishRequest) -> None:
        super().__init__("Publish a local model file", Text(
            "A .pth/.pt/.ckpt checkpoint or a .pt2 program becomes a new version of MODEL/STAGE. Tab or → "
            "takes the path completion. Converting exports a torch.export program, proved against the model.",
            "dim"))
        self.base, self.models, self.last = base, models, last

    def rows(self) -> ComposeResult:
        last = self.last
        yield field_row("File", PathInput(last.path, placeholder="outputs/checkpoints/best.pth", id="publish-path",
                                          suggester=PathSuggester(self.base, suffixes=MODEL_SUFFIXES)))
        yield field_row("Model", Input(last.model, placeholder="model name", id="publish-model",
                                       suggester=SuggestFromList(self.models)))
        yield field_row("Stage", Select(STAGE_OPTIONS, value=last.stage, allow_blank=False, compact=True,
                                        id="publish-stage"))
        yield field_row("Set LATEST", Switch(last.set_latest, id="publish-latest"))
        yield field_row("Convert to std", Switch(last.convert_standard, id="publish-convert"))
        yield field_row("  task type", Select(TASK_TYPES, value=last.task_type or Select.NULL, compact=True,
                                              prompt="from the checkpoint", id="publish-task"))
        yield field_row("  classes", Input("" if last.num_classes is None else str(last.num_classes),
                                           placeholder="from the checkpoint", type="integer",
                                           id="publish-classes"))
        yield SpecFields("publish", last.spec_texts)

    def on_mount(self) -> None:
        self._sync_convert(self.last.convert_standard)
        self.query_one("#publish-path", Input).focus()

    @on(Switch.Changed, "#publish-convert")
    def _convert_changed(self, event: Switch.Changed) -> None:
        self._sync_convert(event.value)

    def _sync_convert(self, on_: bool) -> None:
        self.query_one("#publish-task", Select).disabled = not on_
        self.query_one("#publish-classes", Input).disabled = not on_
        self.query_one(SpecFields).set_enabled(on_)

    def result(self) -> PublishRequest | None:
        path = self.query_one("#publish-path", Input).value.strip()
        if not path:
            raise ValueError("name the checkpoint file to publish")
        if not path.lower().endswith(MODEL_SUFFIXES):
            raise ValueError(f"publish a model file: {', '.join(MODEL_SUFFIXES)}")
        model = self.query_one("#publish-model", Input).value.strip()
        if not model:
            raise ValueError("name the registry model (for example classification-best-model)")
        try:
            check_model_name(model)
        except Exception as exc:  # InvalidName: a UserError with a message for the user
            raise ValueError(str(exc)) from None
        convert = self.query_one("#publish-convert", Switch).value
        task = self.query_one("#publish-task", Select).value
        task_type = str(task) if convert and task is not Select.NULL else None
        classes = parse_classes(self.query_one("#publish-classes", Input).value) if convert else None
        fields = self.query_one(SpecFields)
        return PublishRequest(
            path=path, model=model, stage=str(self.query_one("#publish-stage", Select).value),
            set_latest=self.query_one("#publish-latest", Switch).value, convert_standard=convert,
            task_type=task_type, num_classes=classes, spec_texts=fields.texts(),
            spec=fields.request(self.base, task_type=task_type, num_classes=classes) if convert else None)


class PublishBestDialog(RegistryDialog[BestRequest]):
    OK = "Publish"

    def __init__(self, tasks: list[tuple[str, str, str]], last: BestRequest, base: Path | None = None) -> None:
        """tasks: (task type, title, a line about its mlflow metric, model name and model: block)."""
        super().__init__("Publish the best MLflow run", Text(
            "The task's catalog entry says which metric ranks the runs and which registry model the best "
            "run goes to. Its MLflow pt2 model becomes the standard program; without one, converting "
            "uses the task's model: block and the rows below.", "dim"))
        self.tasks, self.last, self.base = tasks, last, base or Path.cwd()

    def rows(self) -> ComposeResult:
        ids = [task for task, _, _ in self.tasks]
        value = self.last.task if self.last.task in ids else ids[0]
        yield field_row("Task", Select([(f"{title} ({task})", task) for task, title, _ in self.tasks],
                                       value=value, allow_blank=False, compact=True, id="best-task"))
        yield Static("", classes="dialog-hint", id="best-about")
        yield field_row("Stage", Select(STAGE_OPTIONS, value=self.last.stage, allow_blank=False, compact=True,
                                        id="best-stage"))
        yield field_row("Set LATEST", Switch(self.last.set_latest, id="best-latest"))
        yield field_row("Convert to std", Switch(self.last.convert_standard, id="best-convert"))
        yield SpecFields("best", self.last.spec_texts, fallback="from the task's model: block")

    def on_mount(self) -> None:
        self._show_about(self.query_one("#best-task", Select).value)
        self.query_one("#best-task", Select).focus()

    @on(Select.Changed, "#best-task")
    def _task_changed(self, event: Select.Changed) -> None:
        self._show_about(event.value)

    def _show_about(self, task) -> None:
        about = next((line for t, _, line in self.tasks if t == task), "")
        self.query_one("#best-about", Static).update(Text(about, "dim"))

    def result(self) -> BestRequest | None:
        fields = self.query_one(SpecFields)
        return BestRequest(task=str(self.query_one("#best-task", Select).value),
                           stage=str(self.query_one("#best-stage", Select).value),
                           set_latest=self.query_one("#best-latest", Switch).value,
                           convert_standard=self.query_one("#best-convert", Switch).value,
                           spec_texts=fields.texts(), spec=fields.request(self.base))


class ConvertDialog(RegistryDialog[ConvertVersionRequest]):
    OK = "Convert"

    def __init__(self, ref: str, task_type: str | None, num_classes: int | None, *, manifest=None,
                 base: Path | None = None) -> None:
        model, stage, _ = ref.split("/")
        super().__init__(f"Convert {ref} to the standard format", Text(
            f"Its checkpoint is downloaded, exported with torch.export (model-standard.pt2 added, proved "
            f"against the model) and published as a new version of {model}/{stage}; the original stays "
            f"as it is.", "dim"))
        self.task_type, self.num_classes = task_type, num_classes
        self.texts = spec_texts(manifest) if manifest is not None else {}
        self.base = base or Path.cwd()

    def rows(self) -> ComposeResult:
        known = {value for _, value in TASK_TYPES}
        yield field_row("Task type", Select(TASK_TYPES, compact=True, prompt="from the checkpoint",
                                            value=self.task_type if self.task_type in known else Select.NULL,
                                            id="convert-task"))
        yield field_row("Classes", Input("" if self.num_classes is None else str(self.num_classes),
                                         placeholder="from the checkpoint", type="integer", id="convert-classes"))
        yield field_row("Set LATEST", Switch(True, id="convert-latest"))
        yield SpecFields("convert", self.texts)

    def on_mount(self) -> None:
        self.query_one("#convert-task", Select).focus()

    def result(self) -> ConvertVersionRequest | None:
        task = self.query_one("#convert-task", Select).value
        task_type = None if task is Select.NULL else str(task)
        classes = parse_classes(self.query_one("#convert-classes", Input).value)
        return ConvertVersionRequest(task_type=task_type, num_classes=classes,
                                     set_latest=self.query_one("#convert-latest", Switch).value,
                                     spec=self.query_one(SpecFields).request(self.base, task_type=task_type,
                                                                            num_classes=classes))


class PasswordDialog(RegistryDialog[str]):
    """Asked (from a worker, through the app) only when the FTP server wants a password that
    neither VTM_FTP_PASSWORD nor ~/.netrc gives. Kept in memory for this session only."""

    OK, OK_KEY = "Log in", "⏎"

    def __init__(self, where: str) -> None:
        super().__init__("FTP password", Text(f"The registry at {where} asks for a password.", "dim"))

    def rows(self) -> ComposeResult:
        yield field_row("Password", Input(password=True, id="ftp-password"))

    def on_mount(self) -> None:
        self.query_one("#ftp-password", Input).focus()

    def result(self) -> str | None:
        value = self.query_one("#ftp-password", Input).value
        if not value:
            raise ValueError("type the password, or press escape")
        return value
