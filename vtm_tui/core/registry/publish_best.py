"""publish-best: the best MLflow run's model into the registry.

The run is chosen by vtm_tui.core.tracking.best (experiment, metric, mode, or a catalog task's
mlflow defaults). Its checkpoint is the `.pth`/`.pt`/`.ckpt` artifact under `artifact_path`, by
default `checkpoints/` where vtm's training helper logs `best_checkpoint.pth`. Its logged model
is the MLflow model at the catalog task's mlflow.artifactPath (default `model`): when MLflow wrote
it as pt2 (its default), it becomes the bundle's standard program (mlflow_models.py).
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from vtm_tui.core.registry.base import NotFound, Progress, RegistryUsageError
from vtm_tui.core.registry.ops import Registry
from vtm_tui.core.registry.results import PublishResult

CHECKPOINT_ARTIFACT_PATH = "checkpoints"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
PREFERRED_NAMES = ("best_checkpoint.pth", "best_checkpoint.pt", "best.ckpt", "last.ckpt")


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
    if artifact_path.lower().endswith(CHECKPOINT_SUFFIXES):
        return artifact_path
    found = [p for p in _walk(tracking, run_id, artifact_path) if p.lower().endswith(CHECKPOINT_SUFFIXES)]
    if not found:
        hint = "" if artifact_path == CHECKPOINT_ARTIFACT_PATH else (
            f" (vtm's training scripts log their checkpoint under {CHECKPOINT_ARTIFACT_PATH!r})")
        raise NotFound(f"run {run_id} has no .pth/.pt/.ckpt artifact under {artifact_path!r}{hint}")
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
                 request=None, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> PublishResult:
    """Pick the best run (NoEligibleRun when none qualifies) and publish what it left, with the
    run id and metric in the manifest: its checkpoint (under artifact_path), and, when it logged a
    PyTorch model in MLflow's pt2 format (at the task's mlflow.artifactPath, default "model"),
    that program as the bundle's standard program (its spec from `request` and the task's
    `model:` block). Without a logged pt2, convert_standard converts the checkpoint with them.
    NotFound when the run has neither."""
    from vtm_tui.core.registry.mlflow_models import logged_model_folder, standard_content
    from vtm_tui.core.registry.model_files import BundleContent, convert_into, inspect_model_file
    from vtm_tui.core.standard.spec import ConvertRequest
    from vtm_tui.core.tracking.best import best_run, resolve_query
    from vtm_tui.core.tracking.uri import open_tracking

    query = resolve_query(settings, task=task, experiment=experiment, metric=metric, mode=mode,
                          filter=filter, model_name=model,
                          artifact_path=artifact_path or CHECKPOINT_ARTIFACT_PATH)
    if not query.model_name:
        raise RegistryUsageError("name the registry model: --model NAME (or a --task whose catalog "
                                 "entry sets mlflow.modelName)")
    request = request or ConvertRequest()
    logged_name = "model"
    if task:
        from vtm_tui.core.catalog import load_catalog

        entry = load_catalog(settings.catalog_path).task(task)
        request = request.merged(entry.convert_defaults())
        logged_name = entry.mlflow.artifact_path or logged_name
    tracking = open_tracking(settings, tracking_uri)
    best = best_run(tracking, query.experiment, query.metric, query.mode, query.filter)
    run_id = best.run.run_id
    with tempfile.TemporaryDirectory(prefix="vtm-best-") as tmp:
        work = Path(tmp)
        logged = logged_model_folder(tracking, run_id, logged_name, work / "logged")
        try:
            artifact = find_checkpoint_artifact(tracking, run_id, query.artifact_path or CHECKPOINT_ARTIFACT_PATH)
        except NotFound:
            if logged is None:
                raise NotFound(f"run {run_id} has no .pth/.pt/.ckpt artifact under {query.artifact_path!r} and "
                               f"no logged model {logged_name!r}") from None
            artifact = None
        content, local = BundleContent(), None
        if artifact:
            with tracking.calling(f"download {artifact!r} of run {run_id}"):
                local = Path(tracking.client.download_artifacts(run_id, artifact, str(work / "checkpoint")))
            content = inspect_model_file(local)
            content.info.pop("metric", None)
        (work / "standard").mkdir()
        if logged is not None and (logged / "data" / "model.pt2").is_file():
            standard_content(logged, work / "standard", request, content)
        elif convert_standard and local is not None:
            convert_into(content, local, work / "standard", request)
        elif convert_standard and logged is not None:
            standard_content(logged, work / "standard", request, content)
        source = {"type": "mlflow_run", "run_id": run_id, "run_name": best.run.name,
                  "experiment": best.experiment.name, "artifact": artifact,
                  "tracking_uri": tracking.display_uri, "file_name": local.name if local else None}
        if logged is not None:
            source["logged_model"] = logged_name
        result = registry.publish_content(
            content, query.model_name, stage, set_latest=set_latest, source=source,
            metric={"name": query.metric, "value": best.value, "mode": query.mode},
            progress=progress, cancel=cancel)
    result.extra["best_run"] = {"run_id": run_id, "run_name": best.run.name, "metric": query.metric,
                                "value": best.value, "mode": query.mode, "experiment": best.experiment.name,
                                "considered": best.considered, "eligible": best.eligible,
                                "artifact": artifact, "logged_model": logged_name if logged is not None else None}
    return result
