"""`vtm web [--host H] [--port P] [--public] [--detach]`, `vtm web status`, `vtm web stop`: the
same app in a browser (textual-serve), one app process per browser tab."""
from __future__ import annotations

import getpass
import logging
import socket
import sys

from vtm_tui.commands import EXIT_FAILED, EXIT_OK, print_json
from vtm_tui.settings import Settings

PUBLIC_WARNING = ("vtm: warning: serving on {host}:{port} to the network with no login: anyone who can "
                  "reach this port can use vtm and launch jobs as {user}")


def _tunnel_hint(port: int) -> str:
    return (f"from your laptop: ssh -L {port}:127.0.0.1:{port} {socket.gethostname()}, "
            f"then open http://127.0.0.1:{port}")


def _serve(args, settings: Settings) -> int:
    from vtm_tui.core import web

    address = web.address_from(settings, args.host, args.port, args.public)
    if address.public:
        print(PUBLIC_WARNING.format(host=address.host or "*", port=address.port, user=getpass.getuser()),
              file=sys.stderr, flush=True)
    if args.detach:
        state, started = web.start_detached(settings, address)
        verb = "started" if started else "already running"
        print(f"vtm web {verb} at {state.url} (pid {state.pid}); stop it with `vtm web stop`")
        if not address.public:
            print(_tunnel_hint(address.port))
        return EXIT_OK

    def ready(state) -> None:
        print(f"vtm web serving at {state.url} (pid {state.pid}): one app per browser tab; "
              "runs keep going when pages close. Ctrl+C stops the server.", flush=True)
        if not address.public:
            print(_tunnel_hint(address.port), flush=True)

    # textual-serve logs a failing app's start-up through `logging`: keep those, one line each.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    from vtm_tui.commands import web_gateway

    web.serve(settings, address, web_gateway.serve, on_ready=ready)
    return EXIT_OK


def cmd_web(args, settings: Settings) -> int:
    from vtm_tui.core import web

    if args.web_action is None:
        return _serve(args, settings)
    if args.web_action == "stop":
        stopped = web.stop(settings)
        if stopped:
            print(f"vtm web server stopped (was {stopped.url}, pid {stopped.pid})")
        else:
            state = web.status(settings)
            print("vtm's web server was not running" + (f"; {state.message} (left alone)" if state.message else ""))
        return EXIT_OK
    state = web.status(settings)
    if args.json:
        print_json(state.to_json())
    else:
        print(f"{state.state}: {state.url}" + (f" (pid {state.pid})" if state.pid else "")
              + (" public" if state.public else "") + (f" - {state.message}" if state.message else ""))
    return EXIT_OK if state.state == "up" else EXIT_FAILED


def register(sub) -> None:
    web = sub.add_parser(
        "web", help="serve the app to a browser (textual-serve); status, stop",
        description="Serve the vtm app to browsers: each browser tab gets its own app over the same "
        "runs, store and registry. Listens on 127.0.0.1 only unless --public; reach it through an SSH "
        "tunnel: ssh -L 5173:127.0.0.1:5173 GPU-BOX, then open http://127.0.0.1:5173.")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; any non-loopback address needs --public)")
    web.add_argument("--port", type=int, help="port (default 5173 or VTM_WEB_PORT)")
    web.add_argument("--public", action="store_true",
                     help="allow a non-loopback --host: there is no login, anyone who can reach the port "
                     "can launch jobs")
    web.add_argument("--detach", action="store_true",
                     help="run in the background, past logout; see `vtm web status`, `vtm web stop`")
    web_sub = web.add_subparsers(dest="web_action", metavar="ACTION")
    state = web_sub.add_parser("status", help="is vtm's web server up? (exit 1 when not)")
    state.add_argument("--json", action="store_true")
    web_sub.add_parser("stop", help="stop vtm's web server (never another program on the port)")
    web.set_defaults(handler=cmd_web)
