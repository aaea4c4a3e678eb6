"""Where `vtm web` may listen, and which requests it lets in.

textual-serve has no login and the page can launch jobs, so the address is the only gate:
loopback unless the user says `--public`. Two browser-side holes stay open even on loopback,
and the checks here close them: any web page the user visits may open a WebSocket to
ws://127.0.0.1:5173 (WebSockets are not bound by the same-origin policy), and a DNS-rebinding
page can make the browser talk to the port under a foreign host name. So the WebSocket must
come from the page's own origin, and a loopback server answers only to loopback host names.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from vtm_tui.errors import UserError

DEFAULT_HOST = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# What a Host header may hold: a name or an address and an optional port, nothing to escape.
_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


class PublicBindRefused(UserError):
    """A non-loopback address without `--public` (exit code 2)."""


class WebPortInUse(UserError):
    """The port is taken by a program vtm did not start (exit code 2); vtm leaves it alone."""


@dataclass(frozen=True)
class BindAddress:
    """A checked listening address.

    host: as the user gave it ("127.0.0.1", "localhost", "0.0.0.0", "::1", a name);
    port: 1-65535; public: True when the address is reachable from other machines."""

    host: str
    port: int
    public: bool = False

    @property
    def probe_host(self) -> str:
        """Where to connect to reach this address from this machine (a wildcard's loopback)."""
        return _WILDCARDS.get(self.host, self.host)

    @property
    def url(self) -> str:
        """The page's URL from this machine, e.g. http://127.0.0.1:5173."""
        host = self.probe_host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def _addresses(host: str, port: int) -> set[str]:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host!r} is not an address this machine can listen on "
                        f"({getattr(exc, 'strerror', None) or exc})") from None
    return {str(info[4][0]).split("%", 1)[0] for info in infos}


def bind_address(host: str, port: int, public: bool = False) -> BindAddress:
    """Check where to listen. Loopback needs nothing; any other address needs `public`.

    Raises UserError (exit 2) for a port outside 1-65535 or a host that does not resolve, and
    PublicBindRefused (exit 2) for a non-loopback host without `public`."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be from 1 to 65535, got {port}")
    addresses = _addresses(host, port)
    loopback = bool(addresses) and all(ipaddress.ip_address(ip).is_loopback for ip in addresses)
    if not loopback and not public:
        raise PublicBindRefused(
            f"--host {host} would let anyone who can reach port {port} use vtm and launch jobs "
            f"(there is no login); keep the default {DEFAULT_HOST} and use an SSH tunnel, or add --public")
    return BindAddress(host, port, public=not loopback)


def port_taken(address: BindAddress, timeout: float = 0.5) -> bool:
    """True if something already accepts connections at the address (from this machine)."""
    try:
        with socket.create_connection((address.probe_host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use_error(address: BindAddress) -> WebPortInUse:
    """The one-line error (exit 2) for a port another program holds; vtm never touches it."""
    return WebPortInUse(
        f"port {address.port} on {address.probe_host} is in use by another program, not vtm's web "
        f"server; vtm will not stop it. Free the port, or choose another with --port or VTM_WEB_PORT")


def _hostname(netloc: str) -> str:
    """'Host: [::1]:5173' -> '::1'; 'localhost:5173' -> 'localhost' (lower case)."""
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0].lower()
    return netloc.rsplit(":", 1)[0].lower() if netloc.count(":") == 1 else netloc.lower()


def refusal(address: BindAddress, host_header: str | None, origin: str | None, *,
            websocket: bool) -> str | None:
    """Why a request must be refused (a short reason for a 403), or None to let it in.

    host_header: the request's Host; origin: its Origin header (browsers always send one on a
    WebSocket handshake). Any page: a Host we can put back into the page unescaped, and, on a
    loopback server, a loopback name (DNS rebinding). WebSockets: an Origin equal to the Host,
    so that only the page this server sent can drive the app."""
    if not host_header or not _HOST_HEADER.match(host_header):
        return "bad Host header"
    if not address.public and _hostname(host_header) not in LOOPBACK_NAMES | {address.host.lower()}:
        return "this vtm listens on loopback only: reach it as 127.0.0.1 or localhost (SSH tunnel)"
    if websocket:
        if not origin:
            return "WebSocket without an Origin"
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host_header.lower():
            return "WebSocket from another site's page"
    return None
