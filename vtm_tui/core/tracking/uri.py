"""Which tracking server? The one answer every part of vtm uses.

In order: a URI given for this call (--tracking-uri, a script step's tracking_uri), then
MLFLOW_TRACKING_URI, then vtm's embedded server: the one running now, whatever port and backend
`vtm mlflow up` gave it, else the configured one (127.0.0.1:VTM_MLFLOW_PORT), started on demand.
"""
from __future__ import annotations

from vtm_tui.core.tracking import server
from vtm_tui.core.tracking.client import Tracking
from vtm_tui.settings import Settings


def resolve_tracking_uri(settings: Settings, uri: str | None = None, *, start: bool = True) -> str:
    """The tracking URI to use.

    start=True (launching a run, importing, serving, publishing): when the answer is vtm's
    embedded server and it is down, start it and wait until it is healthy (UserError if it
    cannot start). start=False (looking: a tab, a status line): never start anything; the
    embedded server's URI comes back whether or not it answers."""
    if uri:
        return uri
    if settings.tracking_uri:
        return settings.tracking_uri
    state = server.status(settings)
    if state.managed and state.state == "up":
        return state.uri
    if start:
        return server.up(settings).uri
    return state.uri if state.managed else settings.effective_tracking_uri


def open_tracking(settings: Settings, uri: str | None = None, *, start: bool = True) -> Tracking:
    """A Tracking client on resolve_tracking_uri(settings, uri, start=start); connects on first use."""
    return Tracking(resolve_tracking_uri(settings, uri, start=start))
