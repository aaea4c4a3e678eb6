"""Where things live in a registry, what names are allowed, and the manifest.

    <root>/<model>/<stage>/LATEST                   text: a version number; a hint only
    <root>/<model>/<stage>/<version>/bundle.tar.gz  the bundle (see bundle.py)
    <root>/<model>/<stage>/<version>/manifest.json  written LAST: a version exists only with it

Temporary files start with a dot (`.incoming-*`, `.manifest-*`, `.latest-*`): no valid name
does, so readers never mistake one for a model, a version or a committed file.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from vtm_tui.errors import UserError

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
VERSION_RE = re.compile(r"[1-9][0-9]{0,17}")
STAGES = ("dev", "release")
BUNDLE_NAME = "bundle.tar.gz"
MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
MANIFEST_FORMAT = "vtm-registry-manifest"
MANIFEST_FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
MAX_LATEST_BYTES = 64


class InvalidName(UserError):
    """A model, stage or version name that the registry refuses (exit code 2)."""


def _shown(value) -> str:
    # repr() escapes CR/LF/NUL, so a hostile name cannot forge output lines
    return repr(value) if len(str(value)) <= 80 else repr(str(value)[:80]) + "..."


def check_model(name) -> str:
    """`name` when it is a valid registry model name (1-128 of letters, digits, '.', '_', '-',
    not starting with '.' or '-', no '..'); InvalidName otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidName(f"invalid model name {_shown(name)}: use 1-128 letters, digits, '.', '_' "
                          f"or '-', starting with a letter, digit or '_' (no '/', '..' or control characters)")
    return name


def check_stage(stage) -> str:
    """`stage` when it is one of STAGES (dev, release); InvalidName otherwise."""
    if stage not in STAGES:
        raise InvalidName(f"invalid stage {_shown(stage)}: use one of {', '.join(STAGES)}")
    return stage


def check_version(version) -> int:
    """A committed version number: a positive integer (int or decimal text)."""
    if isinstance(version, bool):
        raise InvalidName(f"invalid version {_shown(version)}")
    if isinstance(version, int):
        if version >= 1:
            return version
    elif isinstance(version, str) and VERSION_RE.fullmatch(version):
        return int(version)
    raise InvalidName(f"invalid version {_shown(version)}: use a positive integer (1, 2, 3, ...)")


def check_version_ref(version) -> int | str:
    """A version number or 'latest'."""
    if version is None or (isinstance(version, str) and version.lower() == "latest"):
        return "latest"
    return check_version(version)


def parse_version_name(name: str) -> int | None:
    """The version a directory name stands for, None for anything else."""
    return int(name) if VERSION_RE.fullmatch(name) else None


def parse_latest(data: bytes | None) -> int | None:
    """LATEST's version, None when it is missing or garbled."""
    if data is None or len(data) > MAX_LATEST_BYTES:
        return None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return int(text) if VERSION_RE.fullmatch(text) else None


def stage_dir(model: str, stage: str) -> str:
    """`MODEL/STAGE`, the stage's folder under the registry root (names checked)."""
    return f"{check_model(model)}/{check_stage(stage)}"


def version_dir(model: str, stage: str, version: int) -> str:
    """`MODEL/STAGE/VERSION`, a version's folder under the registry root (names checked)."""
    return f"{stage_dir(model, stage)}/{check_version(version)}"


def temp_name(prefix: str) -> str:
    """`.PREFIX-<32 hex>`: a hidden, unique name for a file being written (never a version name)."""
    return f".{prefix}-{uuid.uuid4().hex}"


