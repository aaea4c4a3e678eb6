"""The one-line header: tracking server state, registry location, catalog path."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.message import Message

from vtm_tui.core.formatting import display_path, redact_url
from vtm_tui.settings import Settings
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.status_styles import TRACKING_SERVER
from vtm_tui.ui.widgets.text_line import TextLine

STATUS_INTERVAL = 5.0  # seconds; the check is an HTTP round trip with a 2 s timeout


class StatusHeader(TextLine):
    @dataclass
    class ServerChecked(Message):
        state: str
        uri: str
        note: str

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, StatusHeader.ServerChecked)

    def __init__(self, settings: Settings, sources: Sources, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings, self.sources = settings, sources
        self._server: tuple[str, str, str] = ("checking", settings.effective_tracking_uri, "")

    def on_mount(self) -> None:
        self._render_line()
        self.call_after_refresh(self._watch_server)

    def registry_text(self) -> str:
        if self.settings.registry_url:
            return redact_url(self.settings.registry_url)
        return display_path(self.settings.home / "registry", self.settings.workdir)

    def _render_line(self) -> None:
        state, uri, note = self._server
        line = Text.assemble(
            ("MLflow ", "bold"), ("● " + state, TRACKING_SERVER.style(state)), " ", uri,
            (f" ({note})" if note else "", "dim"),
            ("  registry ", "bold"), self.registry_text(),
            ("  catalog ", "bold"), display_path(self.settings.catalog_path, self.settings.workdir))
        self.update(line)

    @work(thread=True, exclusive=True, group="server-status")
    def _watch_server(self) -> None:
        while True:
            try:
                status = self.sources.server_status(self.settings)
                note = ""
                if status.state == "down" and self.settings.embedded_tracking:
                    # Port taken by a stranger, or simply not started yet: say which, briefly.
                    note = "port in use" if status.message else "starts on first launch"
                self.post_message(self.ServerChecked(status.state, status.uri, note))
            except Exception as exc:  # a status check must never take the header down
                self.post_message(self.ServerChecked("unknown", self.settings.effective_tracking_uri,
                                                     str(exc)))
            if not pause(STATUS_INTERVAL):
                return

    def on_status_header_server_checked(self, message: ServerChecked) -> None:
        self._server = (message.state, message.uri, message.note)
        self._render_line()
