"""Publishing into a registry: the commit protocol of ops.py's docstring (upload under a
temporary name, hashed on the way; no-op for content already there; claim the version by
creating its directory; rename into place; manifest last), and moving LATEST forward.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from vtm_tui.core.registry import layout
from vtm_tui.core.registry.base import Cancelled, Progress, RegistryError, VersionConflict
from vtm_tui.core.registry.browse import RegistryReader
from vtm_tui.core.registry.layout import BUNDLE_NAME, LATEST_NAME, MANIFEST_NAME, FileEntry, Manifest
from vtm_tui.core.registry.pipe import Prefetch
from vtm_tui.core.registry.results import PublishResult

log = logging.getLogger(__name__)
MAX_CLAIM_ATTEMPTS = 1000
LATEST_ATTEMPTS = 8


class FileSource:
    """An existing bundle file, as _publish wants its source (like BundleWriter)."""

    def __init__(self, path: Path, sha256: str, files: list[FileEntry], offset: int = 0, total: int | None = None):
        self.path, self.sha256, self.files = path, sha256, files
        self.size = path.stat().st_size
        self._handle = open(path, "rb", buffering=0)
        self._done = 0
        self._offset, self._total = offset, total or self.size

    def read(self, n: int) -> bytes:
        """At most n bytes of the file (b"" at the end)."""
        chunk = self._handle.read(n)
        self._done += len(chunk)
        return chunk

    def status(self) -> tuple[int, int]:
        """(bytes done, total) for progress, counting from the offset given (a promote's second
        half)."""
        return self._offset + self._done, self._total

    def drain(self) -> None:
        """Nothing to do: the digest of an existing file is known already."""
        pass

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class RegistryWriter(RegistryReader):
    """The commit protocol over RegistryReader: publish a bundle source, move LATEST."""

    def _publish(self, source, model: str, stage: str, number: int | None, set_latest: bool,
                 fields: dict, progress: Progress | None, cancel: threading.Event | None) -> PublishResult:
        """Steps 1-6 of ops.py's docstring. source: a BundleWriter or a FileSource."""
        started = time.monotonic()
        be = self.backend
        sdir = layout.stage_dir(model, stage)
        if number is not None:
            existing = self.manifest_or_none(model, stage, number)
            if existing is not None:
                source.drain()
                return self._same_or_conflict(existing, source.sha256, set_latest)
        be.make_dirs(sdir)
        incoming = f"{sdir}/{layout.temp_name('incoming')}.tar.gz"
        committed = False
        claimed = None
        try:
            reader = Prefetch(source.read, status=source.status, progress=progress)
            try:
                be.write_file(incoming, reader.read, cancel=cancel)
            finally:
                reader.close()
            digest = source.sha256
            if number is None:
                for version in reversed(self.version_dirs(model, stage)):
                    existing = self.manifest_or_none(model, stage, version)
                    if existing is not None and existing.bundle_sha256 == digest:
                        be.delete_file(incoming)
                        return self._same_or_conflict(existing, digest, set_latest)
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            claimed = self._claim(model, stage, number, digest)
            if isinstance(claimed, PublishResult):  # explicit version, published meanwhile, same content
                be.delete_file(incoming)
                if set_latest:
                    claimed.latest = self.advance_latest(model, stage, claimed.version)
                return claimed
            vdir = layout.version_dir(model, stage, claimed)
            be.rename(incoming, f"{vdir}/{BUNDLE_NAME}")
            manifest = Manifest(model=model, stage=stage, version=claimed, bundle_sha256=digest,
                                bundle_size=source.size, files=list(source.files), created=layout.utc_now(),
                                set_latest=set_latest, **fields)
            staging = f"{vdir}/{layout.temp_name('manifest')}.json"
            be.write_bytes(staging, manifest.dumps())
            committed = True  # from the rename on, a failure may hide a success: never undo
            be.rename(staging, f"{vdir}/{MANIFEST_NAME}")
        except BaseException:
            if not committed:
                self._cleanup(incoming, claimed if isinstance(claimed, int) else None, model, stage)
            raise
        result = PublishResult(model, stage, claimed, manifest, True)
        if set_latest:
            result.latest = self.advance_latest(model, stage, claimed)
        result.seconds = time.monotonic() - started
        return result

    def _same_or_conflict(self, existing: Manifest, digest: str, set_latest: bool) -> PublishResult:
        if existing.bundle_sha256 != digest:
            raise VersionConflict(
                f"{self.url}: {existing.model}/{existing.stage}/{existing.version} exists with other "
                f"content (sha256 {existing.bundle_sha256[:12]}, this one {digest[:12]}); versions are "
                f"immutable: publish a new version")
        result = PublishResult(existing.model, existing.stage, existing.version, existing, False)
        if set_latest:
            result.latest = self.advance_latest(existing.model, existing.stage, existing.version)
        return result

    def _claim(self, model: str, stage: str, number: int | None, digest: str) -> int | PublishResult:
        be = self.backend
        if number is not None:
            if be.claim_dir(layout.version_dir(model, stage, number)):
                return number
            existing = self.manifest_or_none(model, stage, number)
            if existing is not None and existing.bundle_sha256 == digest:
                return PublishResult(model, stage, number, existing, False)
            if existing is not None:
                self._same_or_conflict(existing, digest, False)
            raise VersionConflict(f"{self.url}: {model}/{stage}/{number} is being published by someone "
                                  f"else (or an earlier publish of it was interrupted); pick another version")
        candidate = max(self.version_dirs(model, stage), default=0) + 1
        for _ in range(MAX_CLAIM_ATTEMPTS):
            if be.claim_dir(layout.version_dir(model, stage, candidate)):
                return candidate
            candidate += 1
        raise RegistryError(f"{self.url}: could not claim a version of {model}/{stage} after "
                            f"{MAX_CLAIM_ATTEMPTS} attempts")

    def _cleanup(self, incoming: str, claimed: int | None, model: str, stage: str) -> None:
        """Best effort after a failed publish: the server may be gone, and then leftovers stay
        (invisible to readers: temp names and directories without a manifest)."""
        try:
            self.backend.delete_file(incoming)
            if claimed is not None:
                vdir = layout.version_dir(model, stage, claimed)
                for entry in self.backend.list_dir(vdir):
                    if not entry.is_dir:
                        self.backend.delete_file(f"{vdir}/{entry.name}")
                self.backend.remove_dir(vdir)
        except RegistryError as exc:
            log.info("leftovers of a failed publish stay in %s: %s", self.url, exc)

    def advance_latest(self, model: str, stage: str, version: int) -> int:
        """Move LATEST forward to `version` (never back) and return what it says afterwards.

        The target is the highest of `version` and any committed higher version whose publisher
        asked for LATEST (manifest set_latest). Each writer re-reads after writing and rewrites
        while LATEST is below the target, so the last writer always leaves the highest one."""
        sdir = layout.stage_dir(model, stage)
        be = self.backend
        for attempt in range(LATEST_ATTEMPTS):
            target = version
            for other in self.version_dirs(model, stage):
                if other > target:
                    manifest = self.manifest_or_none(model, stage, other)
                    if manifest is not None and manifest.set_latest:
                        target = other
            current = self.latest_pointer(model, stage)
            if current is not None and current >= target and self.manifest_or_none(model, stage, current):
                return current
            staging = f"{sdir}/{layout.temp_name('latest')}"
            be.write_bytes(staging, f"{target}\n".encode("ascii"))
            try:
                be.rename(staging, f"{sdir}/{LATEST_NAME}", replace=True)
            except RegistryError:
                be.delete_file(staging)
                if attempt == LATEST_ATTEMPTS - 1:
                    raise
        return self.latest_pointer(model, stage) or version
