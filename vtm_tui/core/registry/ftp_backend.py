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
        import aioftp

        async def op(client):
            try:
                found = await client.list(self._p(path))
            except aioftp.StatusCodeError as exc:
                if reply_code(exc).startswith("55") or reply_code(exc) == "450":
                    return []
                raise
            return [Entry(p.name, info.get("type") == "dir",
                          int(info["size"]) if str(info.get("size", "")).isdigit() else None)
                    for p, info in found if p.name not in ("", ".", "..")]

        return self._call(f"list {path or '/'}", op)

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
                raise keep_connection(self._refused(exc, "write", path)) from None

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

            return await _complete(stream, pump, lambda exc: keep_connection(self._refused(exc, "write", path)))

        return self._call(f"upload {path}", op, cancel)

    def make_dirs(self, path: str) -> None:
        async def op(client):
            full = self._p(path)
            base = "/" if full.startswith("/") else ""
            for part in [p for p in full.split("/") if p]:
                base = f"{base.rstrip('/')}/{part}" if base else part
                await client.command("MKD " + base, ("2xx", "4xx", "5xx"))

        self._call(f"create directory {path}", op)

    def claim_dir(self, path: str) -> bool:
        async def op(client):
            # aioftp's make_directory succeeds on an existing directory: send MKD ourselves
            code, info = await client.command("MKD " + self._p(path), ("2xx", "4xx", "5xx"))
            return code, info

        code, info = self._call(f"create directory {path}", op)
        if code.startswith("2"):
            return True
        parent, _, name = path.rpartition("/")
        if any(e.name == name and e.is_dir for e in self.list_dir(parent)):
            return False
        raise keep_connection(PermissionDenied(f"{self.url}: the server refused to create {path}: "
                                     f"{code} {' '.join(info).strip()}"))

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        import aioftp

        async def op(client):
            try:
                await client.rename(self._p(src), self._p(dst))
                return
            except aioftp.StatusCodeError as exc:
                if not replace:
                    raise keep_connection(self._refused(exc, "rename", f"{src} -> {dst}")) from None
            # servers like aioftp's refuse to rename onto an existing file: delete, then rename
            await client.command("DELE " + self._p(dst), ("2xx", "4xx", "5xx"))
            try:
                await client.rename(self._p(src), self._p(dst))
            except aioftp.StatusCodeError as exc:
                raise keep_connection(self._refused(exc, "rename", f"{src} -> {dst}")) from None

        self._call(f"rename {src} -> {dst}", op)

    def delete_file(self, path: str) -> None:
        async def op(client):
            await client.command("DELE " + self._p(path), ("2xx", "4xx", "5xx"))

        self._call(f"delete {path}", op)

    def remove_dir(self, path: str) -> None:
        async def op(client):
            await client.command("RMD " + self._p(path), ("2xx", "4xx", "5xx"))

        self._call(f"remove directory {path}", op)

    def _refused(self, exc, what: str, path: str) -> RegistryError:
        code = reply_code(exc)
        if code in ("530", "532") or code.startswith("55") or code == "450":
            return PermissionDenied(f"{self.url}: the server refused to {what} {path} "
                                    f"(permission denied or read-only account?): {reply_text(exc)}")
        return RegistryError(f"{self.url}: {what} {path} failed: {reply_text(exc)}")


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

