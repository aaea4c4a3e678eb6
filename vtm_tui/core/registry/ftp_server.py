"""A small FTP server (aioftp) for teams without one: `vtm ftp serve`.

Serves one folder (by default the embedded registry, <VTM_HOME>/registry) on loopback to one
read-write user, optionally to read-only users too. Plain FTP: passwords cross the network in
clear text, which is why it binds 127.0.0.1 unless told otherwise (reach it through an SSH
tunnel). Idle and stalled connections are closed after timeouts.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vtm_tui.errors import UserError

DEFAULT_PORT = 2121
BLOCK_SIZE = 1 << 20  # aioftp's default (8 KiB) caps a loopback upload at a third of this speed
IDLE_TIMEOUT = 300.0
SOCKET_TIMEOUT = 60.0


_ROUTINE = (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError)


class _QuietDisconnects(logging.Filter):
    """aioftp logs a traceback whenever a client drops its connection; that is routine here."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _ROUTINE)


_FILTER = _QuietDisconnects()


def _loop_exceptions(loop, context) -> None:
    if not isinstance(context.get("exception"), _ROUTINE):
        loop.default_exception_handler(context)


@dataclass(frozen=True)
class FtpUser:
    """A login of `vtm ftp serve`: name, password (never shown in a repr), whether it may write."""
    name: str
    password: str
    writable: bool = True

    def __repr__(self) -> str:
        return f"FtpUser({self.name!r}, writable={self.writable})"


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): plain FTP stays on the
    machine there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(root: Path, users: list[FtpUser], *, block_size: int = BLOCK_SIZE,
                idle_timeout: float | None = IDLE_TIMEOUT, socket_timeout: float | None = SOCKET_TIMEOUT,
                **aioftp_options):
    """An aioftp.Server for root; aioftp_options go to it as is (speed limits, data_ports, ...)."""
    import aioftp

    if not users:
        raise UserError("the FTP server needs at least one user")
    server_log = logging.getLogger("aioftp.server")
    if _FILTER not in server_log.filters:
        server_log.addFilter(_FILTER)
    root = Path(root).resolve()
    accounts = [aioftp.User(user.name, user.password, base_path=root, home_path="/",
                            permissions=[aioftp.Permission("/", readable=True, writable=user.writable)])
                for user in users]
    aioftp_options.setdefault("maximum_connections", 64)
    return aioftp.Server(accounts, block_size=block_size, idle_timeout=idle_timeout,
                         socket_timeout=socket_timeout, **aioftp_options)


async def serve(root: Path, users: list[FtpUser], host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
                ready: Callable[[str, int], None] | None = None, stop: asyncio.Event | None = None,
                **server_options) -> None:
    """Serve `root` over FTP on host:port to `users` until `stop` is set (forever without one).

    ready(host, port) is called once it listens (port 0 picks a free one). UserError when the
    address cannot be bound. server_options go to make_server (block size, ...)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    asyncio.get_running_loop().set_exception_handler(_loop_exceptions)
    server = make_server(root, users, **server_options)
    try:
        await server.start(host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        if ready:
            ready(host, server.address[1])
        if stop is None:
            await server.serve_forever()
        else:
            await stop.wait()
    finally:
        await server.close()


def run(root: Path, users: list[FtpUser], host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
        ready: Callable[[str, int], None] | None = None, **server_options) -> None:
    """Serve until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(root, users, host, port, ready=ready, stop=stop, **server_options)

    asyncio.run(main())


class ServerThread:
    """The server on a background thread (tests, or an app that serves while it runs)."""

    def __init__(self, root: Path, users: list[FtpUser], host: str = "127.0.0.1", port: int = 0,
                 **server_options):
        self.root, self.users, self.host, self.port = Path(root), users, host, port
        self._options = server_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="vtm-ftp-server", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(host: str, port: int) -> None:
                self.port = port
                self._ready.set()

            await serve(self.root, self.users, self.host, self.port, ready=ready, stop=self._stop,
                        **self._options)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 10.0) -> "ServerThread":
        """Start serving on the thread; returns once it listens (RuntimeError if it did not within
        `timeout` seconds). `port` is then the bound port."""
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            raise RuntimeError(f"FTP server did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to stop and wait up to `timeout` seconds for the thread."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(timeout)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
