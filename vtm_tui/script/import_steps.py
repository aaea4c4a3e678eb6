"""`--script` step for TensorBoard import: `import_tb`."""
from __future__ import annotations

from pathlib import Path


def step_import_tb(ctx, spec) -> None:
    """Script step `import_tb: {tensorboard_dir, tracking_uri, experiment_name, run_name,
    flatten_tags}` (or `import_tb: DIR`). Problems fail the step (exit code 1)."""
    from vtm_tui.core.tensorboard import format_report, import_tensorboard
    from vtm_tui.script.context import StepFailed, step_spec

    allowed = {"tensorboard_dir", "tracking_uri", "experiment_name", "run_name", "flatten_tags"}
    spec = step_spec(spec, "tensorboard_dir", allowed,
                     {"tensorboardDir": "tensorboard_dir", "trackingUri": "tracking_uri",
                      "experimentName": "experiment_name", "runName": "run_name"})
    if not spec.get("tensorboard_dir"):
        raise StepFailed("`tensorboard_dir` is required", 2)
    if not isinstance(spec.get("flatten_tags", False), bool):
        raise StepFailed("`flatten_tags` must be true or false", 2)
    settings = ctx.settings
    log_dir = Path(str(spec["tensorboard_dir"])).expanduser()
    if not log_dir.is_absolute():
        log_dir = settings.workdir / log_dir
    report = import_tensorboard(
        log_dir, tracking_uri=spec.get("tracking_uri") or None,
        experiment_name=str(spec.get("experiment_name") or settings.experiment_name),
        run_name=None if spec.get("run_name") is None else str(spec["run_name"]),
        flatten_tags=bool(spec.get("flatten_tags", False)), settings=settings)
    for line in format_report(report):
        ctx.log(line)
    for problem in report.problems:
        ctx.log(f"problem: {problem}")
    if report.problems:
        raise StepFailed(f"{len(report.problems)} problem(s) importing {log_dir}; first: {report.problems[0]}")
