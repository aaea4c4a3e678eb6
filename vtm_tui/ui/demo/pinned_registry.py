"""A pinned demo registry for screenshots and snapshot tests of the Registry tab.

`fill_demo_registry(settings)` writes a small local-folder registry at <VTM_HOME>/registry (the
default registry, so the demo's Settings need no change): two models of the default catalog
and one that is not in it, dev and release stages, LATEST pointers, a promotion and an MLflow
source. Every byte is fixed: checkpoints are pseudo-random bytes from a seed, bundles are
built by core's deterministic BundleWriter, and the manifests carry pinned dates and torch
version, so digests, sizes and dates in a picture are the same on every machine. The bundles
are real (pull verifies them); the checkpoints inside are not loadable models.
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vtm_tui.core.registry.bundle import BundleWriter
from vtm_tui.core.registry.layout import LATEST_NAME, Manifest

TORCH_VERSION = "2.5.1"


@dataclass(frozen=True)
class DemoVersion:
    model: str
    stage: str
    version: int
    created: str
    checkpoint_size: int
    source: dict
    metric: dict | None = None
    task_type: str | None = "classification"
    num_classes: int | None = 10
    architecture: str | None = "SmallCNN"
    standard: bool = False  # a model-standard.pt2 with a pinned spec and conversion record
    seed: str = ""  # same seed and flags: the same bundle (a promotion copies the bytes)


def _run_source(run_id: str, name: str) -> dict:
    return {"type": "mlflow_run", "run_id": run_id, "run_name": name, "experiment": "void-train-manager",
            "artifact": "checkpoints/best_checkpoint.pth", "file_name": "best_checkpoint.pth",
            "tracking_uri": "http://127.0.0.1:5001"}


CLS, SEG = "classification-best-model", "segmentation-best-model"
_FILE = {"type": "file", "file_name": "best_checkpoint.pth", "path": "outputs/checkpoints/best_checkpoint.pth"}
_CLS2 = _run_source("3f9c2a71d05b4e8e9a1c6b7d2e4f8a10", "demo-classification")
DEMO_VERSIONS = [
    DemoVersion(CLS, "dev", 1, "2025-12-27T09:14:05Z", 1_180_000, _FILE, {"name": "val_accuracy", "value": 0.871},
                seed="cls-1"),
    DemoVersion(CLS, "dev", 2, "2025-12-29T16:40:51Z", 1_180_000, _CLS2, {"name": "val_accuracy", "value": 0.904},
                seed="cls-2"),
    DemoVersion(CLS, "dev", 3, "2025-12-31T11:02:37Z", 1_180_000,
                _run_source("a47c1e9b3d5f4e2a8b6c0d9e7f1a2b35", "demo-classification-2"),
                {"name": "val_accuracy", "value": 0.931}, standard=True, seed="cls-3"),
    DemoVersion(CLS, "release", 1, "2025-12-30T08:20:13Z", 1_180_000,
                {"type": "promotion", "from_stage": "dev", "from_version": 2, "origin": _CLS2},
                {"name": "val_accuracy", "value": 0.904}, seed="cls-2"),
    DemoVersion(SEG, "dev", 1, "2025-12-30T19:05:44Z", 2_310_000,
                _run_source("b81e47c2a9d34f0c8e5a2d6f1c7b9e03", "demo-segmentation"),
                {"name": "val_miou", "value": 0.684}, task_type="segmentation", num_classes=4,
                architecture="TinyUNet", seed="seg-1"),
    DemoVersion("resnet18-imagenette", "dev", 1, "2025-12-20T13:31:09Z", 3_020_000,
                {"type": "file", "file_name": "resnet18_ft.pth", "path": "~/experiments/resnet18_ft.pth"},
                None, num_classes=None, architecture=None, task_type=None, seed="ext-1"),
]
LATEST = {(CLS, "dev"): 3, (CLS, "release"): 1, (SEG, "dev"): 1, ("resnet18-imagenette", "dev"): 1}


COLOURS = ["red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "white", "gray"]


def _spec(spec: DemoVersion) -> dict:
    from vtm_tui.core.standard.spec import ModelSpec

    return ModelSpec(spec.task_type or "classification", (3, 32, 32), spec.num_classes or 10,
                     class_names=COLOURS[:spec.num_classes or 10], architecture=spec.architecture,
                     arch_kwargs={"num_classes": spec.num_classes or 10, "image_size": 32}).to_json()


def _conversion() -> dict:
    return {"source": "checkpoint", "max_abs_diff": 2.384e-07, "tolerance": 1e-05, "batches": [2, 3],
            "notes": ["weights under 'state_dict'"], "torch_version": TORCH_VERSION}


def _bytes(seed: str, size: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def _bundle(spec: DemoVersion, folder: Path) -> BundleWriter:
    checkpoint = folder / "checkpoint.pth"
    checkpoint.write_bytes(_bytes(spec.seed, spec.checkpoint_size))
    files = [("checkpoint.pth", checkpoint)]
    metadata = {"task_type": spec.task_type, "num_classes": spec.num_classes, "architecture": spec.architecture}
    if spec.standard:
        standard = folder / "model-standard.pt2"
        standard.write_bytes(_bytes(spec.seed + "-standard", spec.checkpoint_size // 2))
        files.append(("model-standard.pt2", standard))
        metadata.update(spec=_spec(spec), conversion=_conversion())
    return BundleWriter(files, metadata)


def fill_demo_registry(settings) -> Path:
    """Write the demo registry at <VTM_HOME>/registry (idempotent: same files, same bytes)."""
    root = Path(settings.home) / "registry"
    with tempfile.TemporaryDirectory(prefix="vtm-demo-registry-") as tmp:
        for spec in DEMO_VERSIONS:
            folder = Path(tmp) / f"{spec.model}-{spec.stage}-{spec.version}"
            folder.mkdir()
            writer = _bundle(spec, folder)
            vdir = root / spec.model / spec.stage / str(spec.version)
            vdir.mkdir(parents=True, exist_ok=True)
            with open(vdir / "bundle.tar.gz", "wb") as out:
                while chunk := writer.read():
                    out.write(chunk)
            manifest = Manifest(
                model=spec.model, stage=spec.stage, version=spec.version, bundle_sha256=writer.sha256,
                bundle_size=writer.size, files=list(writer.files), created=spec.created, source=spec.source,
                metric=spec.metric, torch_version=TORCH_VERSION, task_type=spec.task_type,
                num_classes=spec.num_classes, architecture=spec.architecture,
                spec=_spec(spec) if spec.standard else None,
                conversion={**_conversion(), "seconds": 1.42} if spec.standard else None,
                set_latest=LATEST.get((spec.model, spec.stage)) == spec.version)
            (vdir / "manifest.json").write_bytes(manifest.dumps())
    for (model, stage), version in LATEST.items():
        (root / model / stage / LATEST_NAME).write_text(f"{version}\n")
    return root
