"""`--script` steps for the registry: registry_publish, registry_promote, registry_pull.

    steps:
      - registry_publish: {file: outputs/best.pth, model: clf, stage: dev, setLatest: true,
                           convertToTorchStandard: true, torchTaskType: classification, torchNumClasses: 5}
      - registry_publish: {task: classification, stage: dev, setLatest: true}   # best MLflow run
      - registry_promote: {model: clf, version: latest, from: dev, to: release}
      - registry_pull: {model: clf, stage: release, version: latest, dest: downloads}

Every step takes `registry:` (a URL; default VTM_REGISTRY_URL or <VTM_HOME>/registry) and
accepts the original system's spellings (modelName, setLatest, convertToTorchStandard,
torchTaskType, torchNumClasses, experimentName, artifactPath, taskType). Converting a
TorchScript file runs its code: registry_publish does it only with `trust_torchscript: true`
(or trustTorchScript), as `--trust-torchscript` does. Bad input fails with
exit code 2, a failed transfer or no eligible run with 1.
"""
from __future__ import annotations

ALIASES = {"modelName": "model", "setLatest": "set_latest", "convertToTorchStandard": "convert_standard",
           "torchTaskType": "task_type", "torchNumClasses": "num_classes", "experimentName": "experiment",
           "artifactPath": "artifact_path", "taskType": "task", "trackingUri": "tracking_uri",
           "registryUrl": "registry", "destinationDir": "dest", "fromStage": "from", "toStage": "to",
           "defaultStage": "stage", "defaultVersion": "version", "defaultDestinationDir": "dest",
           "trustTorchScript": "trust_torchscript"}
PUBLISH_KEYS = {"file", "model", "stage", "version", "set_latest", "convert_standard", "task_type",
                "num_classes", "registry", "task", "experiment", "metric", "mode", "artifact_path",
                "filter", "tracking_uri", "trust_torchscript"}
PROMOTE_KEYS = {"model", "version", "from", "to", "set_latest", "registry"}
PULL_KEYS = {"model", "stage", "version", "dest", "registry"}


def _spec(spec, main_key: str, allowed: set[str]) -> dict:
    from vtm_tui.script.context import step_spec

    return step_spec(spec, main_key, allowed, ALIASES)


def _flag(spec: dict, key: str, default: bool = False) -> bool:
    from vtm_tui.script.context import StepFailed

    value = spec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise StepFailed(f"`{key}` must be true or false, got {value!r}", 2)
    return value


def _run(ctx, action):
    """Run a registry call on the step's registry (transfer and network failures are
    RegistryErrors: exit code 1; bad input: 2)."""
    from vtm_tui.core.registry import open_registry

    def call(spec_registry):
        with open_registry(ctx.settings, spec_registry) as registry:
            return action(registry)

    return call


def step_registry_publish(ctx, spec) -> None:
    """Publish a local checkpoint (`file:`), or the best MLflow run's (no `file:`)."""
    from vtm_tui.script.context import StepFailed

    spec = _spec(spec, "file", PUBLISH_KEYS)
    stage = str(spec.get("stage") or "dev")
    set_latest, convert = _flag(spec, "set_latest"), _flag(spec, "convert_standard")
    from vtm_tui.core.standard.spec import ConvertRequest

    request = ConvertRequest(trust_torchscript=_flag(spec, "trust_torchscript"))
    if spec.get("file"):
        extra = {"task", "experiment", "metric", "mode", "artifact_path", "filter", "tracking_uri"} & set(spec)
        if extra:
            raise StepFailed(f"{', '.join(sorted(extra))} only apply to publishing the best run (no `file:`)", 2)
        if not spec.get("model"):
            raise StepFailed("registry_publish with `file:` needs `model:`", 2)

        def action(registry):
            return registry.publish_file(
                ctx.settings.workdir / str(spec["file"]), str(spec["model"]), stage,
                version=spec.get("version"), set_latest=set_latest, convert_standard=convert,
                task_type=spec.get("task_type"),
                num_classes=None if spec.get("num_classes") is None else int(spec["num_classes"]), request=request)
    else:
        from vtm_tui.core.registry.publish_best import publish_best
        from vtm_tui.core.tracking.best import NoEligibleRun

        def action(registry):
            try:
                return publish_best(
                    registry, ctx.settings, task=spec.get("task"), stage=stage,
                    experiment=spec.get("experiment"), metric=spec.get("metric"), mode=spec.get("mode"),
                    model=spec.get("model"), artifact_path=spec.get("artifact_path"),
                    filter=spec.get("filter"), set_latest=set_latest, convert_standard=convert,
                    tracking_uri=spec.get("tracking_uri"), request=request)
            except NoEligibleRun as exc:
                raise StepFailed(str(exc), 1) from None

    result = _run(ctx, action)(spec.get("registry"))
    ctx.log(result.summary())


def step_registry_promote(ctx, spec) -> None:
    from vtm_tui.script.context import StepFailed

    spec = _spec(spec, "model", PROMOTE_KEYS)
    if not spec.get("model"):
        raise StepFailed("registry_promote needs `model:`", 2)
    result = _run(ctx, lambda registry: registry.promote(
        str(spec["model"]), spec.get("version") or "latest", str(spec.get("from") or "dev"),
        str(spec.get("to") or "release"), set_latest=_flag(spec, "set_latest", True)))(spec.get("registry"))
    ctx.log(result.summary())


def step_registry_pull(ctx, spec) -> None:
    from vtm_tui.script.context import StepFailed

    spec = _spec(spec, "model", PULL_KEYS)
    if not spec.get("model"):
        raise StepFailed("registry_pull needs `model:`", 2)
    dest = ctx.settings.workdir / str(spec.get("dest") or "downloads")
    result = _run(ctx, lambda registry: registry.pull(
        str(spec["model"]), str(spec.get("stage") or "release"), spec.get("version") or "latest",
        dest))(spec.get("registry"))
    ctx.log(result.summary())


STEPS = {
    "registry_publish": step_registry_publish,
    "registry_promote": step_registry_promote,
    "registry_pull": step_registry_pull,
}
