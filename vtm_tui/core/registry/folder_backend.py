"""A registry in a local (or network-mounted) folder: `file:///path` or a plain path."""
from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from vtm_tui.core.registry.base import (
    CHUNK,
    Backend,
    Entry,
    IntegrityError,
    NotFound,
    PermissionDenied,
    RegistryError,
    Sink,
    Source,
    check_cancel,
)


class FolderBackend(Backend):
    """A registry in a folder: writes go to a temporary name, are fsynced when small
    (manifests, LATEST) and renamed into place; `claim_dir` is mkdir, atomic on any POSIX file
    system. The folder may be network-mounted."""
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FolderBackend({str(self.root)!r})"

    def _p(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts) or path.startswith("/"):
            raise RegistryError(f"refusing path {path!r} outside the registry")
        return self.root.joinpath(*parts)

    def _error(self, exc: OSError, what: str, path: str) -> RegistryError:
        if isinstance(exc, PermissionError) or exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return PermissionDenied(f"{self.url}: permission denied: {what} {path}")
        return RegistryError(f"{self.url}: {what} {path} failed: {exc.strerror or exc}")

    def list_dir(self, path: str) -> list[Entry]:
        try:
            with os.scandir(self._p(path)) as it:
                return [Entry(e.name, e.is_dir(follow_symlinks=False),
                              None if e.is_dir(follow_symlinks=False) else e.stat(follow_symlinks=False).st_size)
                        for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._error(exc, "list", path) from None

    def read_file(self, path: str, sink: Sink, *, max_size: int | None = None,
                  cancel: threading.Event | None = None) -> int:
        done = 0
        try:
            with open(self._p(path), "rb", buffering=0) as handle:
                while True:
                    check_cancel(cancel)
                    chunk = handle.read(CHUNK)
                    if not chunk:
                        return done
                    done += len(chunk)
                    if max_size is not None and done > max_size:
                        raise IntegrityError(f"{self.url}/{path}: larger than the expected {max_size} bytes")
                    sink(chunk)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"{self.url}: no file {path}") from None
        except OSError as exc:
            raise self._error(exc, "read", path) from None

    def write_file(self, path: str, source: Source, *, cancel: threading.Event | None = None) -> int:
        done = 0
        target = self._p(path)
        try:
            with open(target, "wb", buffering=0) as handle:
                while True:
                    check_cancel(cancel)
                    chunk = source(CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                if done < (1 << 20):  # manifests and LATEST: make them durable before the rename
                    os.fsync(handle.fileno())
            return done
        except OSError as exc:
            raise self._error(exc, "write", path) from None

    def make_dirs(self, path: str) -> None:
        try:
            self._p(path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, "create directory", path) from None

    def claim_dir(self, path: str) -> bool:
        try:
            self._p(path).mkdir()
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._error(exc, "create directory", path) from None

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        try:
            if replace:
                os.replace(self._p(src), self._p(dst))
            else:
                if self._p(dst).exists():
                    raise RegistryError(f"{self.url}: cannot rename {src} to {dst}: it exists")
                os.rename(self._p(src), self._p(dst))
        except OSError as exc:
            raise self._error(exc, "rename", f"{src} -> {dst}") from None

    def delete_file(self, path: str) -> None:
        try:
            self._p(path).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete", path) from None

    def remove_dir(self, path: str) -> None:
        try:
            self._p(path).rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "remove directory", path) from None
