"""`--script` steps for runs: `launch`, `wait`, `cancel`."""
from __future__ import annotations

from vtm_tui.core.runs import lifecycle
from vtm_tui.script.context import ScriptContext, StepFailed, step_spec


def _finished(ctx: ScriptContext, run) -> None:
    ctx.log(f"run {run.id} {run.task}: {run.status}"
            + (f" (exit code {run.exit_code})" if run.exit_code is not None else ""))
    if run.status != "succeeded":
        raise StepFailed(f"run {run.id} ended {run.status}" + (f": {run.message}" if run.message else ""))


def step_launch(ctx: ScriptContext, spec) -> None:
    spec = step_spec(spec, "task", {"task", "set", "gpus", "num_gpus", "priority", "engine", "wait", "as",
                                       "timeout", "no_tracking"})
    if not isinstance(spec.get("set", {}), dict):
        raise StepFailed("`set` must be a mapping of field names to values", 2)
    run = lifecycle.launch(ctx.settings, str(spec.get("task")), spec.get("set") or {},
                          gpus=None if spec.get("gpus") is None else str(spec["gpus"]),
                          engine=spec.get("engine"), tracking=False if spec.get("no_tracking") else None,
                          num_gpus=spec.get("num_gpus"), priority=spec.get("priority") or 0)
    ctx.last_run = run.id
    if spec.get("as"):
        ctx.runs[str(spec["as"])] = run.id
    ctx.log(f"launched run {run.id} ({run.task})")
    if spec.get("wait"):
        _finished(ctx, lifecycle.wait(ctx.settings, run.id, timeout=spec.get("timeout")))


def step_wait(ctx: ScriptContext, spec) -> None:
    spec = step_spec(spec, "run", {"run", "timeout"})
    _finished(ctx, lifecycle.wait(ctx.settings, ctx.run_ref(spec.get("run")), timeout=spec.get("timeout")))


def step_cancel(ctx: ScriptContext, spec) -> None:
    spec = step_spec(spec, "run", {"run"})
    run = lifecycle.cancel(ctx.settings, ctx.run_ref(spec.get("run")))
    ctx.log(f"cancel requested for run {run.id}")
