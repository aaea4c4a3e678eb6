"""A registry transfer (pull, promote, publish, convert): the worker that runs it, and on screen
what moves, a progress bar, MB done and MB/s.

One transfer at a time, in a thread worker on a Registry of its own (core's rule: one per
thread), cancelled with a threading.Event. Core calls `progress(done, total)` from that thread
for every block (a megabyte, so hundreds of times a second on a fast link); `TransferMeter` turns
that into at most ten messages a second, and any still queued is replaced by the newer one
(`can_replace`). The outcome comes back as `TransferBar.Ended`, which bubbles up to the tab.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ProgressBar

from vtm_tui.core.formatting import format_megabytes, format_rate
from vtm_tui.errors import error_text
from vtm_tui.ui.tabs.registry import jobs
from vtm_tui.ui.widgets.text_line import TextLine

if TYPE_CHECKING:
    from vtm_tui.core.registry import Registry

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


class _JobContext:
    def __init__(self, bar: TransferBar, cancel: threading.Event) -> None:
        self.bar, self.cancel = bar, cancel

    def meter(self, phase: str) -> TransferMeter:
        return TransferMeter(self.bar.post_message, phase)


class TransferBar(Horizontal):
    """One line: phase, bar with percentage, MB and MB/s. Hidden by the tab while idle."""

    @dataclass
    class Ended(Message):
        state: str  # done, failed, cancelled
        text: str
        outcome: jobs.Outcome | None = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.job: jobs.Job | None = None  # the transfer running, if any
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield TextLine(id="transfer-phase")
        yield ProgressBar(total=None, show_eta=False, id="transfer-progress")
        yield TextLine(id="transfer-stats")

    @property
    def busy(self) -> bool:
        return self.job is not None

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # the app waits for worker threads when it exits

    def run(self, job: jobs.Job, open_registry: Callable[[], AbstractContextManager[Registry]]) -> None:
        """Run `job` in a worker, on a registry of its own (`open_registry()`)."""
        self.job, self._cancel = job, threading.Event()
        self.query_one("#transfer-phase", TextLine).update(Text(job.phase, "bold"))
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.query_one("#transfer-stats", TextLine).update(Text("starting…", "dim"))
        self._transfer(job, open_registry, self._cancel)

    def cancel(self) -> bool:
        """Ask the running transfer to stop; False when there is nothing (more) to cancel."""
        if self._cancel is None or self._cancel.is_set():
            return False
        self._cancel.set()
        return True

    @work(thread=True, group="registry-transfer")
    def _transfer(self, job: jobs.Job, open_registry: Callable[[], AbstractContextManager[Registry]],
                  cancel: threading.Event) -> None:
        from vtm_tui.core.registry import Cancelled

        try:
            with open_registry() as registry:
                outcome = job.run(registry, _JobContext(self, cancel))
        except Cancelled:
            self.post_message(self.Ended("cancelled", f"{job.title} cancelled{job.if_cancelled}"))
        except Exception as exc:
            if cancel.is_set():  # a cancel that surfaced as another error (a dropped connection)
                self.post_message(self.Ended("cancelled", f"{job.title} cancelled{job.if_cancelled}"))
            else:
                self.post_message(self.Ended("failed", f"{job.title} failed: {error_text(exc)}"))
        else:
            self.post_message(self.Ended("done", outcome.text, outcome))

    def on_transfer_progress(self, message: TransferProgress) -> None:
        message.stop()
        if self.job is not None:
            self.show_progress(message)

    def on_transfer_bar_ended(self) -> None:
        self.job = self._cancel = None  # and on to the tab, which says how it ended

    def show_progress(self, message: TransferProgress) -> None:
        self.query_one("#transfer-phase", TextLine).update(Text(message.phase, "bold"))
        bar = self.query_one(ProgressBar)
        if message.total:
            bar.update(total=message.total, progress=min(message.done, message.total))
        self.query_one("#transfer-stats", TextLine).update(
            transfer_stats(message.done, message.total, message.rate))
