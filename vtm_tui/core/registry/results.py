"""What registry operations return: a version with its manifest, a publish, a pull. Each has
`to_json()` (the `--json` output) and, for publish and pull, `summary()` (the one line every
face prints)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.formatting import format_size
from vtm_tui.core.registry.bundle import CHECKPOINT_NAMES, STANDARD_NAME
from vtm_tui.core.registry.layout import Manifest


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
        text = f"{what} (sha256 {m.bundle_sha256[:12]}, {format_size(m.bundle_size)}"
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
                f"(sha256 {self.manifest.bundle_sha256[:12]} verified, {format_size(self.manifest.bundle_size)}"
                + (f", {self.seconds:.1f} s" if self.seconds else "") + ")")

    def to_json(self) -> dict:
        return {"model": self.model, "stage": self.stage, "version": self.version, "path": str(self.path),
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": round(self.seconds, 3),
                "manifest": self.manifest.to_json()}
