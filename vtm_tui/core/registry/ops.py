"""Registry operations over any backend: browse, publish, promote, pull.

Protocol (see layout.py for the paths):

publish   1. the bundle is built and streamed to `<model>/<stage>/.incoming-<random>.tar.gz`,
             hashed on the way;
          2. if no version was asked for and a committed version already has that digest: the
             upload is deleted and the publish is a no-op;
          3. the version is claimed by creating its directory (MKD that fails when it exists;
             next number = highest existing directory + 1, on conflict the next one);
          4. the upload is renamed to `<version>/bundle.tar.gz`;
          5. `manifest.json` is uploaded under a temporary name and renamed: from here on the
             version exists (before, readers never see it);
          6. with set_latest, LATEST moves forward (advance_latest).
          With an explicit version that exists: same digest -> no-op, else VersionConflict, and
          nothing is uploaded.
pull      the manifest gives size and sha256; the bundle is streamed from the server, hashed,
          and checked member by member (allow-list, types, caps, sizes, digests) into a private
          temporary folder next to the destination; only when the whole bundle matched its
          manifest is that folder renamed into place. Any failure removes it.
promote   download + verify into a temporary file, publish the same bytes to the target stage
          (same sha256), with a manifest saying where it came from.

LATEST is a hint: readers take it when it names a committed version, else the highest
committed version. Writers only move it forward, and re-check after writing so that two
concurrent publishers end with LATEST at the higher of their versions.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.registry import layout
from vtm_tui.core.registry.base import (
    Backend,
    Cancelled,
    IntegrityError,
    ManifestError,
    NotFound,
    Progress,
    RegistryError,
    RegistryUsageError,
    VersionConflict,
)
from vtm_tui.core.registry.bundle import (
    CHECKPOINT_NAMES,
    DEFAULT_GZIP_LEVEL,
    STANDARD_NAME,
    BundleLimits,
    BundleScanner,
    BundleWriter,
    scan_file,
)
from vtm_tui.core.registry.layout import (
    BUNDLE_NAME,
    LATEST_NAME,
    MANIFEST_NAME,
    MAX_LATEST_BYTES,
    MAX_MANIFEST_BYTES,
    STAGES,
    FileEntry,
    Manifest,
)
from vtm_tui.core.registry.pipe import Prefetch, Worker

log = logging.getLogger(__name__)
MAX_CLAIM_ATTEMPTS = 1000
LATEST_ATTEMPTS = 8


@dataclass
class VersionInfo:
    model: str
    stage: str
    version: int
    manifest: Manifest
    latest: bool = False

    def to_json(self) -> dict:
        return {**self.manifest.to_json(), "latest": self.latest}


@dataclass
class PublishResult:
    model: str
    stage: str
    version: int
    manifest: Manifest
    created: bool  # False: identical content was already there, nothing was written
    latest: int | None = None  # LATEST after the publish (None: not touched)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.stage}/{self.version}"

    def summary(self) -> str:
        m = self.manifest
        what = (f"published {self.ref}" if self.created
                else f"{self.ref} already holds this content (same sha256): nothing to do")
        text = f"{what} (sha256 {m.bundle_sha256[:12]}, {_size(m.bundle_size)}"
        if self.created and self.seconds:
            text += f", {self.seconds:.1f} s"
        text += ")"
        if self.latest is not None:
            text += f"; LATEST -> {self.latest}"
        return text

    def to_json(self) -> dict:
        return {"model": self.model, "stage": self.stage, "version": self.version,
                "created": self.created, "latest": self.latest, "seconds": round(self.seconds, 3),
                "manifest": self.manifest.to_json(), **self.extra}


@dataclass
class PullResult:
    model: str
    stage: str
    version: int
    path: Path  # the folder with the extracted files and manifest.json
    manifest: Manifest
    seconds: float = 0.0

    @property
    def checkpoint(self) -> Path:
        return self.path / (self.manifest.checkpoint_name or CHECKPOINT_NAMES[0])

    @property
    def standard(self) -> Path | None:
        path = self.path / STANDARD_NAME
        return path if path.is_file() else None

    @property
    def files(self) -> dict[str, Path]:
        return {f.name: self.path / f.name for f in self.manifest.files}

    def summary(self) -> str:
        return (f"pulled {self.model}/{self.stage}/{self.version} into {self.path} "
                f"(sha256 {self.manifest.bundle_sha256[:12]} verified, {_size(self.manifest.bundle_size)}"
                + (f", {self.seconds:.1f} s" if self.seconds else "") + ")")

    def to_json(self) -> dict:
        return {"model": self.model, "stage": self.stage, "version": self.version, "path": str(self.path),
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": round(self.seconds, 3),
                "manifest": self.manifest.to_json()}


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


class _FileSource:
    """An existing bundle file, as _publish wants its source (like BundleWriter)."""

    def __init__(self, path: Path, sha256: str, files: list[FileEntry], offset: int = 0, total: int | None = None):
        self.path, self.sha256, self.files = path, sha256, files
        self.size = path.stat().st_size
        self._handle = open(path, "rb", buffering=0)
        self._done = 0
        self._offset, self._total = offset, total or self.size

    def read(self, n: int) -> bytes:
        chunk = self._handle.read(n)
        self._done += len(chunk)
        return chunk

    def status(self) -> tuple[int, int]:
        return self._offset + self._done, self._total

    def drain(self) -> None:
        pass

    def close(self) -> None:
        self._handle.close()


class Registry:
    """A model registry on a backend. Blocking calls; one thread at a time (open one per
    worker). Use as a context manager, or call close()."""

    def __init__(self, backend: Backend, *, gzip_level: int = DEFAULT_GZIP_LEVEL,
                 limits: BundleLimits | None = None):
        self.backend = backend
        self.limits = limits or BundleLimits()
        self.gzip_level = gzip_level

    @property
    def url(self) -> str:
        return self.backend.url

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- browsing -----------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        return sorted(e.name for e in self.backend.list_dir("")
                      if e.is_dir and layout.NAME_RE.fullmatch(e.name) and ".." not in e.name)

    def list_stages(self, model: str) -> list[str]:
        layout.check_model(model)
        present = {e.name for e in self.backend.list_dir(model) if e.is_dir}
        return [s for s in STAGES if s in present]

    def version_dirs(self, model: str, stage: str) -> list[int]:
        """Every version directory, committed or not (claimed, being written, abandoned)."""
        found = (layout.parse_version_name(e.name) for e in self.backend.list_dir(layout.stage_dir(model, stage))
                 if e.is_dir)
        return sorted(v for v in found if v is not None)

    def manifest_or_none(self, model: str, stage: str, version: int) -> Manifest | None:
        """The manifest of a committed version; None when there is none or it is malformed."""
        path = f"{layout.version_dir(model, stage, version)}/{MANIFEST_NAME}"
        try:
            data = self.backend.read_bytes(path, MAX_MANIFEST_BYTES)
        except IntegrityError as exc:  # oversized
            log.warning("%s", exc)
            return None
        if data is None:
            return None
        try:
            manifest = Manifest.loads(data, f"{self.url}/{path}")
        except ManifestError as exc:
            log.warning("%s", exc)
            return None
        if (manifest.model, manifest.stage, manifest.version) != (model, stage, version):
            log.warning("%s/%s: manifest describes %s/%s/%s; ignored", self.url, path,
                        manifest.model, manifest.stage, manifest.version)
            return None
        return manifest

    def versions(self, model: str, stage: str) -> list[int]:
        """Committed versions, ascending."""
        return [v for v in self.version_dirs(model, stage) if self.manifest_or_none(model, stage, v)]

    def latest_pointer(self, model: str, stage: str) -> int | None:
        """What LATEST says (None: missing or garbled), committed or not."""
        try:
            data = self.backend.read_bytes(f"{layout.stage_dir(model, stage)}/{LATEST_NAME}", MAX_LATEST_BYTES)
        except IntegrityError:  # oversized: garbage
            return None
        return layout.parse_latest(data)

    def latest(self, model: str, stage: str) -> int | None:
        """LATEST when it names a committed version, else the highest committed version."""
        pointer = self.latest_pointer(model, stage)
        if pointer is not None and self.manifest_or_none(model, stage, pointer) is not None:
            return pointer
        for version in reversed(self.version_dirs(model, stage)):
            if self.manifest_or_none(model, stage, version) is not None:
                return version
        return None

    def resolve(self, model: str, stage: str, version="latest") -> int:
        layout.check_model(model), layout.check_stage(stage)
        ref = layout.check_version_ref(version)
        if ref == "latest":
            found = self.latest(model, stage)
            if found is None:
                raise NotFound(f"{self.url}: {model}/{stage} has no committed version")
            return found
        return ref

    def read_manifest(self, model: str, stage: str, version="latest") -> Manifest:
        number = self.resolve(model, stage, version)
        manifest = self.manifest_or_none(model, stage, number)
        if manifest is None:
            raise NotFound(f"{self.url}: {model}/{stage}/{number} does not exist (no valid manifest)")
        return manifest

    def list_versions(self, model: str, stage: str) -> list[VersionInfo]:
        """Committed versions with their manifests, ascending; `latest` marks the resolved one."""
        infos = []
        for version in self.version_dirs(model, stage):
            manifest = self.manifest_or_none(model, stage, version)
            if manifest is not None:
                infos.append(VersionInfo(model, stage, version, manifest))
        if infos:
            pointer = self.latest_pointer(model, stage)
            chosen = pointer if any(i.version == pointer for i in infos) else infos[-1].version
            for info in infos:
                info.latest = info.version == chosen
        return infos

    def stage_summary(self, model: str, stage: str) -> dict:
        infos = self.list_versions(model, stage)
        return {"versions": [i.version for i in infos],
                "latest": next((i.version for i in infos if i.latest), None),
                "latest_pointer": self.latest_pointer(model, stage)}

    # -- publishing -----------------------------------------------------------------------------

    def publish_file(self, path: str | os.PathLike, model: str, stage: str = "dev", *,
                     version: int | str | None = None, set_latest: bool = False,
                     convert_standard: bool = False, task_type: str | None = None,
                     num_classes: int | None = None, architecture: str | None = None,
                     source: dict | None = None, metric: dict | None = None,
                     progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
        """Publish a local .pth/.pt checkpoint (read with weights_only=True: an unsafe one is
        refused). convert_standard adds model-standard.pt (see core/standard/)."""
        from vtm_tui.core.standard import loader as standard

        layout.check_model(model), layout.check_stage(stage)
        number = None if version in (None, "", "auto") else layout.check_version(version)
        path = Path(path)
        if not path.is_file():
            raise RegistryUsageError(f"{path}: no such file")
        if path.suffix.lower() not in (".pth", ".pt"):
            raise RegistryUsageError(f"{path}: publish a .pth or .pt checkpoint")
        meta = standard.describe(standard.safe_load(path, mmap=True))
        with tempfile.TemporaryDirectory(prefix="vtm-publish-") as tmp:
            files = [("checkpoint" + path.suffix.lower(), path)]
            info = {"task_type": task_type or meta.get("task_type"),
                    "num_classes": num_classes if num_classes is not None else meta.get("num_classes"),
                    "architecture": architecture or meta.get("architecture"),
                    "image_size": meta.get("image_size"), "input_shape": meta.get("input_shape"),
                    "class_names": meta.get("class_names")}
            if convert_standard:
                spec = standard.convert_to_standard(path, Path(tmp) / STANDARD_NAME, task_type=task_type,
                                                    num_classes=num_classes, architecture=architecture)
                files.append((STANDARD_NAME, Path(tmp) / STANDARD_NAME))
                info.update({k: spec[k] for k in ("task_type", "num_classes", "architecture", "image_size",
                                                  "input_shape", "class_names")})
            if metric is None and isinstance(meta.get("metric"), dict) and meta["metric"]:
                name, value = next(iter(meta["metric"].items()))
                metric = {"name": str(name), "value": value}
            writer = BundleWriter(files, info, level=self.gzip_level)
            fields = {"source": source or {"type": "file", "file_name": path.name, "path": str(path.resolve())},
                      "metric": metric, "task_type": info["task_type"], "architecture": info["architecture"],
                      "num_classes": None if info["num_classes"] is None else int(info["num_classes"]),
                      "torch_version": _torch_version()}
            try:
                return self._publish(writer, model, stage, number, set_latest, fields, progress, cancel)
            finally:
                writer.close()

    def _publish(self, source, model: str, stage: str, number: int | None, set_latest: bool,
                 fields: dict, progress: Progress | None, cancel: threading.Event | None) -> PublishResult:
        """Steps 1-6 of the module docstring. source: BundleWriter or _FileSource."""
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

    # -- promote ------------------------------------------------------------------------------

    def promote(self, model: str, version="latest", from_stage: str = "dev", to_stage: str = "release", *,
                to_version: int | str | None = None, set_latest: bool = True,
                progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
        """Copy a verified version to another stage: the same bundle bytes (same sha256), a new
        version number there, a manifest whose source says where it came from."""
        layout.check_stage(from_stage), layout.check_stage(to_stage)
        if from_stage == to_stage:
            raise RegistryUsageError("promote between two different stages (e.g. --from dev --to release)")
        number = None if to_version in (None, "", "auto") else layout.check_version(to_version)
        manifest = self.read_manifest(model, from_stage, version)
        total = manifest.bundle_size * 2
        with tempfile.TemporaryDirectory(prefix="vtm-promote-") as tmp:
            bundle = Path(tmp) / BUNDLE_NAME
            self._download_verified(manifest, bundle, progress=progress, total=total, cancel=cancel)
            source = _FileSource(bundle, manifest.bundle_sha256, manifest.files,
                                 offset=manifest.bundle_size, total=total)
            try:
                fields = {"source": {"type": "promotion", "from_stage": from_stage,
                                     "from_version": manifest.version, "origin": manifest.source},
                          "metric": manifest.metric, "task_type": manifest.task_type,
                          "architecture": manifest.architecture, "num_classes": manifest.num_classes,
                          "torch_version": manifest.torch_version, "extra": manifest.extra}
                result = self._publish(source, model, to_stage, number, set_latest, fields, progress, cancel)
            finally:
                source.close()
        result.extra["promoted_from"] = {"stage": from_stage, "version": manifest.version}
        return result

    def _download_verified(self, manifest: Manifest, dest: Path | None, *, progress=None, total=None,
                           cancel=None, extract_to: Path | None = None) -> None:
        """Stream the bundle into dest (a file) and/or extract_to (an empty folder), checking its
        size and sha256 against the manifest, and its members' names, types and sizes.

        Members are not hashed again: the bundle's digest already covers their bytes. Hashing,
        extraction and the file write each run on their own thread beside the download."""
        vdir = layout.version_dir(manifest.model, manifest.stage, manifest.version)
        where = f"{self.url}/{vdir}/{BUNDLE_NAME}"
        digest = hashlib.sha256()
        received = 0
        opener = None
        if extract_to is not None:
            def opener(name: str, size: int):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                return os.fdopen(os.open(extract_to / name, flags, 0o644), "wb", buffering=0)
        scanner = BundleScanner(self.limits, opener, manifest.files, hash_members=False, where=where)
        out = open(dest, "wb", buffering=0) if dest is not None else None
        total = total or manifest.bundle_size
        workers = [Worker(digest.update, name="vtm-pull-sha256"),
                   Worker(scanner.feed, name="vtm-pull-extract")]
        if out is not None:
            workers.append(Worker(out.write, name="vtm-pull-write"))

        def sink(block: bytes) -> None:
            nonlocal received
            received += len(block)
            for worker in workers:
                worker.put(block)
            if progress:
                progress(received, total)

        try:
            self.backend.read_file(f"{vdir}/{BUNDLE_NAME}", sink, max_size=manifest.bundle_size, cancel=cancel)
            for worker in workers:
                worker.close()
        except BaseException:
            for worker in workers:
                worker.abandon()
            raise
        finally:
            if out is not None:
                out.close()
            scanner._close_out()
        if received != manifest.bundle_size or digest.hexdigest() != manifest.bundle_sha256:
            raise IntegrityError(f"{where}: sha256/size do not match the manifest (got {received} bytes, "
                                 f"sha256 {digest.hexdigest()[:12]}; manifest: {manifest.bundle_size} "
                                 f"bytes, {manifest.bundle_sha256[:12]}): refused")
        scanner.close()

    # -- pull -----------------------------------------------------------------------------------

    def pull(self, model: str, stage: str = "release", version="latest", dest: str | os.PathLike = "downloads",
             *, progress: Progress | None = None, cancel: threading.Event | None = None,
             keep_bundle: bool = False, verify_first: bool = False) -> PullResult:
        """Download, verify and extract a version into `<dest>/<model>/<stage>/<version>/`
        (checkpoint, model-standard.pt if any, bundle.json, manifest.json).

        Default: the bundle is verified and extracted as it streams in, into a private temporary
        folder that is moved into place only once everything matched. verify_first: download to
        a temporary file, verify, then extract (one more pass over the data)."""
        started = time.monotonic()
        manifest = self.read_manifest(model, stage, version)
        final = Path(dest).expanduser() / model / stage / str(manifest.version)
        made = _missing_dirs(final.parent)
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".vtm-pull-", dir=final.parent))
        pulled = False
        try:
            out = work / "out"
            out.mkdir()
            bundle = work / BUNDLE_NAME
            if verify_first:
                self._download_verified(manifest, bundle, progress=progress, cancel=cancel)
                scan_file(bundle, limits=self.limits, expected=manifest.files, dest=out, hash_members=False)
            else:
                self._download_verified(manifest, bundle if keep_bundle else None, progress=progress,
                                        cancel=cancel, extract_to=out)
            if keep_bundle:
                os.replace(bundle, out / BUNDLE_NAME)
            (out / MANIFEST_NAME).write_bytes(manifest.dumps())
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if final.exists() or final.is_symlink():
                os.replace(final, work / "previous")
            os.replace(out, final)
            pulled = True
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not pulled:  # a failed or cancelled pull leaves no trace, not even empty folders
                for folder in made:
                    try:
                        folder.rmdir()
                    except OSError:
                        break  # not empty: someone else's files
        return PullResult(model, stage, manifest.version, final, manifest, time.monotonic() - started)


def _missing_dirs(path: Path) -> list[Path]:
    """path and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def _torch_version() -> str | None:
    try:
        import torch

        return str(torch.__version__)
    except ImportError:
        return None
