"""Reading a registry: models, stages, committed versions and their manifests, LATEST.

A version exists once its manifest does (and describes it); LATEST is a hint, taken when it
names a committed version, else the highest committed version wins. Nothing here writes.
"""
from __future__ import annotations

from vtm_tui.core.registry import layout
from vtm_tui.core.registry.base import Backend, IntegrityError, ManifestError, NotFound
from vtm_tui.core.registry.layout import (
    LATEST_NAME,
    MANIFEST_NAME,
    MAX_LATEST_BYTES,
    MAX_MANIFEST_BYTES,
    STAGES,
    Manifest,
)
from vtm_tui.core.registry.results import VersionInfo


class RegistryReader:
    """The read side of a registry on a backend (ops.Registry adds publish, promote and pull).
    Blocking calls; one thread at a time (open one per worker). Use as a context manager, or
    call close()."""

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def url(self) -> str:
        """The registry's URL for display (never with a password)."""
        return self.backend.url

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def close(self) -> None:
        """Release the backend's connection (an FTP session); the object may be used again."""
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def take_warnings(self) -> list[str]:
        """What reading had to skip or ignore since the last call (entries a listing could not
        read, malformed manifests), one line each, oldest first."""
        return self.backend.take_warnings()

    def list_models(self) -> list[str]:
        """Model names in the registry root (directories with a valid model name), sorted."""
        return sorted(e.name for e in self.backend.list_dir("")
                      if e.is_dir and layout.NAME_RE.fullmatch(e.name) and ".." not in e.name)

    def list_stages(self, model: str) -> list[str]:
        """The stages (dev, release, in that order) that exist for `model`.
        InvalidName for a bad model name."""
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
            self.backend.warn(str(exc))
            return None
        if data is None:
            return None
        try:
            manifest = Manifest.loads(data, f"{self.url}/{path}")
        except ManifestError as exc:
            self.backend.warn(f"{exc}; version ignored")
            return None
        if (manifest.model, manifest.stage, manifest.version) != (model, stage, version):
            self.backend.warn(f"{self.url}/{path}: the manifest describes {manifest.model}/{manifest.stage}/"
                              f"{manifest.version}; version ignored")
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
        """The version number `version` ("latest" or a number) means in model/stage.
        InvalidName for bad names, NotFound when "latest" finds no committed version."""
        layout.check_model(model), layout.check_stage(stage)
        ref = layout.check_version_ref(version)
        if ref == "latest":
            found = self.latest(model, stage)
            if found is None:
                raise NotFound(f"{self.url}: {model}/{stage} has no committed version")
            return found
        return ref

    def read_manifest(self, model: str, stage: str, version="latest") -> Manifest:
        """The manifest of a committed version ("latest" or a number); NotFound if there is none
        (or it is malformed), InvalidName for bad names."""
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
        """{"versions": committed versions ascending, "latest": the resolved latest or None,
        "latest_pointer": what LATEST says}: the `vtm registry ls --json` entry of a stage."""
        infos = self.list_versions(model, stage)
        return {"versions": [i.version for i in infos],
                "latest": next((i.version for i in infos if i.latest), None),
                "latest_pointer": self.latest_pointer(model, stage)}
