"""What kind of model file a path holds, told from its content (never by unpickling it).

    pt2            a torch.export archive (a zip with `archive_format` = "pt2")
    torchscript    a TorchScript archive (torch.jit.save: a zip with `constants.pkl` / `code/`)
    checkpoint     a torch.save file (a zip with `data.pkl`, or the legacy pickle format): state
                   dicts, vtm and Lightning checkpoints, v1 standard files
    mlflow-model   an MLflow model folder (it has an `MLmodel` file), e.g. a downloaded logged model

Zip layouts: torch/export/pt2_archive (PT2 archive), torch.jit.save and torch.save
(https://pytorch.org/docs/stable/notes/serialization.html).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from vtm_tui.core.standard.checkpoint import CheckpointError

STANDARD_V2_FILE = "model-standard.pt2"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".pt2")  # what vtm accepts as a model file to publish
MLMODEL = "MLmodel"


def file_kind(path: str | Path) -> str:
    """pt2, torchscript, checkpoint or mlflow-model (see the module docstring); CheckpointError
    for a path that is none of them."""
    path = Path(path)
    if path.is_dir():
        if (path / MLMODEL).is_file():
            return "mlflow-model"
        raise CheckpointError(f"{path}: a folder, but not an MLflow model (no {MLMODEL} file)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        return "checkpoint"  # torch.save's legacy format, or not a torch file at all (safe_load says which)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            formats = [n for n in names if n.rsplit("/", 1)[-1] == "archive_format" and n.count("/") <= 1]
            if formats and archive.read(formats[0]).strip() == b"pt2":
                return "pt2"
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable archive ({exc})") from None
    if any(n.rsplit("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in names):
        return "torchscript"
    return "checkpoint"
