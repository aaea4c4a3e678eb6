"""The one small interface every registry backend implements, and the registry's errors.

Backends move bytes and names; they know nothing of models, versions or manifests (that is
browse.py, publishing.py and ops.py). Paths are relative POSIX paths under the registry root,
built by layout.py only. Every call blocks; a backend object belongs to one thread at a time.
"""
from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from vtm_tui.errors import OperationFailed, UserError

log = logging.getLogger(__name__)
CHUNK = 1 << 20  # transfer block: big enough that per-block Python overhead stays negligible

Sink = Callable[[bytes], object]
Source = Callable[[int], bytes]  # source(n) -> at most n bytes; b"" at the end
Progress = Callable[[int, "int | None"], object]  # (bytes done, total or None)


class RegistryError(OperationFailed):
    """A registry operation failed (exit code 1). Messages name the registry by its display URL
    and never carry a password."""


class RegistryUsageError(RegistryError):
    """Bad input: exit code 2."""

    exit_code = UserError.exit_code


class NotFound(RegistryError):
    """No such model, stage, version or file (exit code 2)."""

    exit_code = UserError.exit_code


class VersionConflict(RegistryError):
    """The version exists with different content (versions are immutable), or is being written
    (exit code 2)."""

    exit_code = UserError.exit_code


class ConnectError(RegistryError):
    """The server cannot be reached or dropped the connection."""


class RegistryTimeout(ConnectError):
    """The server did not answer in time."""


class TLSError(ConnectError):
    """TLS could not be set up (certificate not trusted, server without AUTH TLS, ...)."""


class AuthError(RegistryError):
    """Login refused, or no password available."""


class PermissionDenied(RegistryError):
    """The server (or file system) refused a write or a read."""


class IntegrityError(RegistryError):
    """Content does not match its manifest (digest, size, member list)."""


class ManifestError(IntegrityError):
    """A manifest is malformed."""


class UnsafeBundle(IntegrityError):
    """A bundle holds something that safe extraction refuses (links, `..`, unknown names, ...)."""


class Cancelled(RegistryError):
    """The caller's cancel event was set."""


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise Cancelled when the caller's cancel event is set (None: never)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


@dataclass(frozen=True)
class Entry:
    """One directory entry: name, whether it is a directory, size in bytes (None when the
    server does not say)."""
    name: str
    is_dir: bool
    size: int | None = None


class Backend(ABC):
    """Storage under one root: a local folder or an FTP server."""

    url: str  # for display: never holds a password

    @abstractmethod
    def list_dir(self, path: str) -> list[Entry]:
        """Entries of a directory ('' is the root); [] when it does not exist."""

    @abstractmethod
    def read_file(self, path: str, sink: Sink, *, max_size: int | None = None,
                  cancel: threading.Event | None = None) -> int:
        """Stream a file into sink; NotFound when missing, IntegrityError past max_size."""

    @abstractmethod
    def write_file(self, path: str, source: Source, *, cancel: threading.Event | None = None) -> int:
        """Create or overwrite a file with everything source gives; the parent must exist."""

    @abstractmethod
    def make_dirs(self, path: str) -> None:
        """Create a directory and its parents; fine when it exists."""

    @abstractmethod
    def claim_dir(self, path: str) -> bool:
        """Create exactly this directory (its parent exists): True if this call created it,
        False if it already existed. This is the registry's only lock."""

    @abstractmethod
    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        """Rename; with replace, an existing dst is replaced (atomically where the server can)."""

    @abstractmethod
    def delete_file(self, path: str) -> None:
        """Remove a file; fine when it does not exist."""

    @abstractmethod
    def remove_dir(self, path: str) -> None:
        """Remove an empty directory; fine when it does not exist."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the connection, if the backend holds one."""

    def warn(self, message: str) -> None:
        """Record something the caller should show (an entry a listing had to skip, a manifest
        ignored) and log it at INFO; take_warnings() hands it over once (the CLI prints it as
        `vtm: warning: ...`, the TUI shows it)."""
        log.info("%s", message)
        self.__dict__.setdefault("_warnings", []).append(message)

    def take_warnings(self) -> list[str]:
        """The warnings recorded since the last call, oldest first, each once (repeats merged)."""
        found = self.__dict__.pop("_warnings", [])
        return list(dict.fromkeys(found))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # conveniences over the primitives

    def read_bytes(self, path: str, max_size: int) -> bytes | None:
        """A small file's content, None when it does not exist."""
        parts: list[bytes] = []
        try:
            self.read_file(path, parts.append, max_size=max_size)
        except NotFound:
            return None
        return b"".join(parts)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or overwrite a small file with `data` (manifests, LATEST)."""
        view = memoryview(data)
        pos = 0

        def source(n: int) -> bytes:
            nonlocal pos
            chunk = view[pos:pos + n]
            pos += len(chunk)
            return bytes(chunk)

        self.write_file(path, source)
