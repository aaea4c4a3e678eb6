"""Serving tab: start and stop `mlflow models serve` for a registered model's alias, watch
vtm's model servers, and predict (the predict card): natively through a server when one answers,
else from the registry bundle with the local loader (its download shown as it goes).

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
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, Select

from vtm_tui.core.formatting import format_duration
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.pacing import Abandoned, pause, wait_detached
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.sources.serving import Catalogue
from vtm_tui.ui.status_styles import MODEL_SERVER
from vtm_tui.ui.tabs.base import VtmPane
from vtm_tui.ui.tabs.serving.predict_card import PredictCard
from vtm_tui.ui.tabs.serving.result import PredictResult
from vtm_tui.ui.widgets.live_table import LiveTable
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.serving.native import ServerRecord

POLL_INTERVAL = 1.0  # seconds between server list reads (SQLite and /proc: cheap) while shown
COLUMNS = [("id", "ID"), ("status", "Status"), ("url", "URL"), ("model", "Model"), ("up", "Up"),
           ("pid", "PID")]
PRIORITIES = {"pid": 3, "up": 2, "model": 1}  # who gives way first when the table is too narrow


def server_cells(record: ServerRecord, now: float) -> tuple:
    return (Text(str(record.id), justify="right"), MODEL_SERVER.text(record.status),
            record.url, record.model_uri, Text(format_duration(now - record.created_at), justify="right"),
            Text(str(record.pid or "-"), justify="right"))


class ServingPane(VtmPane):
    BODY = "#predict-result"
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

    def __init__(self, settings: Settings, sources: Sources) -> None:
        super().__init__("Serving", "serving", settings, sources)
        self.serving = sources.serving
        self._visible = False  # read by the poll thread: no polling for a tab nobody sees
        self._wake = threading.Event()
        self.servers: dict[int, ServerRecord] = {}  # by id, as last polled
        self.catalogue: Catalogue | None = None  # None: not read yet
        self.starting: set[tuple[str, int | None]] = set()  # (model URI, port) of servers being started
        self._models_error: str | None = None

    def compose(self) -> ComposeResult:
        serve_bar = Horizontal(
            Label("Model", classes="serving-label"),
            Select([], prompt="models:/NAME@ALIAS (MLflow)", compact=True, id="serve-model"),
            Label("Port", id="serve-port-label"),
            Input(placeholder="5002", type="integer", max_length=5, compact=True, id="serve-port"),
            Button("Serve ^s", variant="primary", compact=True, id="serve-button"),
            id="serve-bar")
        predict_card = PredictCard(self.settings, self.sources, id="predict-card")
        predict_card.border_title = "Predict"
        body = Vertical(serve_bar, LiveTable(COLUMNS, PRIORITIES, id="servers-table"), TextLine(id="serve-status"),
                        predict_card, id="serving-body")
        # Mounted just after the first frame, like the Runs tab: the tab is hidden at start.
        yield Lazy(body)

    @property
    def predict_card(self) -> PredictCard:
        return self.query_one(PredictCard)

    @property
    def result(self) -> PredictResult:
        return self.predict_card.result

    @property
    def predicting(self) -> bool:
        return self.built and self.predict_card.predicting

    @property
    def table(self) -> LiveTable:
        return self.query_one("#servers-table", LiveTable)

    def default_focus(self) -> Widget:
        return self.query_one("#serve-model", Select)

    def on_show(self) -> None:
        self._visible = True
        self._wake.set()

    def on_hide(self) -> None:
        self._visible = False

    def on_unmount(self) -> None:
        self._wake.set()

    def load(self) -> None:
        self._render_status()
        self._read_catalogue()
        self._poll()

    # -- models and registry ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="serving-catalogue")
    def _read_catalogue(self) -> None:
        self.post_message(self.Catalogued(self.serving.catalogue(self.settings)))

    def action_refresh(self) -> None:
        if not self.built:
            return
        self.query_one("#serve-status", TextLine).update(Text("Reading MLflow models and the registry…", "dim"))
        self._read_catalogue()
        self._wake.set()

    def on_serving_pane_catalogued(self, message: Catalogued) -> None:
        catalogue = self.catalogue = message.catalogue
        select = self.query_one("#serve-model", Select)
        wanted = select.value
        uris = [choice.uri for choice in catalogue.models]
        select.set_options([(choice.label, choice.uri) for choice in catalogue.models])
        if wanted in uris:
            select.value = wanted
        elif uris:
            select.value = uris[0]
        self.predict_card.suggest_targets(uris + catalogue.registry)
        if catalogue.models_error and catalogue.models_error != self._models_error:
            self.report_failure(catalogue.models_error, "MLflow models")
        self._models_error = catalogue.models_error
        self._render_status()
        self.mark_ready()

    @on(Select.Changed, "#serve-model")
    def _model_chosen(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.predict_card.offer_target(str(event.value), chosen=event.select.has_focus_within)

    # -- servers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="serving-poll")
    def _poll(self) -> None:
        while True:
            self._wake.clear()
            if self._visible:
                try:
                    self.post_message(self.Polled(self.serving.servers(self.settings)))
                except Exception as exc:  # a locked or damaged store: say so once, keep trying
                    self.report_poll_failure("Cannot list model servers", exc)
                else:
                    self.report_poll_failure("Cannot list model servers", None)
            if not pause(POLL_INTERVAL, self._wake):
                return

    def on_serving_pane_polled(self, message: Polled) -> None:
        self.servers = {record.id: record for record in message.servers}
        now = self.sources.clock()
        selected = self.table.current_key  # a rebuild keeps the cursor on its server
        self.table.show_rows({str(record.id): server_cells(record, now) for record in message.servers},
                             keep=selected)
        self._render_status()

    def selected_server(self) -> ServerRecord | None:
        if not self.built:
            return None
        key = self.table.current_key
        return self.servers.get(int(key)) if key is not None else None

    @on(DataTable.RowSelected, "#servers-table")
    def _server_chosen(self) -> None:
        record = self.selected_server()
        if record is not None:
            self.predict_card.set_target(record.url)
            self.notify(f"Predict target: {record.url} ({record.model_uri})", markup=False)

    def _render_status(self) -> None:
        """One line: servers being started first, then what MLflow and the registry hold."""
        parts = [Text(f"starting {uri} on :{port or 'default port'}…", "yellow")
                 for uri, port in sorted(self.starting, key=str)]
        catalogue = self.catalogue
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
            if not self.servers and not self.starting:
                parts.append(Text("no model server running: pick a model, ctrl+s serves it", "dim"))
        self.query_one("#serve-status", TextLine).update(Text(" · ").join(parts))

    @on(Button.Pressed, "#serve-button")
    def _serve_pressed(self) -> None:
        self.action_start_server()

    def action_start_server(self) -> None:
        if not self.built:
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
        if key in self.starting:
            self.notify(f"{model_uri} is already starting", markup=False)
            return
        self.starting.add(key)
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
        self.starting.discard((message.model_uri, message.port))
        self._render_status()
        if message.error:
            self.report_failure(message.error, "Serve failed", timeout=12)
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
            self.report_failure(exc, "Stop failed")
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

    # -- predict (the card runs it) --------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "cancel_predict":
            return self.predicting  # in the footer only while there is something to cancel
        return True

    def action_predict(self) -> None:
        if self.built:
            self.predict_card.predict()

    def action_cancel_predict(self) -> None:
        if self.built:
            self.predict_card.cancel()

    def on_predict_card_predicted(self) -> None:
        self._wake.set()  # predict may have started a server
