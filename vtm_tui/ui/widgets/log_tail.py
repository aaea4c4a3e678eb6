"""Log views that follow a run's log file from a worker thread, with bounded memory.

The worker reads new bytes by offset (`LogFollower`) into a bounded buffer and posts a
coalescing `Updated` message; the handler drains the buffer. However fast the run prints, the
UI handles at most one update per message-loop turn and at most `max_lines` lines each.
"""
from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass

from rich.highlighter import Highlighter
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Log

from vtm_tui.core.formatting import format_size
from vtm_tui.ui.latest import Latest
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.tailer import LogFollower

TAIL_INTERVAL = 0.25  # seconds between reads: 4 updates a second reads as live
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # never let a log drive the terminal


def _skipped_note(skipped: int) -> str:
    return f"[vtm: {format_size(skipped)} of output skipped to keep up]"


class FollowsFile:
    """Mixin for a widget that shows the end of a file and keeps following it."""

    @dataclass
    class Updated(Message):
        view: FollowsFile

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, FollowsFile.Updated) and message.view is self.view

    def _init_follow(self, max_lines: int, start_bytes: int) -> None:
        self.start_bytes = start_bytes
        self.path: str | None = None
        self._lock = threading.Lock()
        self._pending: deque[str] = deque(maxlen=max_lines)
        self._follows = Latest()  # a switch to another file makes the old worker's lines stale

    def follow(self, path: str | None) -> None:
        """Show the end of `path` and keep following it (None: show nothing)."""
        if path == self.path:
            return
        self.path = path
        with self._lock:
            generation = self._follows.new()
            self._pending.clear()
        self.clear_lines()
        if path:
            self._follow(path, generation)
        else:
            self.workers.cancel_group(self, "follow")

    @work(thread=True, exclusive=True, group="follow")
    def _follow(self, path: str, generation: int) -> None:
        follower = LogFollower(path, start_bytes=self.start_bytes)
        while True:
            lines, skipped = follower.read_new()
            if lines or skipped:
                with self._lock:
                    if not self._follows.is_current(generation):
                        return
                    if skipped:
                        self._pending.append(_skipped_note(skipped))
                    self._pending.extend(lines)
                self.post_message(self.Updated(self))
            if not pause(TAIL_INTERVAL):
                return

    def on_follows_file_updated(self, message: Updated) -> None:
        message.stop()
        with self._lock:
            lines = list(self._pending)
            self._pending.clear()
        if lines:
            self.add_lines(lines)

    def clear_lines(self) -> None:
        raise NotImplementedError

    def add_lines(self, lines: list[str]) -> None:
        raise NotImplementedError


class LogTail(FollowsFile, Widget):
    """The last lines of a log, newest at the bottom, like `tail -f`.

    A plain widget rather than a scrolling Log on purpose: its size never changes, so new
    output only repaints it. (A Log's virtual size grows with every write, and each change
    costs a layout pass of the whole screen: at 10k lines/s that was most of the key latency.)
    Scrolling and search live in the full-screen log.
    """

    DEFAULT_CSS = """
    LogTail {
        height: 1fr;
    }
    """

    def __init__(self, max_lines: int = 500, start_bytes: int = 64 * 1024, **kwargs) -> None:
        super().__init__(**kwargs)
        self._init_follow(max_lines, start_bytes)
        self._lines: deque[str] = deque(maxlen=max_lines)

    @property
    def lines(self) -> list[str]:
        return list(self._lines)

    def clear_lines(self) -> None:
        self._lines.clear()
        self.refresh()

    def add_lines(self, lines: list[str]) -> None:
        self._lines.extend(lines)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        style = self.rich_style
        index = len(self._lines) - height + y
        if not 0 <= index < len(self._lines):
            return Strip.blank(width, style)
        text = _CONTROL.sub("\ufffd", self._lines[index].expandtabs())
        return Strip([Segment(text, style)]).crop_extend(0, width, style)


_MATCH_STYLE = Style.parse("bold black on yellow")


class _QueryHighlighter(Highlighter):
    def __init__(self) -> None:
        self.query = ""

    def highlight(self, text: Text) -> None:
        if self.query:
            text.highlight_words([self.query], _MATCH_STYLE, case_sensitive=False)


class SearchLog(FollowsFile, Log):
    """A scrolling, following log with search: every match highlighted, n/N jump between
    matching lines, and a filter mode that shows only matching lines. Keeps its own bounded
    copy of all lines so the filter can be turned off again."""

    CURRENT_STYLE = Style(bgcolor="grey30")

    def __init__(self, max_lines: int = 50_000, **kwargs) -> None:
        super().__init__(max_lines=max_lines, highlight=True, **kwargs)
        self._init_follow(max_lines, 8 * 1024 * 1024)
        self.highlighter = _QueryHighlighter()
        self._all: deque[str] = deque(maxlen=max_lines)
        self.query = ""
        self.filtered = False
        self.current: int | None = None

    def clear_lines(self) -> None:
        self._all.clear()
        self.current = None
        self.clear()

    def add_lines(self, lines: list[str]) -> None:
        self._all.extend(lines)
        if self.filtered and self.query:
            lines = [line for line in lines if self._matches(line)]
        if lines:
            self.write_lines(lines)

    def _matches(self, line: str) -> bool:
        return self.query.lower() in line.lower()

    def set_query(self, query: str) -> None:
        self.query = query
        self.highlighter.query = query
        self.current = None
        self.auto_scroll = not query  # browsing matches must not be yanked to the end
        if self.filtered:
            self._redisplay()
        self.notify_style_update()
        self.refresh()

    def toggle_filter(self) -> bool:
        self.filtered = not self.filtered
        self.current = None
        self._redisplay()
        return self.filtered

    def _redisplay(self) -> None:
        lines = list(self._all)
        if self.filtered and self.query:
            lines = [line for line in lines if self._matches(line)]
        self.clear()
        self.write_lines(lines)

    def match_count(self) -> int:
        if not self.query:
            return 0
        return sum(1 for line in self.lines if self._matches(line))

    def jump(self, step: int) -> int | None:
        """Move to the next (step=1) or previous (step=-1) matching line; its index, or None."""
        lines = self.lines
        if not self.query or not lines:
            return None
        total = len(lines)
        start = self.current if self.current is not None else (-1 if step > 0 else total)
        for offset in range(1, total + 1):
            index = (start + step * offset) % total
            if self._matches(lines[index]):
                self.current = index
                self.auto_scroll = False
                self.scroll_to(y=max(0, index - self.size.height // 3), animate=False)
                self.notify_style_update()
                self.refresh()
                return index
        return None

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.current is not None and self.scroll_offset.y + y == self.current:
            strip = Strip([Segment(text, self._on_current_line(seg_style), control)
                           for text, seg_style, control in strip], strip.cell_length)
        return strip

    def _on_current_line(self, style: Style | None) -> Style:
        style = style or Style()
        if style.bgcolor == _MATCH_STYLE.bgcolor:
            return style  # the match itself stays yellow
        return style + self.CURRENT_STYLE
