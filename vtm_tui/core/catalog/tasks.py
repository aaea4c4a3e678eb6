"""The loaded catalog: tasks (their runner, form fields, MLflow defaults) and registry models, as
plain dataclasses; and how a task's values become the command line of a run."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Mapping

from vtm_tui.core.catalog.fields import Field
from vtm_tui.core.catalog.problems import FieldValueError, FieldValueErrors, UnknownTask


@dataclass
class Runner:
    """How a task starts: start_method python_script | python_module | command, its target
    (a script path, a module, a command string or argv list), the variable that may override
    the target, the engine (local | slurm) with its Slurm options, extra environment, and the
    working directory (absolute; None: where vtm runs)."""
    start_method: str  # python_script | python_module | command
    target: str | list[str]
    target_env_var: str | None = None
    engine: str = "local"
    env: dict[str, str] = dataclass_field(default_factory=dict)
    slurm: dict[str, Any] = dataclass_field(default_factory=dict)
    cwd: Path | None = None  # absolute; None: the caller's working directory


@dataclass
class MlflowDefaults:
    """What the best-run search and registration use for a task: metric and mode (max | min),
    registered model name, artifact path of the logged model; and on_unreachable, what a launch
    does when the tracking server does not answer: refuse (exit 2) or no-tracking (start the run
    with MLflow off, TensorBoard on, everything spooled for `vtm mlflow sync`)."""
    metric: str | None
    mode: str
    model_name: str
    artifact_path: str
    on_unreachable: str = "refuse"


@dataclass
class Task:
    """A catalog task: its form (fields in declaration order, field_order, hidden_fields), its
    runner and MLflow defaults, and the folder of the catalog it came from."""
    task_type: str
    base_task_type: str | None
    title: str
    description: str
    enabled: bool
    runner: Runner
    mlflow: MlflowDefaults
    catalog_dir: Path
    fields: list[Field] = dataclass_field(default_factory=list)  # declaration order, hidden included
    field_order: list[str] = dataclass_field(default_factory=list)
    hidden_fields: list[str] = dataclass_field(default_factory=list)

    def form_fields(self) -> list[Field]:
        """The fields the form shows: not hidden, field_order first, then the rest in
        declaration order."""
        shown = {f.name: f for f in self.fields if f.name not in self.hidden_fields}
        ordered = [shown.pop(name) for name in self.field_order if name in shown]
        return ordered + list(shown.values())

    def resolve_values(self, raw: Mapping[str, object]) -> dict[str, object]:
        """Defaults overlaid with `raw`, every value coerced; raises FieldValueErrors listing all problems."""
        fields = self.form_fields()
        values: dict[str, object] = {f.name: f.default for f in fields}
        errors: list[FieldValueError] = []
        for name, value in raw.items():
            if name in values:
                values[name] = value
            elif name in self.hidden_fields:
                errors.append(FieldValueError(
                    name, f"{name}: hidden for task '{self.task_type}' (hiddenFields); it cannot be set"))
            else:
                known = ", ".join(values) or "none"
                errors.append(FieldValueError(
                    name, f"{name}: unknown field for task '{self.task_type}' (known: {known})"))
        for f in fields:
            try:
                values[f.name] = f.coerce(values[f.name])
            except FieldValueError as exc:
                errors.append(exc)
        if errors:
            raise FieldValueErrors(errors)
        return values

    def build_args(self, values: Mapping[str, object]) -> list[str]:
        """The `--name value` arguments for resolved values, in form order."""
        args: list[str] = []
        for f in self.form_fields():
            value = values.get(f.name)
            if value is None or value is False:
                continue
            args += [f"--{f.name}"] if value is True else [f"--{f.name}", str(value)]
        return args

    def build_argv(self, values: Mapping[str, object], python: str = sys.executable,
                   environ: Mapping[str, str] = os.environ) -> list[str]:
        """The full command line of a run: the interpreter (`python -u script` or `-m module`) or
        the command, then build_args(values). The runner's target_env_var, when set in `environ`,
        replaces the target (a path there is relative to the working directory; a module task
        given a .py file runs it as a script)."""
        method, target = self.runner.start_method, self.runner.target
        override = environ.get(self.runner.target_env_var or "") or None
        if override:
            target = override
            # The guide's recipe: point a module task at your own train.py by env var.
            if method == "python_module" and (override.endswith(".py") or "/" in override):
                method = "python_script"
        if method == "python_script":
            script = Path(target).expanduser()
            # An env var path was typed in the user's shell, so it is relative to where vtm runs;
            # a catalog path is relative to the catalog, so the file works from any directory.
            base_dir = Path.cwd() if override else self.catalog_dir
            command = [python, "-u", str(script if script.is_absolute() else base_dir / script)]
        elif method == "python_module":
            command = [python, "-u", "-m", target]
        else:
            command = shlex.split(target) if isinstance(target, str) else list(target)
        return command + self.build_args(values)


@dataclass
class RegistryModel:
    """A registry model the Registry tab offers: id, title, task type, the registry name
    (model_name), and the default stage, version ("latest" or a number) and download folder."""
    id: str
    title: str
    task_type: str | None
    model_name: str
    default_stage: str
    default_version: str
    default_destination_dir: str


@dataclass
class Catalog:
    """A loaded catalog: its path, tasks (declaration order) and registry models."""
    path: Path
    tasks: list[Task]
    registry_models: list[RegistryModel] = dataclass_field(default_factory=list)

    def enabled_tasks(self) -> list[Task]:
        """The tasks with enabled: true, in declaration order (what the launcher lists)."""
        return [task for task in self.tasks if task.enabled]

    def task(self, task_type: str) -> Task:
        """The task of this task type, disabled ones included; UnknownTask otherwise."""
        for task in self.tasks:
            if task.task_type == task_type:
                return task
        known = ", ".join(task.task_type for task in self.tasks) or "none"
        raise UnknownTask(f"unknown task '{task_type}'; known: {known}")
