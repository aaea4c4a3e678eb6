"""The predict card: a target (a server URL, models:/NAME@ALIAS, a registry NAME@STAGE or a local
model file), an input (random data, an image, a folder of images, a .npy / .pt array) and whether
to start a server when none runs; it predicts in a worker of its own (esc cancels) and shows the
answer below (PredictResult).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Switch

from vtm_tui.core.formatting import display_path
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.latest import Latest
from vtm_tui.ui.pacing import Abandoned, wait_detached
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.tabs.base import report_failure
from vtm_tui.ui.tabs.serving.result import PredictResult

RANDOM = "random"


def input_path(text: str, base: Path) -> str | None:
    """The predict card's input field: None for random data, else a path (relative to vtm's
    working directory, `~` expanded)."""
    text = text.strip()
    if not text or text.lower() == RANDOM:
        return None
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else Path(base) / path)


class PredictCard(Vertical):
    @dataclass
    class Progress(Message):
        generation: int
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, PredictCard.Progress) and message.generation == self.generation

    @dataclass
    class PredictDone(Message):
        generation: int
        result: dict | None
        error: str | None
        elapsed: float

    class Predicted(Message):
        """A prediction answered (it may have started a model server)."""

    def __init__(self, settings: Settings, sources: Sources, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings, self.clock = settings, sources.clock  # the clock is pinned in the demo
        self._predict = sources.serving.predict
        self._auto_target = ""  # the target last filled in for the user (theirs once they edit it)
        self._latest = Latest()
        self._cancel: threading.Event | None = None
        self.predicting = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="serving-row"):
            yield Label("Target", classes="serving-label")
            yield Input(placeholder="http://HOST:PORT, models:/NAME@ALIAS, registry NAME@STAGE or ./model.pt2",
                        compact=True, id="predict-target")
            yield Button("Predict ^g", variant="primary", compact=True, id="predict-button")
        with Horizontal(classes="serving-row"):
            yield Label("Input", classes="serving-label")
            yield Input(RANDOM, placeholder="random, an image, a folder of images, .npy or .pt", compact=True,
                        id="predict-input")
            yield Label("Start a server if none", id="predict-native-label")
            yield Switch(False, id="predict-native",
                         tooltip="On: start a model server for the target when none runs. "
                                 "Off: a running server answers, else the registry bundle is run here")
        yield PredictResult(id="predict-result")

    @property
    def result(self) -> PredictResult:
        return self.query_one(PredictResult)

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # a registry download stops with the app

    # -- the target ------------------------------------------------------------------------

    def set_target(self, value: str) -> None:
        self.query_one("#predict-target", Input).value = value
        self._auto_target = value

    def offer_target(self, value: str, chosen: bool) -> None:
        """A model picked in the serve bar: the target follows it unless the user typed another
        one (chosen: picked by the user just now, so it wins)."""
        target = self.query_one("#predict-target", Input)
        if not target.value or target.value == self._auto_target or chosen:
            self.set_target(value)

    def suggest_targets(self, targets: list[str]) -> None:
        self.query_one("#predict-target", Input).suggester = SuggestFromList(targets, case_sensitive=False)

    # -- predicting ------------------------------------------------------------------------

    @on(Button.Pressed, "#predict-button")
    @on(Input.Submitted, "#predict-target, #predict-input")
    def _predict_asked(self) -> None:
        self.predict()

    def predict(self) -> None:
        if self.predicting:
            self.notify("A prediction is running (esc cancels it)")
            return
        target = self.query_one("#predict-target", Input).value.strip()
        if not target:
            self.notify("Give a target: a server URL, models:/NAME@ALIAS or a registry NAME@STAGE",
                        severity="warning")
            return
        source = input_path(self.query_one("#predict-input", Input).value, self.settings.workdir)
        native = self.query_one("#predict-native", Switch).value
        generation = self._latest.new()
        self._cancel = threading.Event()
        self._set_predicting(True)
        url = target.startswith(("http://", "https://"))
        note = " (starting a native server first if none runs)" if native and not url else ""
        shown = display_path(source, self.settings.workdir) if source else "random data"
        self.result.busy(f"Predicting with {target} on {shown}{note}… esc cancels")
        self._run(generation, target, source, native, self._cancel)

    def cancel(self) -> None:
        if not self.predicting:
            return
        if self._cancel is not None:
            self._cancel.set()  # stops a registry download; an HTTP request runs out on its own
        self._latest.drop()
        self._set_predicting(False)
        self.result.cancelled()

    def _set_predicting(self, value: bool) -> None:
        self.predicting = value
        self.refresh_bindings()  # the tab's esc shows in the footer only while there is something to cancel

    @work(thread=True, group="serving-predict")
    def _run(self, generation: int, target: str, source: str | None, native: bool,
             cancel: threading.Event) -> None:
        started = self.clock()
        shown = -1

        def progress(done: int, total: int) -> None:
            # At most one message per 0.1 % of the download (a backend may call back for
            # every few kB); the queue merges those the UI has not caught up with.
            nonlocal shown
            step = done * 1000 // total if total > 0 else 0
            if step != shown or done >= total:
                shown = step
                self.post_message(self.Progress(generation, done, total))

        mask = self.settings.home / "serving" / "last-mask.png"
        try:
            result = wait_detached(self._predict, self.settings, target, source=source, native=native,
                                   mask_path=str(mask), progress=progress, cancel=cancel)
        except Abandoned:
            cancel.set()
            return
        except Exception as exc:
            self.post_message(self.PredictDone(generation, None, error_text(exc), self.clock() - started))
        else:
            self.post_message(self.PredictDone(generation, result, None, self.clock() - started))

    def on_predict_card_progress(self, message: Progress) -> None:
        message.stop()
        if self._latest.is_current(message.generation) and self.predicting:
            self.result.progress(message.done, message.total)

    def on_predict_card_predict_done(self, message: PredictDone) -> None:
        message.stop()
        if not self._latest.is_current(message.generation):
            return  # a cancelled prediction that finished anyway
        self._set_predicting(False)
        if message.error is not None:
            self.result.failed(message.error)
            report_failure(self, message.error, "Predict failed", timeout=10)
            return
        result = message.result
        mask = result.get("mask_path")
        self.result.show(result, message.elapsed, display_path(mask, self.settings.workdir) if mask else None)
        self.post_message(self.Predicted())
