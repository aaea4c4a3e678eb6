"""What the Registry tab's transfer worker runs: one function per action, core calls only.

Each takes an open Registry (the worker's own) and a context giving the cancel event and a
progress callback per phase; it returns what to tell the user and which version to select.
They touch no widget (they run in a worker thread) and take no lock of the UI's, so a test may
call them directly.
"""
from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vtm_tui.ui.tabs.registry.tree import NodeRef

if TYPE_CHECKING:
    from vtm_tui.core.registry import Registry, VersionInfo
    from vtm_tui.ui.screens.registry_dialogs import BestRequest, ConvertVersionRequest, PublishRequest


@dataclass
class Outcome:
    text: str
    select: NodeRef | None = None
    changed: bool = False  # the registry has a new version: read it again


class Context(Protocol):
    cancel: threading.Event

    def meter(self, phase: str) -> Callable[[int, int | None], None]: ...


@dataclass
class Job:
    title: str  # "Pull m/release/2": what the status line names
    phase: str  # "Pulling m/release/2": what the bar shows until the first progress
    run: Callable[[Registry, Context], Outcome]
    if_cancelled: str = ""  # what a cancel leaves behind, said after "cancelled"


def _published_text(result, prefix: str = "") -> str:
    text = result.summary()
    return prefix + (text[:1].upper() + text[1:] if not prefix else text)


def _conversion_text(manifest) -> str:
    """`; model-standard.pt2 within 2.4e-07 of its source` when the publish made a program."""
    conversion = manifest.conversion or {}
    if "max_abs_diff" not in conversion:
        return ""
    return f"; {manifest.standard_name} within {conversion['max_abs_diff']:.2g} of its source"


def pull(model: str, stage: str, version: int, dest: Path, shown: str) -> Job:
    ref = f"{model}/{stage}/{version}"

    def run(registry: Registry, ctx: Context) -> Outcome:
        result = registry.pull(model, stage, version, dest, progress=ctx.meter(f"Pulling {ref}"),
                               cancel=ctx.cancel)
        m = result.manifest
        return Outcome(f"Pulled {ref} into {shown}/{model}/{stage}/{result.version} "
                       f"(sha256 {m.bundle_sha256[:12]} verified, {result.seconds:.1f} s)")

    return Job(f"Pull {ref}", f"Pulling {ref}", run, f": nothing was written to {shown}")


def promote(model: str, version: int) -> Job:
    ref = f"{model}/dev/{version}"

    def run(registry: Registry, ctx: Context) -> Outcome:
        result = registry.promote(model, version, "dev", "release", progress=ctx.meter(f"Promoting {ref}"),
                                  cancel=ctx.cancel)
        if not result.created:
            text = f"{ref} is already in release as v{result.version} (same sha256): nothing to do"
        else:
            text = f"Promoted {ref} to {result.ref} (same sha256 {result.manifest.bundle_sha256[:12]})"
            if result.latest is not None:
                text += f"; release LATEST -> {result.latest}"
        return Outcome(text, NodeRef(model, "release", result.version), changed=True)

    return Job(f"Promote {ref}", f"Promoting {ref}", run, ": release is unchanged")


def with_defaults(spec, defaults):
    """The dialog's core.standard ConvertRequest with its empty fields taken from `defaults` (the
    catalog task's model: block for the registry model, Catalog.model_block_for), if any."""
    return spec.merged(defaults) if spec is not None and defaults is not None else spec


def publish_file(request: PublishRequest, base: Path, defaults=None) -> Job:
    path = Path(request.path).expanduser()
    path = path if path.is_absolute() else base / path
    where = f"{request.model}/{request.stage}"

    def run(registry: Registry, ctx: Context) -> Outcome:
        result = registry.publish_file(
            path, request.model, request.stage, set_latest=request.set_latest,
            convert_standard=request.convert_standard, task_type=request.task_type,
            num_classes=request.num_classes, request=with_defaults(request.spec, defaults),
            progress=ctx.meter(f"Publishing {path.name} to {where}"), cancel=ctx.cancel)
        return Outcome(_published_text(result) + _conversion_text(result.manifest),
                       NodeRef(result.model, result.stage, result.version), True)

    verb = "Converting and publishing" if request.convert_standard else "Publishing"
    return Job(f"Publish {path.name} to {where}", f"{verb} {path.name} to {where}", run,
               f": {where} is unchanged")


def publish_best(settings, request: BestRequest) -> Job:
    def run(registry: Registry, ctx: Context) -> Outcome:
        from vtm_tui.core.registry.publish_best import publish_best as core_publish_best

        result = core_publish_best(registry, settings, task=request.task, stage=request.stage,
                                   set_latest=request.set_latest, convert_standard=request.convert_standard,
                                   request=request.spec,
                                   progress=ctx.meter(f"Publishing the best {request.task} run"),
                                   cancel=ctx.cancel)
        best = result.extra.get("best_run", {})
        value = best.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        prefix = f"Best run {str(best.get('run_id', '?'))[:12]} ({best.get('metric')} {shown}): "
        return Outcome(_published_text(result, prefix) + _conversion_text(result.manifest),
                       NodeRef(result.model, result.stage, result.version), True)

    return Job(f"Publish the best {request.task} run", f"Finding the best {request.task} run", run,
               f": {request.stage} is unchanged")


def convert(info: VersionInfo, request: ConvertVersionRequest, defaults=None) -> Job:
    m = info.manifest
    ref = f"{m.model}/{m.stage}/{m.version}"

    def run(registry: Registry, ctx: Context) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="vtm-convert-") as tmp:
            pulled = registry.pull(m.model, m.stage, m.version, tmp, progress=ctx.meter(f"Downloading {ref}"),
                                   cancel=ctx.cancel)
            source = {"type": "conversion", "from_stage": m.stage, "from_version": m.version,
                      "origin": m.source}
            result = registry.publish_file(
                pulled.checkpoint, m.model, m.stage, set_latest=request.set_latest, convert_standard=True,
                task_type=request.task_type, num_classes=request.num_classes, architecture=m.architecture,
                request=with_defaults(request.spec, defaults), source=source, metric=m.metric,
                progress=ctx.meter(f"Converting {ref} and publishing it"), cancel=ctx.cancel)
        return Outcome(f"Converted {ref}: " + result.summary() + _conversion_text(result.manifest),
                       NodeRef(m.model, m.stage, result.version), True)

    return Job(f"Convert {ref}", f"Downloading {ref}", run, f": {m.model}/{m.stage} is unchanged")
