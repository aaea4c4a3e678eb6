"""Serving tab: start and stop `mlflow models serve` for a registered model's alias, watch
vtm's model servers, and predict: natively through a server when one answers, else from the
registry bundle with the local loader (its download shown as it goes).

Every blocking call (MLflow, the registry, starting a server, a prediction) runs in a worker
thread; results come back as messages. Nothing is read until the tab is first shown, and the
server list is polled only while it is on screen.
"""
from __future__ import annotations

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
from textual.suggester import SuggestFromList
from textual.widgets import Button, DataTable, Input, Label, Select, Switch, TabPane

from vtm_tui.core.formatting import display_path, format_duration
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.status_styles import MODEL_SERVER
from vtm_tui.ui.tabs.serving.actions import RANDOM, Catalogue, ServingSources, input_path
from vtm_tui.ui.tabs.serving.result import PredictResult
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.serving.native import ServerRecord

POLL_INTERVAL = 1.0  # seconds between server list reads (SQLite and /proc: cheap) while shown
COLUMNS = [("id", "ID"), ("status", "Status"), ("url", "URL"), ("model", "Model"), ("up", "Up"),
           ("pid", "PID")]


def server_cells(record: ServerRecord, now: float) -> tuple:
    return (Text(str(record.id), justify="right"), MODEL_SERVER.text(record.status),
            record.url, record.model_uri, Text(format_duration(now - record.created_at), justify="right"),
            Text(str(record.pid or "-"), justify="right"))


class Abandoned(Exception):
    """The app closed while a call was still running."""


def wait_detached(call, *args, **kwargs):
    """Run a long call that cannot be interrupted (starting a server: up to minutes) in a daemon
    thread, and wait for it from this worker. The app waits for its worker threads when it
    exits, so calling it here directly would hold up quitting; this gives up the wait instead
    (Abandoned) and leaves the call to finish, or to end with the process."""
    done, box = threading.Event(), {}

    def run() -> None:
        try:
            box["value"] = call(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="vtm-serving-call").start()
    while not done.is_set():
        if not pause(0.2, done):
            raise Abandoned
    if "error" in box:
        raise box["error"]
    return box["value"]


