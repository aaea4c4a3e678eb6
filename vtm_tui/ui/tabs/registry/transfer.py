"""A registry transfer on screen: what moves, a progress bar, MB done and MB/s.

Core calls `progress(done, total)` from its worker thread for every block (a megabyte, so
hundreds of times a second on a fast link); `TransferMeter` turns that into at most ten
messages a second, and any still queued is replaced by the newer one (`can_replace`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ProgressBar

from vtm_tui.core.formatting import format_megabytes, format_rate
from vtm_tui.ui.widgets.text_line import TextLine

MIN_INTERVAL = 0.1  # seconds between two progress messages of one transfer


@dataclass
class TransferProgress(Message):
    phase: str  # "Pulling m/release/2", "Downloading m/dev/3", ...
    done: int
    total: int | None
    rate: float  # bytes per second since the phase began

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TransferProgress)


class TransferMeter:
    """The `progress` callback handed to core for one phase of a transfer. Thread-safe enough:
    core calls it from one thread at a time, and `post` is a message post."""

    def __init__(self, post: Callable[[Message], object], phase: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.post, self.phase, self.clock = post, phase, clock
        self.started = clock()
        self.last = float("-inf")

    def __call__(self, done: int, total: int | None) -> None:
        now = self.clock()
        finished = total is not None and done >= total
        if now - self.last < MIN_INTERVAL and not finished:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-3)
        self.post(TransferProgress(self.phase, done, total, rate))


def transfer_stats(done: int, total: int | None, rate: float) -> str:
    return f"{format_megabytes(done, total)}  {format_rate(rate)}"


class TransferBar(Horizontal):
    """One line: phase, bar with percentage, MB and MB/s. Hidden by the tab while idle."""

    def compose(self) -> ComposeResult:
        yield TextLine(id="transfer-phase")
        yield ProgressBar(total=None, show_eta=False, id="transfer-progress")
        yield TextLine(id="transfer-stats")

    def start(self, phase: str) -> None:
        self.query_one("#transfer-phase", TextLine).update(Text(phase, "bold"))
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.query_one("#transfer-stats", TextLine).update(Text("starting…", "dim"))

    def show_progress(self, message: TransferProgress) -> None:
        self.query_one("#transfer-phase", TextLine).update(Text(message.phase, "bold"))
        bar = self.query_one(ProgressBar)
        if message.total:
            bar.update(total=message.total, progress=min(message.done, message.total))
        self.query_one("#transfer-stats", TextLine).update(
            transfer_stats(message.done, message.total, message.rate))
