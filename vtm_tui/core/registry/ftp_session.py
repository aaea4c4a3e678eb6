"""The FTP registry below its file primitives: the URL, the password, one control connection
with TLS and login, and the mapping of every failure to a RegistryError.

`ftp://user@host:port/root`, or `ftps://...` for explicit FTPS (AUTH TLS on the control
connection, PROT P for data: RFC 4217) with certificate checks against the system CAs or the one
CA in VTM_FTP_CA_FILE. Replies carry RFC 959's three-digit codes (2xx done, 3xx more needed, 4xx
refused for now, 5xx refused); aioftp speaks the protocol (ftp_client.py: its client as vtm
uses it).

The URL's path follows RFC 1738 §3.2.2: it is relative to the login directory
(`ftp://u@host/registry` is `registry` in u's home folder on a server without chroot), and an
absolute path starts with an encoded slash (`ftp://u@host/%2Fsrv/registry` is /srv/registry).

Blocking API over a private event loop, one control connection kept open between calls.
Every network step has a timeout (aioftp has none by default): connecting, the TLS handshake,
every reply, and every read or write of a transfer, so a stalled transfer fails after
`timeout` seconds without progress. After any failure or cancel the connection is dropped and
the next call opens a new one.

The password comes from the caller, VTM_FTP_PASSWORD, ~/.netrc (or $NETRC), or a getpass
prompt when stdin is a terminal, and only when the server asks for one. It is never put in a
message, a log line or a repr.
"""
from __future__ import annotations

import asyncio
import getpass
import netrc
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import quote, unquote, urlsplit

from vtm_tui.core.registry.base import (
    AuthError,
    Cancelled,
    ConnectError,
    RegistryError,
    RegistryTimeout,
    RegistryUsageError,
    TLSError,
)
from vtm_tui.settings import DEFAULT_FTP_TIMEOUT

SCHEMES = {"ftp": False, "ftps": True, "ftpes": True}  # scheme -> explicit TLS
ANONYMOUS = ("anonymous", "ftp")
CANCEL_POLL = 0.05


class _Secret:
    """Holds the password; shows as *** anywhere it could be printed."""
    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