class ServingPane(TabPane):
    BINDINGS = [
        Binding("ctrl+s", "start_server", "Serve", id="serving.start",
                tooltip="Start `mlflow models serve` for the chosen model on the port given"),
        Binding("ctrl+t", "stop_server", "Stop server", id="serving.stop",
                tooltip="Stop the model server selected in the table"),
        Binding("ctrl+g", "predict", "Predict", id="serving.predict",
                tooltip="Predict with the target on the input (a file, or random data)"),
        Binding("escape", "cancel_predict", "Cancel predict", id="serving.cancel"),
        Binding("ctrl+y", "copy_url", "Copy URL", id="serving.copy_url",
                tooltip="Copy the selected server's URL"),
        Binding("ctrl+r", "refresh", "Refresh", id="serving.refresh",
                tooltip="Read the MLflow models and the registry again"),
    ]

    @dataclass
    class Catalogued(Message):
        catalogue: Catalogue

    @dataclass
    class Polled(Message):
        servers: list[ServerRecord]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ServingPane.Polled)

    @dataclass
    class StartDone(Message):
        model_uri: str
        port: int | None
        record: ServerRecord | None
        error: str | None

    @dataclass
    class Progress(Message):
        generation: int
        done: int
        total: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ServingPane.Progress) and message.generation == self.generation

    @dataclass
    class PredictDone(Message):
        generation: int
        result: dict | None
        error: str | None
        elapsed: float

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("Serving", id="serving")
        self.tab_title = "Serving"
        self.settings, self.sources = settings, sources
        # Pinned by the demo (a `serving` field on its Sources); the real ones otherwise.
        self.serving: ServingSources = getattr(sources, "serving", None) or ServingSources()
        self._started = False
        self._visible = False  # read by the poll thread: no polling for a tab nobody sees
        self._wake = threading.Event()
        self._servers: dict[int, ServerRecord] = {}
        self._order: list[int] = []
        self._cells: dict[int, tuple] = {}
        self._catalogue: Catalogue | None = None
        self._starting: set[tuple[str, int | None]] = set()
        self._auto_target = ""  # the target last filled in for the user (theirs once they edit it)
        self._generation = 0
        self._predicting = False
        self._cancel: threading.Event | None = None
        self._poll_error: str | None = None
        self._models_error: str | None = None

    def compose(self) -> ComposeResult:
        serve_bar = Horizontal(
            Label("Model", classes="serving-label"),
            Select([], prompt="models:/NAME@ALIAS (MLflow)", compact=True, id="serve-model"),
            Label("Port", id="serve-port-label"),
            Input(placeholder="5002", type="integer", max_length=5, compact=True, id="serve-port"),
            Button("Serve ^s", variant="primary", compact=True, id="serve-button"),
            id="serve-bar")
        table = DataTable(id="servers-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        target_row = Horizontal(
            Label("Target", classes="serving-label"),
            Input(placeholder="http://HOST:PORT, models:/NAME@ALIAS or registry NAME@STAGE", compact=True,
                  id="predict-target"),
            Button("Predict ^g", variant="primary", compact=True, id="predict-button"),
            classes="serving-row")
        input_row = Horizontal(
            Label("Input", classes="serving-label"),
            Input(RANDOM, placeholder="random, or an image / .npy / .pt file", compact=True, id="predict-input"),
            Label("Start a server if none", id="predict-native-label"),
            Switch(False, id="predict-native",
                   tooltip="On: start a model server for the target when none runs. "
                           "Off: a running server answers, else the registry bundle is run here"),
            classes="serving-row")
        predict_card = Vertical(target_row, input_row, PredictResult(id="predict-result"), id="predict-card")
        predict_card.border_title = "Predict"
        body = Vertical(serve_bar, table, TextLine(id="serve-status"), predict_card, id="serving-body")
        # Mounted just after the first frame, like the Runs tab: the tab is hidden at start.
        yield Lazy(body)

    @property
    def ready(self) -> bool:
        return bool(self.query("#predict-result"))

    @property
    def result(self) -> PredictResult:
        return self.query_one(PredictResult)

    def focus_default(self) -> None:
        if self.ready:
            self.query_one("#serve-model", Select).focus()
        else:
            self.call_after_refresh(self.focus_default)

    def on_show(self) -> None:
        self._visible = True
        if not self._started:
            self._start_watching()
        self._wake.set()

    def on_hide(self) -> None:
        self._visible = False

    def on_unmount(self) -> None:
        self._wake.set()
        if self._cancel is not None:
            self._cancel.set()  # a registry download stops with the app

    def _start_watching(self) -> None:
        if not self.ready:
            self.call_after_refresh(self._start_watching)
            return
        if self._started:
            return
        self._started = True
        self._render_status()
        self._read_catalogue()
        self._poll()

    # -- models and registry ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="serving-catalogue")
    def _read_catalogue(self) -> None:
        self.post_message(self.Catalogued(self.serving.catalogue(self.settings)))

    def action_refresh(self) -> None:
        if not self.ready:
            return
        self.query_one("#serve-status", TextLine).update(Text("Reading MLflow models and the registry…", "dim"))
        self._read_catalogue()
        self._wake.set()

    def on_serving_pane_catalogued(self, message: Catalogued) -> None:
        catalogue = self._catalogue = message.catalogue
        select = self.query_one("#serve-model", Select)
        wanted = select.value
        uris = [choice.uri for choice in catalogue.models]
        select.set_options([(choice.label, choice.uri) for choice in catalogue.models])
        if wanted in uris:
            select.value = wanted
        elif uris:
            select.value = uris[0]
        targets = uris + catalogue.registry
        self.query_one("#predict-target", Input).suggester = SuggestFromList(targets, case_sensitive=False)
        if catalogue.models_error and catalogue.models_error != self._models_error:
            self.notify(catalogue.models_error, title="MLflow models", severity="error", markup=False)
        self._models_error = catalogue.models_error
        self._render_status()

    @on(Select.Changed, "#serve-model")
    def _model_chosen(self, event: Select.Changed) -> None:
        if event.value is Select.NULL:
            return
        target = self.query_one("#predict-target", Input)
        if not target.value or target.value == self._auto_target or event.select.has_focus_within:
            self._set_target(str(event.value))

    def _set_target(self, value: str) -> None:
        self.query_one("#predict-target", Input).value = value
        self._auto_target = value

    # -- servers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="serving-poll")
    def _poll(self) -> None:
        while True:
            self._wake.clear()
            if self._visible:
                try:
                    self.post_message(self.Polled(self.serving.servers(self.settings)))
                    self._poll_error = None
                except Exception as exc:  # a locked or damaged store: say so once, keep trying
                    text = error_text(exc)
                    if text != self._poll_error:
                        self._poll_error = text
                        self.notify(f"Cannot list model servers: {text}", severity="error", markup=False)
            if not pause(POLL_INTERVAL, self._wake):
                return

    def on_serving_pane_polled(self, message: Polled) -> None:
        self._servers = {record.id: record for record in message.servers}
        table = self.query_one("#servers-table", DataTable)
        now = self.sources.clock()
        cells = {record.id: server_cells(record, now) for record in message.servers}
        order = [record.id for record in message.servers]
        if order != self._order:
            selected = self.selected_server()
            table.clear()
            for server_id in order:
                table.add_row(*cells[server_id], key=str(server_id))
            self._order = order
            if selected is not None and selected.id in order:
                table.move_cursor(row=order.index(selected.id), animate=False)
        else:
            for server_id in order:
                for (column, _), old, new in zip(COLUMNS, self._cells[server_id], cells[server_id], strict=True):
                    if old != new:
                        table.update_cell(str(server_id), column, new, update_width=True)
        self._cells = cells
        self._render_status()

    def selected_server(self) -> ServerRecord | None:
        if not self.ready:
            return None
        row = self.query_one("#servers-table", DataTable).cursor_row
        return self._servers.get(self._order[row]) if 0 <= row < len(self._order) else None

    @on(DataTable.RowSelected, "#servers-table")
    def _server_chosen(self) -> None:
        record = self.selected_server()
        if record is not None:
            self._set_target(record.url)
            self.notify(f"Predict target: {record.url} ({record.model_uri})", markup=False)

    def _render_status(self) -> None:
        """One line: servers being started first, then what MLflow and the registry hold."""
        parts = [Text(f"starting {uri} on :{port or 'default port'}…", "yellow")
                 for uri, port in sorted(self._starting, key=str)]
        catalogue = self._catalogue
        if catalogue is None:
            parts.append(Text("Reading MLflow models and the registry…", "dim"))
        else:
            if catalogue.models_error:
                parts.append(Text(f"MLflow: {catalogue.models_error}", "red"))
            else:
                where = f" at {catalogue.tracking_uri}" if catalogue.tracking_uri else ""
                parts.append(Text.assemble((f"{len(catalogue.models)} MLflow model aliases", "bold"), where))
            if catalogue.registry_error:
                parts.append(Text(f"registry: {catalogue.registry_error}", "red"))
            else:
                parts.append(Text(f"{len(catalogue.registry)} registry entries", "bold"))
            if not self._servers and not self._starting:
                parts.append(Text("no model server running: pick a model, ctrl+s serves it", "dim"))
        self.query_one("#serve-status", TextLine).update(Text(" · ").join(parts))

    @on(Button.Pressed, "#serve-button")
    def _serve_pressed(self) -> None:
        self.action_start_server()

    def action_start_server(self) -> None:
        if not self.ready:
            return
        model_uri = self.query_one("#serve-model", Select).value
        if model_uri is Select.NULL:
            self.notify("Pick a model to serve first (a registered MLflow model; ctrl+r reads them again)",
                        severity="warning")
            return
        port_text = self.query_one("#serve-port", Input).value.strip()
        port = int(port_text) if port_text.isdigit() else None
        if port_text and (port is None or not 0 < port < 65536):
            self.notify(f"Port must be a number from 1 to 65535, got {port_text!r}", severity="error",
                        markup=False)
            return
        key = (str(model_uri), port)
        if key in self._starting:
            self.notify(f"{model_uri} is already starting", markup=False)
            return
        self._starting.add(key)
        self._render_status()
        self.notify(f"Starting a model server for {model_uri} (this takes 20-60 s)…", markup=False)
        self._start(str(model_uri), port)

    @work(thread=True, group="serving-start")
    def _start(self, model_uri: str, port: int | None) -> None:
        try:
            record = wait_detached(self.serving.start, self.settings, model_uri, port)
        except Abandoned:
            return
        except Exception as exc:
            self.post_message(self.StartDone(model_uri, port, None, error_text(exc)))
        else:
            self.post_message(self.StartDone(model_uri, port, record, None))
        self._wake.set()

    def on_serving_pane_start_done(self, message: StartDone) -> None:
        self._starting.discard((message.model_uri, message.port))
        self._render_status()
        if message.error:
            self.notify(message.error, title="Serve failed", severity="error", markup=False, timeout=12)
        else:
            self.notify(f"Serving {message.model_uri} at {message.record.url}", markup=False)

    def action_stop_server(self) -> None:
        record = self.selected_server()
        if record is None:
            self.notify("No model server selected", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._stop(record.id)

        self.app.push_screen(ConfirmScreen(
            f"Stop model server {record.id}?\n{record.model_uri} at {record.url} (pid {record.pid})",
            yes="Stop server"), answered)

    @work(thread=True, group="serving-stop")
    def _stop(self, server_id: int) -> None:
        try:
            record = self.serving.stop(self.settings, server_id)
        except Exception as exc:
            self.notify(error_text(exc), title="Stop failed", severity="error", markup=False)
        else:
            self.notify(f"Model server {server_id} {record.status}", markup=False)
        self._wake.set()

    def action_copy_url(self) -> None:
        record = self.selected_server()
        if record is None:
            self.notify("No model server selected", severity="warning")
            return
        self.app.copy_to_clipboard(record.url)
        self.notify(f"Copied {record.url}", markup=False)

    # -- predict ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_predict":
            return self._predicting  # in the footer only while there is something to cancel
        return True

    @on(Button.Pressed, "#predict-button")
    def _predict_pressed(self) -> None:
        self.action_predict()

    @on(Input.Submitted, "#predict-target, #predict-input")
    def _predict_submitted(self) -> None:
        self.action_predict()

    def action_predict(self) -> None:
        if not self.ready:
            return
        if self._predicting:
            self.notify("A prediction is running (esc cancels it)")
            return
        target = self.query_one("#predict-target", Input).value.strip()
        if not target:
            self.notify("Give a target: a server URL, models:/NAME@ALIAS or a registry NAME@STAGE",
                        severity="warning")
            return
        source = input_path(self.query_one("#predict-input", Input).value, self.settings.workdir)
        native = self.query_one("#predict-native", Switch).value
        self._generation += 1
        self._cancel = threading.Event()
        self._set_predicting(True)
        url = target.startswith(("http://", "https://"))
        note = " (starting a native server first if none runs)" if native and not url else ""
        shown = display_path(source, self.settings.workdir) if source else "random data"
        self.result.busy(f"Predicting with {target} on {shown}{note}… esc cancels")
        self._predict(self._generation, target, source, native, self._cancel)

    def _set_predicting(self, value: bool) -> None:
        self._predicting = value
        self.refresh_bindings()

    @work(thread=True, group="serving-predict")
    def _predict(self, generation: int, target: str, source: str | None, native: bool,
                 cancel: threading.Event) -> None:
        clock = self.sources.clock  # pinned in the demo: the shown duration too
        started = clock()
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
            result = wait_detached(self.serving.predict, self.settings, target, source=source, native=native,
                                   mask_path=str(mask), progress=progress, cancel=cancel)
        except Abandoned:
            cancel.set()
            return
        except Exception as exc:
            self.post_message(self.PredictDone(generation, None, error_text(exc), clock() - started))
        else:
            self.post_message(self.PredictDone(generation, result, None, clock() - started))

    def on_serving_pane_progress(self, message: Progress) -> None:
        if message.generation == self._generation and self._predicting:
            self.result.progress(message.done, message.total)

    def on_serving_pane_predict_done(self, message: PredictDone) -> None:
        if message.generation != self._generation:
            return  # a cancelled prediction that finished anyway
        self._set_predicting(False)
        if message.error is not None:
            self.result.failed(message.error)
            self.notify(message.error, title="Predict failed", severity="error", markup=False, timeout=10)
            return
        result = message.result
        mask = result.get("mask_path")
        self.result.show(result, message.elapsed, display_path(mask, self.settings.workdir) if mask else None)
        self._wake.set()  # predict may have started a server

    def action_cancel_predict(self) -> None:
        if not self._predicting:
            return
        if self._cancel is not None:
            self._cancel.set()  # stops a registry download; an HTTP request runs out on its own
        self._generation += 1
        self._set_predicting(False)
        self.result.cancelled()
