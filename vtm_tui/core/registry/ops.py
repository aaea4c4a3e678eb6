"""Registry operations over any backend: the facade the faces call (browse.py reads,
publishing.py commits, this module publishes checkpoints, promotes and pulls).

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
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from vtm_tui.core.registry import layout
from vtm_tui.core.registry.base import Backend, Cancelled, IntegrityError, Progress, RegistryUsageError
from vtm_tui.core.registry.bundle import BundleWriter
from vtm_tui.core.registry.bundle_reader import BundleLimits, BundleScanner, scan_file
from vtm_tui.core.registry.layout import BUNDLE_NAME, MANIFEST_NAME, Manifest
from vtm_tui.core.registry.pipe import Worker
from vtm_tui.core.registry.publishing import FileSource, RegistryWriter
from vtm_tui.core.registry.results import PublishResult, PullResult
from vtm_tui.settings import DEFAULT_GZIP_LEVEL


class Registry(RegistryWriter):
    """A model registry on a backend. Blocking calls; one thread at a time (open one per
    worker). Use as a context manager, or call close().

    gzip_level: of the bundles it builds (VTM_REGISTRY_GZIP_LEVEL); limits: the caps a pulled
    bundle must respect."""

    def __init__(self, backend: Backend, *, gzip_level: int = DEFAULT_GZIP_LEVEL,
                 limits: BundleLimits | None = None):
        super().__init__(backend)
        self.limits = limits or BundleLimits()
        self.gzip_level = gzip_level

    def publish_file(self, path: str | os.PathLike, model: str, stage: str = "dev", *,
                     version: int | str | None = None, set_latest: bool = False,
                     convert_standard: bool = False, task_type: str | None = None,
                     num_classes: int | None = None, architecture: str | None = None,
                     request=None, source: dict | None = None, metric: dict | None = None,
                     progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
        """Publish a local model file: a .pth/.pt checkpoint, a Lightning .ckpt, a .pt2 program or
        a TorchScript file (checked as model_files.py says; an unsafe one is refused).
        convert_standard adds model-standard.pt2, converted with `request` (a core.standard
        ConvertRequest; task_type, num_classes and architecture fill its unset fields); a failed
        conversion raises before anything is uploaded."""
        from vtm_tui.core.registry.model_files import convert_into, inspect_model_file
        from vtm_tui.core.standard.spec import ConvertRequest

        layout.check_model(model), layout.check_stage(stage)
        number = None if version in (None, "", "auto") else layout.check_version(version)
        path = Path(path)
        content = inspect_model_file(path)
        if task_type or num_classes is not None or architecture:
            content.info.update({k: v for k, v in (("task_type", task_type), ("num_classes", num_classes),
                                                   ("architecture", architecture)) if v is not None})
        with tempfile.TemporaryDirectory(prefix="vtm-publish-") as tmp:
            if convert_standard:
                given = ConvertRequest(task_type=task_type, num_classes=num_classes, architecture=architecture)
                convert_into(content, path, Path(tmp), (request or ConvertRequest()).merged(given))
            file_metric = content.info.pop("metric", None)
            if metric is None and isinstance(file_metric, dict) and file_metric:
                name, value = next(iter(file_metric.items()))
                metric = {"name": str(name), "value": value}
            source = source or {"type": "file", "file_name": path.name, "path": str(path.resolve())}
            return self.publish_content(content, model, stage, version=number, set_latest=set_latest,
                                        source=source, metric=metric, progress=progress, cancel=cancel)

    def publish_content(self, content, model: str, stage: str, *, version: int | None = None,
                        set_latest: bool = False, source: dict, metric: dict | None = None,
                        progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
        """Publish prepared bundle content (model_files.BundleContent: members, metadata, spec,
        conversion) with the source and metric in the manifest; the commit protocol of the module
        docstring. The result's extra["notes"] lists what the content's preparation reported."""
        writer = BundleWriter(content.files, content.metadata(), level=self.gzip_level)
        fields = {"source": source, "metric": metric, "torch_version": _torch_version(),
                  **content.manifest_fields()}
        try:
            result = self._publish(writer, model, stage, version, set_latest, fields, progress, cancel)
        finally:
            writer.close()
        if content.notes:
            result.extra["notes"] = list(content.notes)
        return result

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
            source = FileSource(bundle, manifest.bundle_sha256, manifest.files,
                                 offset=manifest.bundle_size, total=total)
            try:
                fields = {"source": {"type": "promotion", "from_stage": from_stage,
                                     "from_version": manifest.version, "origin": manifest.source},
                          "metric": manifest.metric, "task_type": manifest.task_type,
                          "architecture": manifest.architecture, "num_classes": manifest.num_classes,
                          "torch_version": manifest.torch_version, "extra": manifest.extra,
                          "spec": manifest.spec, "conversion": manifest.conversion}
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
        (checkpoint and model-standard.pt2 when the bundle has them, bundle.json, manifest.json).

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
