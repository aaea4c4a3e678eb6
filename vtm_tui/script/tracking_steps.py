"""`--script` steps for MLflow Ops: `best` and `register`.

    steps:
      - launch: {task: classification, set: {epochs: 2}, wait: true, as: first}
      - best: {task: classification, register: true, alias: dev, as: champion}
      - best: {experiment: void-train-manager, metric: val_loss, mode: min, filter: "params.epochs = '2'"}
      - register: {run: champion, model: classification-best-model, alias: release}
      - register: {run: first, task: classification, alias: dev}   # a launch label: its MLflow run

Keys also accept the original publish-best spelling: experimentName, modelName, artifactPath,
taskType, trackingUri. A `best` with no eligible run fails with exit code 1; bad input with 2.
"""
from __future__ import annotations

import re

ALIASES = {"experimentName": "experiment", "modelName": "model", "artifactPath": "artifact_path",
           "taskType": "task", "trackingUri": "tracking_uri", "runId": "run", "run_id": "run"}
BEST_KEYS = {"task", "experiment", "metric", "mode", "filter", "register", "model", "artifact_path",
             "alias", "tracking_uri", "as"}
REGISTER_KEYS = {"run", "task", "model", "artifact_path", "alias", "tracking_uri"}
MLFLOW_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _spec(spec, main_key: str, allowed: set[str]) -> dict:
    from vtm_tui.script.context import step_spec

    spec = step_spec(spec, main_key, allowed, ALIASES)
    return {k: (None if v is None else v if isinstance(v, bool) else str(v)) for k, v in spec.items()}


def _labels(ctx) -> dict[str, str]:
    """MLflow run ids named by earlier `best` steps (`as`), plus `best`: the last one."""
    return ctx.mlflow_runs


def _mlflow_run_ref(ctx, ref) -> str:
    from vtm_tui.script.context import StepFailed

    labels = _labels(ctx)
    if ref in (None, "best", "$best"):
        if "best" not in labels:
            raise StepFailed("no earlier `best` step to register; give `run:`", 2)
        return labels["best"]
    ref = str(ref)
    if ref in labels:
        return labels[ref]
    if MLFLOW_RUN_ID.match(ref):
        return ref
    from vtm_tui.core.runs import lifecycle

    record = lifecycle.get_run(ctx.settings, ctx.run_ref(ref))
    if not record.mlflow_run_id:
        raise StepFailed(f"vtm run {record.id} has no MLflow run id (did it start logging?)", 1)
    return record.mlflow_run_id


def step_best(ctx, spec) -> None:
    """Find the best run; with `register: true` (or an `alias`) register its model too."""
    from vtm_tui.core.tracking.best import NoEligibleRun, best_run, resolve_query
    from vtm_tui.core.tracking.uri import open_tracking
    from vtm_tui.script.context import StepFailed

    spec = _spec(spec, "task", BEST_KEYS)
    query = resolve_query(ctx.settings, task=spec.get("task"), experiment=spec.get("experiment"),
                          metric=spec.get("metric"), mode=spec.get("mode"), filter=spec.get("filter"),
                          model_name=spec.get("model"), artifact_path=spec.get("artifact_path"))
    register = bool(spec.get("register")) or bool(spec.get("alias"))
    if register and not query.model_name:
        raise StepFailed("registering needs `model:` (or a `task:` whose catalog entry sets modelName)", 2)
    tracking = open_tracking(ctx.settings, spec.get("tracking_uri"))
    try:
        best = best_run(tracking, query.experiment, query.metric, query.mode, query.filter)
    except NoEligibleRun as exc:
        raise StepFailed(str(exc), 1) from None
    ctx.log(best.summary())
    labels = _labels(ctx)
    labels["best"] = best.run.run_id
    if spec.get("as"):
        labels[spec["as"]] = best.run.run_id
    if register:
        from vtm_tui.core.tracking.register import register_run

        ctx.log(register_run(tracking, best.run.run_id, query.model_name, query.artifact_path,
                             spec.get("alias")).summary())


def step_register(ctx, spec) -> None:
    """Register a run's model: `run` is a `best` label, a launch label / vtm run id, or an MLflow run id."""
    from vtm_tui.core.tracking.register import register_run
    from vtm_tui.core.tracking.uri import open_tracking
    from vtm_tui.script.context import StepFailed

    spec = _spec(spec, "run", REGISTER_KEYS)
    model, artifact_path = spec.get("model"), spec.get("artifact_path")
    if spec.get("task"):
        from vtm_tui.core.catalog import load_catalog

        defaults = load_catalog(ctx.settings.catalog_path).task(spec["task"]).mlflow
        model, artifact_path = model or defaults.model_name, artifact_path or defaults.artifact_path
    if not model:
        raise StepFailed("register needs `model:` (or `task:` for the catalog's modelName)", 2)
    run_id = _mlflow_run_ref(ctx, spec.get("run"))
    tracking = open_tracking(ctx.settings, spec.get("tracking_uri"))
    ctx.log(register_run(tracking, run_id, model, artifact_path or "model", spec.get("alias")).summary())
