"""The browser gateway: textual-serve's server, listening where `address` allows, letting in
only what `address.refusal` allows.

textual-serve runs the app command once per WebSocket, that is once per browser tab, with
`TEXTUAL_DRIVER` set to Textual's web driver, and relays the tab's keys, mouse and size to that
process and its screen updates back (xterm.js draws them on a canvas). Closing the tab sends
the process a quit. textual-serve (aiohttp) is imported only inside `serve`, so importing this
module stays cheap.
"""
from __future__ import annotations

import asyncio
import errno
import re
import shlex
import signal
import sys
import threading
from typing import Callable

from vtm_tui.core.web.address import BindAddress, port_in_use_error, refusal
from vtm_tui.errors import UserError

SHUTDOWN_GRACE = 3.0  # seconds open pages get to close before their handlers are cancelled
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# textual-serve's page fetches Roboto Mono from Google; the same font ships in its static
# folder. Serving it from there keeps the page working on machines without internet access
# and the picture the same everywhere.
_GOOGLE_FONTS = re.compile(r'<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com/[^"]*"\s*/?>')
_LOCAL_FONT = ('<style>@font-face {{ font-family: "Roboto Mono"; '
               'src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); '
               'font-weight: 100 700; }}</style>')


def app_command() -> list[str]:
    """The argv each browser tab runs: this interpreter's `vtm` with no arguments (the TUI)."""
    return [sys.executable, "-m", "vtm_tui.cli"]


def local_fonts(html: str, static_url: str) -> str:
    """The page with its Google Fonts stylesheet replaced by the bundled font (unchanged when a
    textual-serve release no longer links it)."""
    return _GOOGLE_FONTS.sub(lambda _: _LOCAL_FONT.format(static=static_url), html, count=1)


def _gateway(address: BindAddress, command: list[str], title: str):
    """A textual-serve Server whose pages and WebSocket go through `refusal` first."""
    import aiohttp_jinja2
    from aiohttp import web
    from textual_serve.server import Server, to_int

    class Gateway(Server):
        async def handle_index(self, request: web.Request) -> web.Response:
            reason = refusal(address, request.headers.get("Host"), None, websocket=False)
            if reason:
                raise web.HTTPForbidden(text=reason)
            # URLs from the Host the browser used, not from the bind address: the page works
            # through a tunnel on any local port, and on a --public server by its own name.
            base = f"{request.scheme}://{request.headers['Host']}"
            ws_base = ("wss" if request.scheme == "https" else "ws") + base[len(request.scheme):]
            static = base + str(request.app.router["static"].url_for(filename="/")).rstrip("/") + "/"
            context = {
                "font_size": to_int(request.query.get("fontsize", "16"), 16),
                "app_websocket_url": ws_base + str(request.app.router["websocket"].url_for()),
                "config": {"static": {"url": static}},
                "application": {"name": self.title},
            }
            response = aiohttp_jinja2.render_template("app_index.html", request, context)
            response.text = local_fonts(response.text, static)
            # Never kept in the back/forward cache: a cached page keeps its WebSocket open (and
            # answers pings), so its app would outlive the page by minutes.
            response.headers["Cache-Control"] = "no-store"
            return response

        async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
            reason = refusal(address, request.headers.get("Host"), request.headers.get("Origin"),
                             websocket=True)
            if reason:
                raise web.HTTPForbidden(text=reason)
            return await super().handle_websocket(request)

        async def on_startup(self, app: web.Application) -> None:
            pass  # the caller says where it serves; no banner in the log

    return Gateway(shlex.join(command), host=address.host, port=address.port, title=title)


async def _run(address: BindAddress, command: list[str], title: str, on_bound: Callable[[], None],
               stop: threading.Event | None) -> None:
    from aiohttp import web

    gateway = _gateway(address, command, title)
    app = await gateway._make_app()  # textual-serve's routes: /, /ws, /download/{key}, /static
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE, access_log=None)
    await runner.setup()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        try:
            await web.TCPSite(runner, address.host or None, address.port).start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise port_in_use_error(address) from None
            raise UserError(f"cannot listen on {address.host}:{address.port}: {exc.strerror or exc}") from None
        if stop is None:
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, stopped.set)
        else:
            threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopped.set)),
                             daemon=True).start()
        on_bound()
        await stopped.wait()
    finally:
        await runner.cleanup()  # open pages close; each tab's app gets its quit


def serve(address: BindAddress, command: list[str] | None = None, *, title: str = "vtm",
          on_bound: Callable[[], None] | None = None, stop: threading.Event | None = None) -> None:
    """Serve `command` (default: `app_command()`) to browsers at `address` until stopped.

    Blocks. Stops on SIGINT, SIGTERM or SIGHUP (main thread only), or, when `stop` is given,
    once it is set (then no signal handlers are installed, so any thread may call this).
    on_bound() runs once the port is bound, before the first request is served.
    Raises WebPortInUse (exit 2) when the port is taken, UserError when it cannot be bound."""
    asyncio.run(_run(address, command or app_command(), title, on_bound or (lambda: None), stop))
