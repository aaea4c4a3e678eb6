"""Models without their training code: Torch Standard v2 programs (`model-standard.pt2`, a
torch.export ExportedProgram with its input/output spec), converting what users have into them,
and the safe local loader.

    from vtm_tui.core.standard import ConvertRequest, convert_to_standard, load_program

    result = convert_to_standard("best.ckpt", "model-standard.pt2",
                                 ConvertRequest(architecture="./models.py:UNet", input_shape=(3, 64, 64)))
    program = load_program("model-standard.pt2")       # checked pickle-free before torch.export.load

Modules: spec (ModelSpec, ConvertRequest), checkpoint (safe reading, unwrapping, fitting),
user_arch (MODULE_OR_FILE:CALLABLE), exporter (export and proof), pt2_safety (the pickle-free
rule), convert (every source), loader (load_program), legacy (v1 files and vtm's example
checkpoints), file_kinds, architectures (the examples). torch is imported on first use.
"""
from __future__ import annotations

from vtm_tui.core.lazy import lazy_exports

_EXPORTS = {
    "architectures": ("build_model",),
    "checkpoint": ("CheckpointError", "UnsafeCheckpoint", "read_checkpoint", "safe_load"),
    "convert": ("StandardResult", "convert_to_standard"),
    "exporter": ("Conversion", "ExportFailed"),
    "file_kinds": ("CHECKPOINT_SUFFIXES", "STANDARD_V2_FILE", "file_kind"),
    "loader": ("LoadedProgram", "load_program"),
    "pt2_safety": ("UnsafeProgram", "check_pt2_archive"),
    "spec": ("ConvertRequest", "ModelSpec", "SpecError"),
    "user_arch": ("ArchitectureError",),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
