"""publish-best: the best MLflow run's checkpoint into the registry.

The run is chosen by vtm_tui.core.tracking.best (experiment, metric, mode, or a catalog task's
mlflow defaults). Its checkpoint is the `.pth`/`.pt` artifact under `artifact_path`, by default
`checkpoints/` where vtm's training helper logs `best_checkpoint.pth`. (The catalog's
mlflow.artifactPath names the MLflow *model* for MLflow registration; it is not used here.)
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from vtm_tui.core.registry.base import NotFound, Progress, RegistryUsageError
from vtm_tui.core.registry.ops import Registry
from vtm_tui.core.registry.results import PublishResult

CHECKPOINT_ARTIFACT_PATH = "checkpoints"
PREFERRED_NAMES = ("best_checkpoint.pth", "best_checkpoint.pt")


def _walk(tracking, run_id: str, path: str, depth: int = 0):
    with tracking.calling(f"list artifacts {path!r} of run {run_id}"):
        entries = tracking.client.list_artifacts(run_id, path or None)
    for entry in entries:
        if entry.is_dir and depth < 4:
            yield from _walk(tracking, run_id, entry.path, depth + 1)
        elif not entry.is_dir:
            yield entry.path


def find_checkpoint_artifact(tracking, run_id: str, artifact_path: str) -> str:
    """The run's checkpoint artifact under artifact_path (or artifact_path itself, a file)."""
    if artifact_path.lower().endswith((".pth", ".pt")):
        return artifact_path
    found = [p for p in _walk(tracking, run_id, artifact_path) if p.lower().endswith((".pth", ".pt"))]
    if not found:
        hint = "" if artifact_path == CHECKPOINT_ARTIFACT_PATH else (
            f" (vtm's training scripts log their checkpoint under {CHECKPOINT_ARTIFACT_PATH!r})")
        raise NotFound(f"run {run_id} has no .pth/.pt artifact under {artifact_path!r}{hint}")
    preferred = [p for p in found if Path(p).name in PREFERRED_NAMES]
    if len(preferred) == 1:
        return preferred[0]
    if len(found) == 1:
        return found[0]
    raise RegistryUsageError(f"run {run_id} has several checkpoints under {artifact_path!r} "
                             f"({', '.join(sorted(found))}): name one with --artifact-path")


def publish_best(registry: Registry, settings, *, task: str | None = None, stage: str = "dev",
                 experiment: str | None = None, metric: str | None = None, mode: str | None = None,
                 model: str | None = None, artifact_path: str | None = None, filter: str | None = None,
                 set_latest: bool = False, convert_standard: bool = False, tracking_uri: str | None = None,
                 progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
    """Pick the best run (NoEligibleRun when none qualifies), fetch its checkpoint, publish it
    with the run id and metric in the manifest."""
    from vtm_tui.core.tracking.best import best_run, resolve_query
    from vtm_tui.core.tracking.uri import open_tracking

    query = resolve_query(settings, task=task, experiment=experiment, metric=metric, mode=mode,
                          filter=filter, model_name=model,
                          artifact_path=artifact_path or CHECKPOINT_ARTIFACT_PATH)
    if not query.model_name:
        raise RegistryUsageError("name the registry model: --model NAME (or a --task whose catalog "
                                 "entry sets mlflow.modelName)")
    task_type = None
    if task:
        from vtm_tui.core.catalog import load_catalog

        entry = load_catalog(settings.catalog_path).task(task)
        kind = entry.base_task_type or entry.task_type
        task_type = kind if kind in ("classification", "segmentation") else None
    tracking = open_tracking(settings, tracking_uri)
    best = best_run(tracking, query.experiment, query.metric, query.mode, query.filter)
    run_id = best.run.run_id
    artifact = find_checkpoint_artifact(tracking, run_id, query.artifact_path or CHECKPOINT_ARTIFACT_PATH)
    with tempfile.TemporaryDirectory(prefix="vtm-best-") as tmp:
        with tracking.calling(f"download {artifact!r} of run {run_id}"):
            local = Path(tracking.client.download_artifacts(run_id, artifact, tmp))
        source = {"type": "mlflow_run", "run_id": run_id, "run_name": best.run.name,
                  "experiment": best.experiment.name, "artifact": artifact,
                  "tracking_uri": tracking.display_uri, "file_name": local.name}
        result = registry.publish_file(
            local, query.model_name, stage, set_latest=set_latest, convert_standard=convert_standard,
            task_type=task_type if convert_standard else None, source=source,
            metric={"name": query.metric, "value": best.value, "mode": query.mode},
            progress=progress, cancel=cancel)
    result.extra["best_run"] = {"run_id": run_id, "run_name": best.run.name, "metric": query.metric,
                                "value": best.value, "mode": query.mode, "experiment": best.experiment.name,
                                "considered": best.considered, "eligible": best.eligible,
                                "artifact": artifact}
    return result