def utc_now() -> str:
    """The current time as the manifest writes it: `YYYY-MM-DDTHH:MM:SSZ` (UTC, ISO 8601)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FileEntry:
    """A bundle member as the manifest lists it: name, size in bytes, sha256 hex."""
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """manifest.json of one version. `source` says where the checkpoint came from:
    {"type": "file", "file_name": ...}, {"type": "mlflow_run", "run_id": ..., "experiment": ...,
    "artifact": ...} or {"type": "promotion", "from_stage": ..., "from_version": ..., "origin": {...}}.
    `spec` is the standard program's input/output spec (ModelSpec.to_json) and `conversion` how it
    was made: source kind, max_abs_diff against the model it came from, tolerance, notes."""
    model: str
    stage: str
    version: int
    bundle_sha256: str
    bundle_size: int
    files: list[FileEntry]
    created: str
    source: dict
    metric: dict | None = None  # {"name": ..., "value": ...}
    torch_version: str | None = None
    task_type: str | None = None
    num_classes: int | None = None
    architecture: str | None = None
    spec: dict | None = None  # the standard program's input/output spec (core/standard/spec.py)
    conversion: dict | None = None  # how it was made and its recorded max abs difference
    set_latest: bool = False  # whether the publisher asked LATEST to point here (see ops.advance_latest)
    format: str = MANIFEST_FORMAT
    format_version: int = MANIFEST_FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The manifest as a JSON object (every field, plus "bundle": the bundle's file name)."""
        data = asdict(self)
        data["bundle"] = BUNDLE_NAME
        return data

    def dumps(self) -> bytes:
        """manifest.json's bytes: to_json() as sorted, indented UTF-8 JSON with a final newline."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    def file(self, name: str) -> FileEntry | None:
        """The entry of member `name`, or None."""
        return next((f for f in self.files if f.name == name), None)

    @property
    def checkpoint_name(self) -> str | None:
        """The checkpoint member's name (checkpoint.pth or checkpoint.pt), or None."""
        return next((f.name for f in self.files if f.name.startswith("checkpoint.")), None)

    @property
    def standard_name(self) -> str | None:
        """The standard member: model-standard.pt2 (v2 program), model-standard.pt (v1), or None."""
        return next((name for name in ("model-standard.pt2", "model-standard.pt") if self.file(name)), None)

    @property
    def has_program(self) -> bool:
        """True when the bundle holds a Torch Standard v2 program (model-standard.pt2)."""
        return self.standard_name == "model-standard.pt2"

    @property
    def has_standard(self) -> bool:
        """True when the bundle holds a Torch Standard program (v2) or file (v1)."""
        return self.standard_name is not None

    @classmethod
    def loads(cls, data: bytes, where: str = "manifest") -> "Manifest":
        """Parse and check a manifest; ManifestError on anything malformed."""
        try:
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
                raise ValueError("not a vtm registry manifest")
            if raw.get("format_version") != MANIFEST_FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {raw.get('format_version')!r}")
            files = [FileEntry(str(f["name"]), int(f["size"]), str(f["sha256"])) for f in raw["files"]]
            sha = str(raw["bundle_sha256"])
            if not re.fullmatch(r"[0-9a-f]{64}", sha) or any(
                    not re.fullmatch(r"[0-9a-f]{64}", f.sha256) or f.size < 0 for f in files):
                raise ValueError("bad digest or size")
            manifest = cls(
                model=check_model(raw["model"]), stage=check_stage(raw["stage"]),
                version=check_version(raw["version"]), bundle_sha256=sha,
                bundle_size=int(raw["bundle_size"]), files=files, created=str(raw.get("created", "")),
                source=dict(raw.get("source") or {}), metric=raw.get("metric"),
                torch_version=raw.get("torch_version"), task_type=raw.get("task_type"),
                num_classes=None if raw.get("num_classes") is None else int(raw["num_classes"]),
                architecture=raw.get("architecture"), set_latest=bool(raw.get("set_latest", False)),
                spec=raw.get("spec") if isinstance(raw.get("spec"), dict) else None,
                conversion=raw.get("conversion") if isinstance(raw.get("conversion"), dict) else None,
                extra=dict(raw.get("extra") or {}),
            )
            if manifest.bundle_size < 0:
                raise ValueError("negative bundle size")
            return manifest
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, InvalidName) as exc:
            from vtm_tui.core.registry.base import ManifestError

            raise ManifestError(f"{where}: malformed manifest ({exc})") from None
