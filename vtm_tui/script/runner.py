"""Headless step runner for `vtm --script steps.yaml`.

    steps:
      - launch: {task: classification, set: {epochs: 2}, as: first}
      - wait: first            # or {run: first, timeout: 600}
      - cancel: first

Every step is checked before any runs; the run stops at the first failed step, whose exit code
becomes the script's (1: a run failed or was cancelled, 2: bad input).
Step kinds live in the *_steps modules; STEPS maps each YAML key to its function.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from vtm_tui.errors import UserError
from vtm_tui.script.context import ScriptContext
from vtm_tui.script.import_steps import step_import_tb
from vtm_tui.script.registry_steps import STEPS as REGISTRY_STEPS
from vtm_tui.script.run_steps import step_cancel, step_launch, step_wait
from vtm_tui.script.serving_steps import step_predict, step_serve, step_stop
from vtm_tui.script.tracking_steps import step_best, step_register
from vtm_tui.settings import Settings

STEPS: dict[str, Callable[[ScriptContext, object], None]] = {
    "launch": step_launch, "wait": step_wait, "cancel": step_cancel,
    "best": step_best, "register": step_register, "import_tb": step_import_tb,
    **REGISTRY_STEPS,
    "serve": step_serve, "predict": step_predict, "stop": step_stop,
}


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
