"""Headless step runner for `vtm --script steps.yaml`.

    steps:
      - launch: {task: classification, set: {epochs: 2}, as: first}
      - wait: first            # or {run: first, timeout: 600}
      - cancel: first

Every step is checked before any runs; the run stops at the first failed step, whose exit code
becomes the script's (1: a run failed or was cancelled, 2: bad input).
Later issues register more step kinds in STEPS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from vtm_tui.core.runs import lifecycle
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


class StepFailed(UserError):
    """A step could not do its work: exit_code 1 (a run failed, nothing qualified) or 2 (bad input)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ScriptContext:
    settings: Settings
    runs: dict[str, int] = field(default_factory=dict)  # `as` label -> run id
    servers: dict[str, str] = field(default_factory=dict)  # serve `as` label -> server id
    mlflow_runs: dict[str, str] = field(default_factory=dict)  # `best` label -> MLflow run id
    last_run: int | None = None
    log: Callable[[str], None] = print

    def run_ref(self, ref) -> int:
        """A label from an earlier step's `as`, a run id, or `last`."""
        if ref in (None, "last", "$last"):
            if self.last_run is None:
                raise StepFailed("no earlier run to refer to", 2)
            return self.last_run
        if isinstance(ref, str) and ref in self.runs:
            return self.runs[ref]
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return int(ref)
        raise StepFailed(f"unknown run reference {ref!r} (use an earlier step's `as`, a run id or 'last')", 2)


def step_spec(spec, main_key: str, allowed: set[str], aliases: dict[str, str] | None = None) -> dict:
    """A step's mapping, checked: `wait: first` stands for `wait: {run: first}`, the original
    system's key spellings map through `aliases`, and unknown keys fail with exit code 2."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        spec = {main_key: spec}
    spec = {(aliases or {}).get(str(key), str(key)): value for key, value in spec.items()}
    unknown = set(spec) - allowed
    if unknown:
        raise StepFailed(f"unknown key(s) {', '.join(sorted(unknown))} "
                         f"(allowed: {', '.join(sorted(allowed))})", 2)
    return spec


def _finished(ctx: ScriptContext, run) -> None:
    ctx.log(f"run {run.id} {run.task}: {run.status}"
            + (f" (exit code {run.exit_code})" if run.exit_code is not None else ""))
    if run.status != "succeeded":
        raise StepFailed(f"run {run.id} ended {run.status}" + (f": {run.message}" if run.message else ""))


def step_launch(ctx: ScriptContext, spec) -> None:
    spec = step_spec(spec, "task", {"task", "set", "gpus", "engine", "wait", "as", "timeout"})
    if not isinstance(spec.get("set", {}), dict):
        raise StepFailed("`set` must be a mapping of field names to values", 2)
    run = lifecycle.launch(ctx.settings, str(spec.get("task")), spec.get("set") or {},
                          gpus=None if spec.get("gpus") is None else str(spec["gpus"]),
                          engine=spec.get("engine"))
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


def _steps() -> dict[str, Callable[[ScriptContext, object], None]]:
    # Step modules import this one lazily, so they are gathered here rather than at import time.
    from vtm_tui.script.import_steps import step_import_tb
    from vtm_tui.script.registry_steps import STEPS as REGISTRY_STEPS
    from vtm_tui.script.serving_steps import step_predict, step_serve, step_stop
    from vtm_tui.script.tracking_steps import step_best, step_register

    return {"launch": step_launch, "wait": step_wait, "cancel": step_cancel,
            "best": step_best, "register": step_register, "import_tb": step_import_tb,
            **REGISTRY_STEPS,
            "serve": step_serve, "predict": step_predict, "stop": step_stop}


STEPS = _steps()


@dataclass
class Step:
    kind: str
    spec: object
    line: int


def load_steps(path: Path) -> list[Step]:
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: script file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    steps_node = None
    if isinstance(root, yaml.MappingNode):
        steps_node = next((v for k, v in root.value if k.value == "steps"), None)
    elif isinstance(root, yaml.SequenceNode):
        steps_node = root
    if not isinstance(steps_node, yaml.SequenceNode):
        raise UserError(f"{path}: expected a `steps:` list of steps")
    steps = []
    for node in steps_node.value:
        line = node.start_mark.line + 1
        data = yaml.safe_load(yaml.serialize(node))
        if not isinstance(data, dict) or len(data) != 1:
            raise UserError(f"{path}:{line}: each step is a mapping with one key, one of: "
                            f"{', '.join(STEPS)}")
        (kind, spec), = data.items()
        if kind not in STEPS:
            raise UserError(f"{path}:{line}: unknown step {kind!r} (known: {', '.join(STEPS)})")
        steps.append(Step(kind, spec, line))
    return steps


def run_script(settings: Settings, path: Path, log: Callable[[str], None] = print) -> int:
    """Run every step in order; returns the exit code of the first failed step, else 0."""
    steps = load_steps(path)
    ctx = ScriptContext(settings, log=log)
    for number, step in enumerate(steps, 1):
        log(f"[step {number}/{len(steps)}] {step.kind} ({path}:{step.line})")
        try:
            STEPS[step.kind](ctx, step.spec)
        except UserError as exc:
            log(f"{path}:{step.line}: step {number} ({step.kind}) failed: {exc}")
            return exc.exit_code
    return 0
