"""What registry operations return: a version with its manifest, a publish, a pull. Each has
`to_json()` (the `--json` output) and, for publish and pull, `summary()` (the one line every
face prints)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.formatting import format_size
from vtm_tui.core.registry.bundle import CHECKPOINT_NAMES
from vtm_tui.core.registry.layout import Manifest


@dataclass
class VersionInfo:
    """A committed version of model/stage: its manifest, and whether it is the one "latest"
    resolves to."""
    model: str
    stage: str
    version: int
    manifest: Manifest
    latest: bool = False

    def to_json(self) -> dict:
        """The manifest's JSON plus "latest": `vtm registry ls MODEL STAGE --json` rows."""
        return {**self.manifest.to_json(), "latest": self.latest}


@dataclass
class PublishResult:
    """What a publish (or promote) did: the version it wrote or found (created False: the same
    content was already there), LATEST afterwards (None: not touched), seconds taken, and
    extras (the best run of publish-best, where a promotion came from)."""
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
        """`MODEL/STAGE/VERSION`."""
        return f"{self.model}/{self.stage}/{self.version}"

    def summary(self) -> str:
        """One line: `published m/dev/3 (sha256 0123456789ab, 48.2 MB, 1.1 s); LATEST -> 3`, or
        that the content was already there."""
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
        """The `--json` output of publish, publish-best and promote."""
        return {"model": self.model, "stage": self.stage, "version": self.version,
                "created": self.created, "latest": self.latest, "seconds": round(self.seconds, 3),
                "manifest": self.manifest.to_json(), **self.extra}


@dataclass
class PullResult:
    """A pulled version: the folder its files were extracted into
    (DEST/MODEL/STAGE/VERSION, with manifest.json), its manifest, seconds taken."""
    model: str
    stage: str
    version: int
    path: Path  # the folder with the extracted files and manifest.json
    manifest: Manifest
    seconds: float = 0.0

    @property
    def checkpoint(self) -> Path:
        """The extracted checkpoint file."""
        return self.path / (self.manifest.checkpoint_name or CHECKPOINT_NAMES[0])

    @property
    def standard(self) -> Path | None:
        """The extracted standard program (model-standard.pt2, or a v1 model-standard.pt), or
        None when the bundle has none."""
        name = self.manifest.standard_name
        return self.path / name if name and (self.path / name).is_file() else None

    @property
    def files(self) -> dict[str, Path]:
        """Member name -> extracted path, for every member of the manifest."""
        return {f.name: self.path / f.name for f in self.manifest.files}

    def summary(self) -> str:
        """One line: `pulled m/release/3 into DIR (sha256 0123456789ab verified, 48.2 MB, 0.4 s)`."""
        return (f"pulled {self.model}/{self.stage}/{self.version} into {self.path} "
                f"(sha256 {self.manifest.bundle_sha256[:12]} verified, {format_size(self.manifest.bundle_size)}"
                + (f", {self.seconds:.1f} s" if self.seconds else "") + ")")

    def to_json(self) -> dict:
        """The `vtm registry pull --json` output."""
        return {"model": self.model, "stage": self.stage, "version": self.version, "path": str(self.path),
                "files": {k: str(v) for k, v in self.files.items()}, "seconds": round(self.seconds, 3),
                "manifest": self.manifest.to_json()}
