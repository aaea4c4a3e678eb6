"""What a publish puts in a bundle: the user's model file, checked the way its kind allows
without running anything in it, and the standard program converted from it.

    checkpoint (.pth/.pt, Lightning .ckpt)  read with weights_only=True (a Lightning .ckpt's
                                            refused hyper-parameter objects as inert stand-ins);
                                            an unsafe one is refused
    .pt2 (torch.export)                     checked pickle-free (core/standard/pt2_safety.py)
    TorchScript (.pt/.pth)                  not loaded: published as bytes; converting it runs
                                            torch.jit.load, which has no safe mode (trusted files)

Conversion (core/standard/convert.py) writes model-standard.pt2 into a temporary folder before
anything is uploaded: a model that cannot be exported leaves nothing in the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.registry.base import RegistryUsageError
from vtm_tui.core.registry.bundle import STANDARD_NAME

SPEC_INFO_KEYS = ("task_type", "num_classes", "architecture", "input_shape", "class_names")


@dataclass
class BundleContent:
    """The members of a bundle to publish (name, local path) in order, the model metadata for
    bundle.json, the manifest fields it implies, and notes for the person publishing (what
    was changed or must be trusted)."""
    files: list[tuple[str, Path]] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    spec: dict | None = None
    conversion: dict | None = None
    bundled_conversion: dict | None = None
    notes: list[str] = field(default_factory=list)

    def add_standard(self, result) -> None:
        """Add a core.standard StandardResult: the program member, its spec over the metadata, the
        conversion record (with its notes)."""
        self.files.append((STANDARD_NAME, Path(result.path)))
        self.spec = result.spec.to_json()
        self.conversion = result.conversion.to_json()
        self.bundled_conversion = result.conversion.to_json(with_seconds=False)  # same model, same bytes
        self.info.update({key: self.spec.get(key) for key in SPEC_INFO_KEYS})

    def manifest_fields(self) -> dict:
        """task_type, architecture, num_classes, spec and conversion for the Manifest."""
        classes = self.info.get("num_classes")
        return {"task_type": self.info.get("task_type"), "architecture": self.info.get("architecture"),
                "num_classes": None if classes is None else int(classes), "spec": self.spec,
                "conversion": self.conversion}

    def metadata(self) -> dict:
        """bundle.json's model part: the metadata, with the spec and the conversion record (without
        its seconds: converting the same checkpoint again gives the same bundle, a no-op publish)."""
        return {**self.info, "spec": self.spec, "conversion": self.bundled_conversion}


def inspect_model_file(path: Path) -> BundleContent:
    """The bundle content of a model file to publish as is (see the module docstring): member
    `checkpoint<suffix>` and the metadata it carries. RegistryUsageError for a missing file or an
    unaccepted suffix; CheckpointError / UnsafeCheckpoint / UnsafeProgram for a refused one."""
    from vtm_tui.core.standard import legacy
    from vtm_tui.core.standard.checkpoint import read_checkpoint
    from vtm_tui.core.standard.file_kinds import CHECKPOINT_SUFFIXES, file_kind
    from vtm_tui.core.standard.pt2_safety import check_pt2_archive

    if not path.is_file():
        raise RegistryUsageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise RegistryUsageError(f"{path}: publish a model file: {', '.join(CHECKPOINT_SUFFIXES)}")
    content = BundleContent(files=[("checkpoint" + suffix, path)])
    kind = file_kind(path)
    if kind == "pt2":
        check_pt2_archive(path)
        return content
    if kind == "torchscript":
        content.notes.append("TorchScript: published as is; torch.jit.load has no safe mode, so vtm loads or "
                             "converts it only for those who trust it")
        return content
    checkpoint = read_checkpoint(path, mmap=True)
    meta = legacy.describe(checkpoint.obj)
    if checkpoint.stand_ins:
        content.notes.append(f"Lightning hyper-parameters not loaded (inert stand-ins): "
                             f"{', '.join(checkpoint.stand_ins)}")
    content.info = {key: meta.get(key) for key in (*SPEC_INFO_KEYS, "image_size")}
    content.info["metric"] = meta.get("metric")
    return content


def convert_into(content: BundleContent, src: Path, folder: Path, request) -> BundleContent:
    """Convert src (core/standard convert_to_standard with a ConvertRequest) into
    folder/model-standard.pt2 and add it to content. The conversion's errors pass through
    (exit code 2); nothing has been uploaded yet."""
    from vtm_tui.core.standard.convert import convert_to_standard

    result = convert_to_standard(src, folder / STANDARD_NAME, request)
    content.add_standard(result)
    return content
