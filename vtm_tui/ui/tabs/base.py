"""The shape every tab shares: `VtmPane`, a TabPane that

- loads once: when it is first shown (`load`), or, for a tab the app needs live from the start
  (EAGER), just after the first frame; either way only once its body is mounted (the tabs mount
  their bodies lazily, after the first frame: `built`);
- is handed the catalog whenever the Launcher (re)loads it (`set_catalog`; the app routes it);
- reports failures one way: `report_failure` (a notification, from any thread; its cards call
  the function of the same name) and `report_poll_failure` (a polling loop: once per distinct
  error, not once per poll);
- says when its first load is on screen, for tests and demos: `ready`, `await wait_ready()`;
- puts the focus on its main widget when the app shows it (`focus_default`).

Answers that may arrive out of order are dropped with `Latest` tickets (ui/latest.py); the
cards of a tab run their own workers and answer with messages that bubble up to the pane.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.widget import Widget
from textual.widgets import TabPane

from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.sources import Sources

if TYPE_CHECKING:  # the catalog module (pydantic) loads in a worker, after the first frame
    from vtm_tui.core.catalog.loader import Catalog


def report_failure(widget: Widget, error: BaseException | str, title: str = "", *,
                   timeout: float | None = None) -> None:
    """Tell the user something failed: a notification (safe from a worker thread)."""
    text = error if isinstance(error, str) else error_text(error)
    widget.notify(text, title=title, severity="error", markup=False, timeout=timeout)


class VtmPane(TabPane):
    EAGER: ClassVar[bool] = False  # load just after the first frame, not when first shown
    BODY: ClassVar[str | None] = None  # a selector that matches once the (lazy) body is mounted

    def __init__(self, title: str, tab_id: str, settings: Settings, sources: Sources) -> None:
        super().__init__(title, id=tab_id)
        self.tab_title = title  # the command palette names the tab of an action with it
        self.settings, self.sources = settings, sources
        self._started = False
        self._ready = asyncio.Event()
        self._poll_failure: str | None = None

    # -- loading ---------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        """The body is mounted: its widgets can be queried."""
        return self.BODY is None or bool(self.query(self.BODY))

    def when_built(self, callback: Callable[[], object]) -> None:
        """Call `callback` now if the body is mounted, else as soon as it is."""
        if self.built:
            callback()
        else:
            self.call_after_refresh(self.when_built, callback)

    def _on_mount(self) -> None:
        if self.EAGER:
            self.call_after_refresh(self._start_loading)

    def _on_show(self) -> None:
        if not self.EAGER:  # an EAGER tab shown at start still waits for the first frame
            self._start_loading()

    def _start_loading(self) -> None:
        if not self._started:
            self._started = True
            self.when_built(self.load)

    @property
    def started(self) -> bool:
        """The first load was asked for (the tab was shown, or is EAGER and mounted)."""
        return self._started

    def load(self) -> None:
        """Start the tab's first read (its workers); called once, with the body mounted."""

    def set_catalog(self, catalog: Catalog) -> None:
        """The catalog, each time the Launcher has (re)loaded it without errors."""

    # -- readiness -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The first load is on screen: what it read, or why it could not."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until `ready` (TimeoutError after `timeout` s). It returns at once, in the middle of the
        app's work: let the app settle (a test's `pilot.pause()`) before the next key."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    def mark_ready(self) -> None:
        self._ready.set()

    # -- focus -----------------------------------------------------------------------------

    def focus_default(self) -> None:
        """Focus the tab's main widget (once the body is there)."""
        self.when_built(lambda: self.default_focus().focus())

    def default_focus(self) -> Widget:
        return self

    # -- failures --------------------------------------------------------------------------

    def report_failure(self, error: BaseException | str, title: str = "", *, timeout: float | None = None) -> None:
        report_failure(self, error, title, timeout=timeout)

    def report_poll_failure(self, what: str, error: BaseException | None) -> None:
        """From a polling loop: `what` failed with `error` (None: it worked). Each distinct error
        is reported once, not on every poll; a poll that works again resets that."""
        text = None if error is None else error_text(error)
        if text is not None and text != self._poll_failure:
            self.report_failure(f"{what}: {text}")
        self._poll_failure = text
