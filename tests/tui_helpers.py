"""Helpers for the TUI tests: read the screen as text, wait for a condition, type into a field."""
from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console


def screen_text(app) -> str:
    """The current screen as plain text (what a user would read), modals included."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text()


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 10.0,
                   what: str = "condition", interval: float = 0.1):
    """Let the app run until predicate() is truthy; fail with the screen on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; screen:\n"
                                 + screen_text(pilot.app))
        await pilot.pause(interval)


async def wait_for_text(pilot, *texts: str, timeout: float = 10.0) -> str:
    """Let the app run until every text is on screen (rendering lags a key press a little)."""
    def shown() -> str:
        screen = screen_text(pilot.app)
        return screen if all(text in screen for text in texts) else ""

    return await wait_for(pilot, shown, timeout=timeout, what=f"{texts} on screen")


async def type_into(pilot, selector: str, text: str):
    """Focus the Input at selector, clear it and type text as key presses; returns the Input."""
    from textual.widgets import Input

    field = pilot.app.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    field.value = ""
    await pilot.press(*text)
    return field
