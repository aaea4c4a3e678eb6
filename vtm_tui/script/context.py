"""What every `--script` step gets: the ScriptContext (settings, labels of earlier steps), the
StepFailed error, and step_spec, which checks a step's keys."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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
