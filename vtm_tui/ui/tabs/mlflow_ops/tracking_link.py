"""The MLflow Ops tab's line to the tracking server, shared by the tab and its cards: the Tracking
client (opened on first use, in a worker thread: opening it may ask the embedded server's state),
and how a failed call is told to the tab (`TrackingFailed`, which bubbles up from any card).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from vtm_tui.errors import error_text
from vtm_tui.settings import Settings

if TYPE_CHECKING:
    from vtm_tui.core.tracking.client import Tracking


@dataclass
class TrackingFailed(Message):
    """An MLflow call went wrong; `unreachable` when the server or store did not answer."""
    what: str  # connect, runs, history, best, register
    uri: str
    error: str
    unreachable: bool


class TrackingLink:
    def __init__(self, settings: Settings, open_tracking: Callable[[Settings], Tracking]) -> None:
        self.settings, self._open = settings, open_tracking
        self._tracking: Tracking | None = None

    def get(self) -> Tracking:
        """The Tracking, opened on first use. Blocking: call it from a worker thread."""
        if self._tracking is None:
            self._tracking = self._open(self.settings)
        return self._tracking

    def reset(self) -> None:
        """Open it again next time: the server may have moved (the embedded one restarted)."""
        self._tracking = None

    @property
    def uri(self) -> str:
        """Where it points, for display (before it is opened: the configured URI)."""
        tracking = self._tracking
        return tracking.display_uri if tracking is not None else self.settings.effective_tracking_uri

    def failed(self, what: str, exc: BaseException) -> TrackingFailed:
        """The message that tells the tab (and the card that asked) about a failed call."""
        from vtm_tui.core.tracking.client import TrackingUnavailable

        return TrackingFailed(what, self.uri, error_text(exc), isinstance(exc, TrackingUnavailable))
