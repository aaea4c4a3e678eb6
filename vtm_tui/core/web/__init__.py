"""`vtm web`: the same app in a browser, through textual-serve, one app process per tab.

    from vtm_tui.core.web import address_from, serve, start_detached, status, stop

    address = address_from(settings, "127.0.0.1", None, public=False)   # port: VTM_WEB_PORT, 5173
    serve(settings, address, web_gateway.serve, on_ready=print)   # foreground, until a signal
    start_detached(settings, address)             # -> (WebStatus, started): outlives the shell
    status(settings); stop(settings)              # stop only ever signals vtm's own server

The pages are viewers like the TUI: runs they launch are detached supervisors and outlive the
page, the server and the SSH session. There is no login, so the address is the gate: loopback
unless `public`; see address.py for the checks on every request. Importing this package loads
neither textual nor textual-serve: the gateway that serves is the CLI's (vtm_tui.commands.web_gateway),
handed to `serve` by its caller.
"""
from __future__ import annotations

from vtm_tui.core.web.address import (
    DEFAULT_HOST,
    BindAddress,
    PublicBindRefused,
    WebPortInUse,
    bind_address,
    refusal,
)
from vtm_tui.core.web.control import (
    WebServerRunning,
    WebStatus,
    address_from,
    log_path,
    serve,
    start_detached,
    status,
    stop,
)

__all__ = [
    "DEFAULT_HOST", "BindAddress", "PublicBindRefused", "WebPortInUse", "WebServerRunning", "WebStatus",
    "address_from", "bind_address", "log_path", "refusal", "serve", "start_detached", "status", "stop",
]
