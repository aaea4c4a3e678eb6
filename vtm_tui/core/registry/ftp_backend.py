"""A registry on an FTP server: the backend primitives (list, stream a file in or out, MKD as
the version lock, rename, delete) over one FtpSession (ftp_session.py: URL, password, TLS, the
connection and its errors).

Commands and reply codes are RFC 959's: LIST, RETR/STOR (aioftp's streams), MKD, RNFR/RNTO,
DELE, RMD; 450 and 55x mean "no such file or refused", 530/532 "not allowed".
"""
from __future__ import annotations

import asyncio
import threading

from vtm_tui.core.registry.base import (
    CHUNK,
    Backend,
    ConnectError,
    Entry,
    IntegrityError,
    NotFound,
    PermissionDenied,
    RegistryError,
    Sink,
    Source,
)
from vtm_tui.core.registry.ftp_session import FtpSession, keep_connection, reply_code, reply_text


class FtpBackend(FtpSession, Backend):
    """The registry's Backend on an FTP server; see FtpSession for the arguments."""

    def __repr__(self) -> str:
        return f"FtpBackend({self.url!r})"

    # -- primitives ---------------------------------------------------------------------------

    def list_dir(self, path: str) -> list[Entry]:
        from vtm_tui.core.registry.ftp_client import read_listing
        from vtm_tui.core.registry.ftp_listing import parse_listing

        async def op(client):
            found = await read_listing(client, self._p(path))
            if found is None:
                return []
            listing = parse_listing(*found, client.parse_mlsx_line)
            for skipped in listing.skipped:
                self.warn(f"{self.url}: the listing of {path or 'the registry root'} has an entry vtm "
                          f"cannot read, skipped: {skipped}")
            return listing.entries

        return self._call(f"list {path or 'the registry root'}", op)

    def read_file(self, path: str, sink: Sink, *, max_size: int | None = None,
                  cancel: threading.Event | None = None) -> int:
        import aioftp

        async def op(client):
            try:
                stream = await client.download_stream(self._p(path))
            except aioftp.StatusCodeError as exc:
                if reply_code(exc).startswith("55") or reply_code(exc) == "450":
                    raise keep_connection(NotFound(f"{self.url}: no file {path}")) from None
                raise

            async def pump() -> int:
                done = 0
                while True:
                    if cancel is not None and cancel.is_set():
                        raise asyncio.CancelledError
                    block = await stream.read(CHUNK)
                    if not block:
                        return done
                    done += len(block)
                    if max_size is not None and done > max_size:
                        raise IntegrityError(f"{self.url}/{path}: larger than the expected {max_size} bytes")
                    sink(block)

            return await _complete(stream, pump, lambda exc: ConnectError(
                f"{self.url}: download of {path} failed: {reply_text(exc)}"))

        return self._call(f"download {path}", op, cancel)

    def write_file(self, path: str, source: Source, *, cancel: threading.Event | None = None) -> int:
        import aioftp

        async def op(client):
            try:
                stream = await client.upload_stream(self._p(path))
            except aioftp.StatusCodeError as exc:
                raise self._refused(exc, "write", path, f"STOR {self._p(path)}") from None

            async def pump() -> int:
                done = 0
                while True:
                    if cancel is not None and cancel.is_set():
                        raise asyncio.CancelledError
                    chunk = source(CHUNK)
                    if not chunk:
                        return done
                    await stream.write(chunk)
                    done += len(chunk)

            return await _complete(stream, pump, lambda exc: self._refused(
                exc, "write", path, f"STOR {self._p(path)}"))

        try:
            return self._call(f"upload {path}", op, cancel)
        except PermissionDenied as exc:
            raise self._missing_folder(path, exc) from None

    def make_dirs(self, path: str) -> None:
        self._ensure_folder(self._p(path))

    def _ensure_folder(self, full: str) -> None:
        """MKD a server path; when refused, fine if it is a folder already, else create its parent
        the same way and MKD again. Usually one command (the parents exist), or a MKD and a
        listing of the parent (the folder exists; servers answer 550 to both cases alike)."""
        if full in ("", "/"):
            return
        code, info = self._mkd(full)
        if code.startswith("2") or self._server_is_dir(full):
            return
        parent = full.rpartition("/")[0] or ("/" if full.startswith("/") else "")
        if parent not in ("", "/"):
            if not self._server_is_dir(parent):
                self._ensure_folder(parent)
            code, info = self._mkd(full)  # again: the parent may also have come from another client
            if code.startswith("2") or self._server_is_dir(full):  # or another client made it meanwhile
                return
        raise keep_connection(PermissionDenied(f"{self.url}: the server refused to create the folder {full}: "
                                               f"MKD {full} -> {code} {' '.join(info).strip()}"))

    def _mkd(self, full: str) -> tuple[str, list[str]]:
        return self._call(f"create the folder {full}", lambda client: client.command(
            "MKD " + full, ("2xx", "4xx", "5xx")))

    def _server_is_dir(self, full: str) -> bool:
        """Whether a server path is a folder: its parent's listing names it as one."""
        if full in ("", "/"):
            return True
        parent, _, name = full.rpartition("/")
        parent = parent or ("/" if full.startswith("/") else "")
        from vtm_tui.core.registry.ftp_client import read_listing
        from vtm_tui.core.registry.ftp_listing import parse_listing

        async def op(client):
            found = await read_listing(client, parent)
            return found is not None and any(
                e.name == name and e.is_dir for e in parse_listing(*found, client.parse_mlsx_line).entries)

        return self._call(f"look for the folder {full}", op)

    def _missing_folder(self, path: str, refused: RegistryError) -> RegistryError:
        """The error for a refused write to `path`: NotFound naming the folder when the folder
        it goes into does not exist (servers answer 550/553 to both), else `refused` as is."""
        folder = self._p(path.rpartition("/")[0])
        if self._server_is_dir(folder):
            return refused
        return keep_connection(NotFound(f"{self.url}: the folder {folder or '/'} does not exist on the "
                                        f"server, so {getattr(refused, 'command_reply', refused)} failed"))

    def claim_dir(self, path: str) -> bool:
        # aioftp's make_directory succeeds on an existing directory: send MKD ourselves
        code, info = self._mkd(self._p(path))
        if code.startswith("2"):
            return True
        parent, _, name = path.rpartition("/")
        if any(e.name == name and e.is_dir for e in self.list_dir(parent)):
            return False
        command_reply = f"MKD {self._p(path)} -> {code} {' '.join(info).strip()}"
        raise self._missing_folder(path, _refusal(PermissionDenied(
            f"{self.url}: the server refused to create the folder {path}: {command_reply}"), command_reply))

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        import aioftp

        async def op(client):
            try:
                await client.rename(self._p(src), self._p(dst))
                return
            except aioftp.StatusCodeError as exc:
                if not replace:
                    raise self._refused(exc, "rename", f"{src} -> {dst}", client.last_command) from None
            # servers like aioftp's refuse to rename onto an existing file: delete, then rename
            await client.command("DELE " + self._p(dst), ("2xx", "4xx", "5xx"))
            try:
                await client.rename(self._p(src), self._p(dst))
            except aioftp.StatusCodeError as exc:
                raise self._refused(exc, "rename", f"{src} -> {dst}", client.last_command) from None

        try:
            self._call(f"rename {src} -> {dst}", op)
        except PermissionDenied as exc:
            raise self._missing_folder(dst, exc) from None

    def delete_file(self, path: str) -> None:
        async def op(client):
            await client.command("DELE " + self._p(path), ("2xx", "4xx", "5xx"))

        self._call(f"delete {path}", op)

    def remove_dir(self, path: str) -> None:
        async def op(client):
            await client.command("RMD " + self._p(path), ("2xx", "4xx", "5xx"))

        self._call(f"remove directory {path}", op)

    def _refused(self, exc, what: str, path: str, command: str) -> RegistryError:
        code = reply_code(exc)
        command_reply = f"{command} -> {reply_text(exc)}"
        if code in ("530", "532") or code.startswith("55") or code == "450":
            return _refusal(PermissionDenied(f"{self.url}: the server refused to {what} {path} (permission "
                                             f"denied or read-only account?): {command_reply}"), command_reply)
        return _refusal(RegistryError(f"{self.url}: {what} {path} failed: {command_reply}"), command_reply)


def _refusal(exc: RegistryError, command_reply: str) -> RegistryError:
    """A refusal that keeps the connection, with its `COMMAND -> REPLY` for a better message."""
    exc.command_reply = command_reply
    return keep_connection(exc)


async def _complete(stream, pump, refused) -> int:
    """Run a data transfer (pump) on an open stream and wait for the server's final reply;
    refused(StatusCodeError) makes the error for a transfer the server did not accept."""
    import aioftp

    try:
        done = await pump()
    except BaseException:
        stream.close()
        raise
    try:
        await stream.finish()
    except aioftp.StatusCodeError as exc:
        raise refused(exc) from None
    return done

