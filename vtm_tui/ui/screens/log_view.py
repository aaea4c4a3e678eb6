"""Full-screen, live log of one run with search: type, enter to find, n/N next/previous,
f to show only matching lines."""
from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from vtm_tui.ui.widgets.log_tail import SearchLog
from vtm_tui.ui.widgets.text_line import TextLine


class LogScreen(Screen):
    BINDINGS = [
        Binding("escape", "close", "Close", id="log.close"),
        Binding("slash", "focus_search", "Search", id="log.search"),
        Binding("n", "jump(1)", "Next match", id="log.next"),
        Binding("N", "jump(-1)", "Previous match", id="log.prev"),
        Binding("f", "toggle_filter", "Only matches", id="log.filter"),
    ]

    def __init__(self, title: str, log_path: str) -> None:
        super().__init__()
        self.title_text, self.log_path = title, log_path

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title_text), id="log-title")
        yield Input(placeholder="search: type, enter to find; n/N next/previous; f only matching lines",
                    id="log-search", compact=True)
        yield SearchLog(id="full-log")
        yield TextLine(id="log-status")
        yield Footer()

    @property
    def search_log(self) -> SearchLog:
        return self.query_one(SearchLog)

    def on_mount(self) -> None:
        self.search_log.follow(self.log_path)
        self.search_log.focus()

    def action_close(self) -> None:
        self.dismiss()

    def action_focus_search(self) -> None:
        self.query_one("#log-search", Input).focus()

    @on(Input.Changed, "#log-search")
    def _query_changed(self, event: Input.Changed) -> None:
        self.search_log.set_query(event.value)
        self._status()

    @on(Input.Submitted, "#log-search")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self.search_log.focus()
        self.action_jump(1)

    def action_jump(self, step: int) -> None:
        if not self.search_log.query:
            self.notify("Type a search first (/)", severity="warning")
            return
        index = self.search_log.jump(step)
        self._status(index)

    def action_toggle_filter(self) -> None:
        self.search_log.toggle_filter()
        self._status()

    def _status(self, index: int | None = None) -> None:
        log = self.search_log
        if not log.query:
            text = f"{len(log.lines)} lines"
        else:
            count = log.match_count()
            where = f", at line {index + 1}" if index is not None else ""
            text = f"{count} lines match {log.query!r}{where}" if count else f"no line matches {log.query!r}"
        if log.filtered:
            text += "  [only matching lines]"
        self.query_one("#log-status", TextLine).update(text)