class FtpSession:
    """One FTP server under a root folder, as one lazily opened control connection.

    url: `ftp[s]://user@host[:port]/root` (no password in it: RegistryUsageError). password: a
    string, or a callable asked only when the server wants one and nothing else has it.
    env_password: VTM_FTP_PASSWORD's value; netrc_file: $NETRC (default ~/.netrc). timeout:
    seconds without progress before a step fails. ca_file: the one CA trusted for ftps://
    (RegistryUsageError if it does not exist). interactive: may prompt with getpass (default:
    when stdin is a terminal)."""

    def __init__(self, url: str, *, password: str | Callable[[], str] | None = None,
                 env_password: str | None = None, netrc_file: str | os.PathLike | None = None,
                 timeout: float = DEFAULT_FTP_TIMEOUT, ca_file: str | os.PathLike | None = None,
                 interactive: bool | None = None):
        try:
            parts = urlsplit(url)
            port = parts.port or 21
        except ValueError as exc:
            raise RegistryUsageError(f"invalid registry URL: {exc}") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise RegistryUsageError("an FTP registry URL looks like ftp://user@host:port/path "
                                     "(or ftps:// for FTP over explicit TLS)")
        if parts.password is not None:
            raise RegistryUsageError(
                "put no password in the registry URL (it would show in process lists and logs): "
                "use VTM_FTP_PASSWORD, ~/.netrc or the prompt")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, port
        self.user = unquote(parts.username) if parts.username else "anonymous"
        self.root = server_path(parts.path)
        for text in (self.user, self.root):
            if any(c in text for c in "\r\n\0"):
                raise RegistryUsageError("the registry URL holds a control character")
        self.tls = SCHEMES[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{self.scheme}://{self.user}@{host}:{self.port}{url_path(self.root)}"
        self.timeout = timeout
        self.ca_file = ca_file or None
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise RegistryUsageError(f"VTM_FTP_CA_FILE: no such file {str(self.ca_file)!r}")
        self._password_arg = _Secret(password) if isinstance(password, str) else password
        self._env_password = _Secret(env_password) if env_password else None
        self._netrc_file = netrc_file or None
        self._interactive = interactive
        self._secret: _Secret | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = None

    # -- password ---------------------------------------------------------------------------

    def _password(self) -> str:
        if self._secret is None:
            self._secret = _Secret(self._find_password())
        return self._secret.value

    def _find_password(self) -> str:
        """A given password, VTM_FTP_PASSWORD, ~/.netrc, then (not for anonymous) a prompt: the
        caller's callable (the TUI's dialog), else getpass in a terminal."""
        given = self._password_arg
        if isinstance(given, _Secret):
            return given.value
        if self._env_password:
            return self._env_password.value
        found = self._from_netrc()
        if found:
            return found
        if self.user in ANONYMOUS:
            return "anonymous@"
        if callable(given):
            answer = given()
            if answer:
                return answer
            raise AuthError(f"{self.url}: no password given")
        interactive = self._interactive if self._interactive is not None else sys.stdin.isatty()
        if interactive:
            try:
                return getpass.getpass(f"FTP password for {self.user}@{self.host}: ")
            except (EOFError, KeyboardInterrupt):
                raise AuthError("no password given") from None
        raise AuthError(f"{self.url}: the server wants a password for {self.user!r}: set "
                        f"VTM_FTP_PASSWORD, add {self.host} to ~/.netrc, or run in a terminal to be asked")

    def _from_netrc(self) -> str | None:
        path = Path(self._netrc_file).expanduser() if self._netrc_file else Path.home() / ".netrc"
        if not path.is_file():
            return None
        try:
            entry = netrc.netrc(str(path)).authenticators(self.host)
        except (netrc.NetrcParseError, OSError) as exc:
            # the parser's message may quote a token of the file: show the line number only
            line = getattr(exc, "lineno", None)
            raise AuthError(f"{path}: cannot be read" + (f" (line {line})" if line else "")) from None
        if entry is None:
            return None
        login, _, password = entry
        return password if password and (not login or login == self.user) else None

    # -- running coroutines -----------------------------------------------------------------

    def _call(self, what: str, op: Callable[[object], Awaitable], cancel: threading.Event | None = None):
        """Run op(client) on the private loop, mapping every failure to a RegistryError."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RegistryError("blocking registry call made on a running event loop: "
                                "run it in a thread (asyncio.to_thread, Textual's @work(thread=True))")
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        where = f"{self.url}: {what}"
        try:
            return self._loop.run_until_complete(self._guarded(op, cancel))
        except RegistryError as exc:
            if not getattr(exc, "keep_connection", False):
                self._drop()
            raise
        except asyncio.CancelledError:
            self._drop()
            raise Cancelled(f"{where}: cancelled") from None
        except asyncio.TimeoutError:
            self._drop()
            raise RegistryTimeout(f"{where}: no answer from the server within {self.timeout:g} s "
                                  f"(VTM_FTP_TIMEOUT)") from None
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise TLSError(f"{where}: the server's TLS certificate is not trusted "
                           f"({exc.verify_message or exc.reason}); set VTM_FTP_CA_FILE to the CA "
                           f"that signed it") from None
        except ssl.SSLError as exc:
            self._drop()
            raise TLSError(f"{where}: TLS failed ({exc.reason or exc})") from None
        except ConnectionRefusedError:
            self._drop()
            raise ConnectError(f"{where}: connection refused (is the FTP server running?)") from None
        except (ConnectionError, asyncio.IncompleteReadError, EOFError) as exc:
            self._drop()
            raise ConnectError(f"{where}: the connection was lost ({type(exc).__name__})") from None
        except OSError as exc:
            self._drop()
            raise ConnectError(f"{where}: {exc.strerror or type(exc).__name__}") from None
        except Exception as exc:  # anything else the FTP library raises: named, never a traceback
            last = self._last_exchange()
            self._drop()
            import aioftp

            if isinstance(exc, aioftp.StatusCodeError):
                raise RegistryError(f"{where} failed: {last or reply_text(exc)}{reply_hint(exc)}") from None
            raise RegistryError(f"{where} failed: {type(exc).__name__}: {str(exc)[:300]}"
                                + (f" (after {last})" if last else "")) from None

    async def _guarded(self, op, cancel: threading.Event | None):
        if cancel is not None and cancel.is_set():
            raise asyncio.CancelledError
        task = asyncio.ensure_future(self._with_client(op))
        if cancel is None:
            return await task

        async def watch() -> None:
            while not task.done():
                if cancel.is_set():
                    task.cancel()
                    return
                await asyncio.sleep(CANCEL_POLL)

        watcher = asyncio.ensure_future(watch())
        try:
            return await task
        finally:
            watcher.cancel()

    async def _with_client(self, op):
        if self._client is None:
            self._client = await self._connect()
        return await op(self._client)

    async def _connect(self):
        import aioftp

        from vtm_tui.core.registry.ftp_client import client_class

        client = client_class()(socket_timeout=self.timeout, connection_timeout=self.timeout,
                                path_timeout=self.timeout, encoding="utf-8")
        try:
            await client.connect(self.host, self.port)
            if self.tls:
                # with a CA file, only that CA is trusted (pinned); else the system's CAs
                cafile = str(Path(self.ca_file).expanduser()) if self.ca_file else None
                context = ssl.create_default_context(cafile=cafile)
                try:
                    await client.upgrade_to_tls(context)
                except aioftp.StatusCodeError as exc:
                    raise TLSError(f"{self.url}: the server does not offer AUTH TLS ({reply_text(exc)})") from None
            await self._login(client)
        except BaseException:
            client.close()
            raise
        return client

    async def _login(self, client) -> None:
        import aioftp

        try:
            code, info = await client.command("USER " + self.user, ("230", "33x"))
            if code == "331":
                code, info = await client.command("PASS " + self._password(), ("230", "33x"), censor_after=5)
            if code != "230":
                raise AuthError(f"{self.url}: login needs more than a password (server said {code})")
        except aioftp.StatusCodeError as exc:
            raise AuthError(f"{self.url}: login refused for user {self.user!r}: wrong user name or "
                            f"password? (server said {reply_text(exc)})") from None

    def _last_exchange(self) -> str:
        """`COMMAND -> REPLY` of the last exchange on the control connection ('' before any)."""
        command = getattr(self._client, "last_command", "")
        reply = getattr(self._client, "last_reply", "")
        if not command:
            return reply
        return f"{command} -> {reply}" if reply else f"{command} (no reply)"

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None

    def close(self) -> None:
        """QUIT (waiting at most 5 s) and close the private event loop; a later call reconnects."""
        if self._client is not None and self._loop is not None and not self._loop.is_closed():
            client = self._client
            self._client = None
            try:
                self._loop.run_until_complete(asyncio.wait_for(client.quit(), min(self.timeout, 5)))
            except Exception:
                client.close()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()
        self._loop = None

    def _p(self, path: str) -> str:
        if not self.root:
            return path
        return (self.root.rstrip("/") + "/" + path) if path else self.root


def keep_connection(exc: RegistryError) -> RegistryError:
    """Mark an error after which the control connection is still in step (a refused command)."""
    exc.keep_connection = True
    return exc


def reply_code(exc) -> str:
    """The last reply code of an aioftp.StatusCodeError ('' when there is none), e.g. '550'."""
    codes = getattr(exc, "received_codes", ()) or ("",)
    return str(codes[-1])


def reply_text(exc) -> str:
    """`CODE text` of an aioftp.StatusCodeError, for messages (at most 300 characters)."""
    info = getattr(exc, "info", "")
    text = " ".join(str(line) for line in info) if isinstance(info, (list, tuple)) else str(info)
    return f"{reply_code(exc)} {text.strip()}".strip()[:300]


def server_path(url_path_part: str) -> str:
    """The server-side path of an FTP URL's path (RFC 1738 §3.2.2): relative to the login
    directory, '' for the login directory itself; absolute ('/srv/registry') when the first
    segment starts with an encoded slash (`/%2Fsrv/registry`). Segments are percent-decoded,
    empty ones dropped."""
    raw = url_path_part[1:] if url_path_part.startswith("/") else url_path_part
    absolute = raw[:3].lower() == "%2f"
    parts = [p for p in unquote(raw).split("/") if p]
    return ("/" if absolute else "") + "/".join(parts)


def url_path(root: str) -> str:
    """The URL path (with its leading slash) of a server path: server_path's inverse, e.g.
    'registry' -> '/registry', '/srv/registry' -> '/%2Fsrv/registry', '' -> ''."""
    if not root:
        return ""
    segments = "/".join(quote(part, safe="@:+,;=-._~!$&'()*") for part in root.split("/") if part)
    return ("/%2F" if root.startswith("/") else "/") + segments


def reply_hint(exc) -> str:
    """What to change for replies that name a server setting ('' for the others)."""
    if reply_code(exc) == "522":  # RFC 4217: TLS on the data connection refused
        return (" (the server wants each data connection to resume the control connection's TLS "
                "session: vsftpd's require_ssl_reuse; set require_ssl_reuse=NO there if this client "
                "cannot resume it)")
    return ""
