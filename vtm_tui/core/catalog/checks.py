"""Validation of a parsed catalog: the schema per task (so one bad task hides no other's
errors), then the cross-field checks the schema cannot express (fields that exist, runner
targets, bounds and defaults that fit their type, unique task types and registry ids)."""
from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import BaseModel, ValidationError

from vtm_tui.core.catalog.problems import Loc, Problems, show_value
from vtm_tui.core.catalog.schema import (
    BASE_FIELDS,
    MODULE_PATTERN,
    CatalogSpec,
    FieldSpec,
    RunnerSpec,
    TaskSpec,
    describe_error,
)


def validate(data: Any, problems: Problems) -> tuple[CatalogSpec, list[TaskSpec]] | None:
    """Check parsed catalog data against the schema and the cross-field rules, adding every
    problem to `problems`. Returns (the top-level spec, the tasks that passed the schema), or None
    when the data is not a mapping at all; the caller raises CatalogErrors if problems has any."""
    if data is None:
        if not problems.errors:  # an empty file, not a YAML syntax error
            problems.add_at(1, (), "the catalog is empty; expected a mapping with a 'tasks' list")
        return None
    if not isinstance(data, dict):
        problems.add((), f"expected a mapping with a 'tasks' list at the top level (got {show_value(data)})")
        return None
    top = None
    try:
        top = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        _add_validation(problems, exc, CatalogSpec)
    raw_tasks = data.get("tasks") if isinstance(data.get("tasks"), list) else []
    task_specs = []
    for index, raw in enumerate(raw_tasks):
        loc = ("tasks", index)
        try:
            spec = TaskSpec.model_validate(raw)
        except ValidationError as exc:
            _add_validation(problems, exc, TaskSpec, loc)
            partial = _without_broken_keys(raw, exc)
            if partial is not None:
                _check_task(partial, problems, loc)
        else:
            _check_task(spec, problems, loc)
            task_specs.append(spec)
    _check_unique(problems, raw_tasks, "tasks", "taskType")
    raw_models = data.get("registryModels")
    _check_unique(problems, raw_models if isinstance(raw_models, list) else [], "registryModels", "id")
    return top, task_specs


# Keys that decide which fields a task has: with one of them broken, the
# field cross-checks would only produce follow-on noise.
_FIELD_DEFINING_KEYS = {"taskType", "baseTaskType", "extraFields", "fieldOverrides"}


def _without_broken_keys(raw: Any, exc: ValidationError) -> TaskSpec | None:
    """The task minus its invalid keys, so one bad key does not hide the cross-field problems."""
    broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
    if not isinstance(raw, dict) or not broken or broken & _FIELD_DEFINING_KEYS:
        return None
    partial = {key: value for key, value in raw.items() if key not in broken}
    if "runner" in broken:  # already reported; a stand-in keeps the rest checkable
        partial["runner"] = {"startMethod": "command", "target": "runner-already-reported"}
    try:
        return TaskSpec.model_validate(partial)
    except ValidationError:
        return None


def _check_unique(problems: Problems, items: list, list_key: str, key: str) -> None:
    first_line: dict[Any, int | None] = {}
    for index, item in enumerate(items):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        loc = (list_key, index, key)
        if value in first_line:
            problems.add(loc, f"duplicate {key} '{value}' (first at line {first_line[value]})")
        else:
            first_line[value] = problems.line_of(loc)


def base_of(spec: TaskSpec) -> str | None:
    """The base task type whose built-in fields a task gets: baseTaskType, else the task type
    itself when it is a base type (classification, segmentation), else None (no built-in fields)."""
    if spec.base_task_type:
        return spec.base_task_type
    return spec.task_type if spec.task_type in BASE_FIELDS else None


def declared_fields(spec: TaskSpec) -> dict[str, FieldSpec]:
    """Base fields with their overrides, then extra fields, by name in declaration order."""
    fields = {base.name: base for base in BASE_FIELDS.get(base_of(spec), [])}
    for extra in spec.extra_fields:
        fields.setdefault(extra.name, extra)  # a clash is reported by _check_task
    for name, override in spec.field_overrides.items():
        if name in fields:
            fields[name] = fields[name].model_copy(update=override.model_dump(exclude_unset=True))
    return fields


def _check_task(spec: TaskSpec, problems: Problems, loc: Loc) -> None:
    _check_runner(spec.runner, problems, loc + ("runner",))
    base = base_of(spec)
    base_names = {f.name for f in BASE_FIELDS.get(base, [])}
    extra_index: dict[str, int] = {}
    for index, extra in enumerate(spec.extra_fields):
        name_loc = loc + ("extraFields", index, "name")
        if extra.name in base_names:
            problems.add(name_loc, f"'{extra.name}' is already a built-in {base} field; "
                                   "change it with fieldOverrides instead")
        elif extra.name in extra_index:
            problems.add(name_loc, f"duplicate extra field '{extra.name}'")
        else:
            extra_index[extra.name] = index
    fields = declared_fields(spec)
    known = ", ".join(fields) or "none; this task has no fields"
    for name in spec.field_overrides:
        if name not in fields:
            problems.add(loc + ("fieldOverrides", name), f"unknown field '{name}' (known: {known})")
    for name, field_spec in fields.items():
        if name in spec.field_overrides:
            _check_field(field_spec, problems, loc + ("fieldOverrides", name))
        elif name in extra_index:
            _check_field(field_spec, problems, loc + ("extraFields", extra_index[name]))
    for list_key, names in (("fieldOrder", spec.field_order), ("hiddenFields", spec.hidden_fields)):
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name not in fields:
                problems.add(loc + (list_key, index), f"unknown field '{name}' (known: {known})")
            elif name in seen:
                problems.add(loc + (list_key, index), f"'{name}' is listed twice")
            elif list_key == "hiddenFields" and fields[name].required and fields[name].default is None:
                # Nobody could ever give it a value: the form hides it and --set refuses it.
                problems.add(loc + (list_key, index),
                             f"'{name}' is required and has no default, so it cannot be hidden")
            seen.add(name)


def _check_runner(runner: RunnerSpec, problems: Problems, loc: Loc) -> None:
    target, where = runner.target, loc + ("target",)
    if runner.start_method == "command":
        if isinstance(target, list) and target and all(isinstance(part, str) for part in target):
            return
        if not isinstance(target, str):
            problems.add(where, f"expected a command string or a list of strings (got {show_value(target)})")
            return
        try:
            if not shlex.split(target):
                problems.add(where, "the command is empty")
        except ValueError as exc:
            problems.add(where, f"cannot split the command: {exc}")
    elif not isinstance(target, str) or not target.strip():
        what = "a script path" if runner.start_method == "python_script" else "a module name"
        problems.add(where, f"expected {what} (got {show_value(target)})")
    elif runner.start_method == "python_module" and not re.fullmatch(MODULE_PATTERN, target):
        problems.add(where, f"expected a dotted module name like package.module (got {show_value(target)})")


_VALUE_TYPE_WORDS = {"str": "a string", "path": "a path string", "int": "an integer",
                     "float": "a number", "bool": "true or false"}


def _fits(value: Any, value_type: str) -> bool:
    if value_type in ("str", "path"):
        return isinstance(value, str)
    if value_type == "bool":
        return isinstance(value, bool)
    if value_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_field(spec: FieldSpec, problems: Problems, loc: Loc) -> None:
    value_type = spec.value_type or "str"
    widget = widget_of(spec)
    if widget == "boolean" and value_type != "bool":
        problems.add(loc + ("type",), f"type boolean needs valueType bool (got valueType {value_type})")
    elif value_type == "bool" and widget != "boolean":
        problems.add(loc + ("type",), f"valueType bool needs type boolean (got type {widget})")
    if widget == "select":
        if not spec.choices:
            problems.add(loc + ("choices",), "type select needs a non-empty choices list")
        for index, choice in enumerate(spec.choices or []):
            if not _fits(choice, value_type):
                problems.add(loc + ("choices", index), f"choices must be {_VALUE_TYPE_WORDS[value_type]}"
                             f" for valueType {value_type} (got {show_value(choice)})")
    if (spec.min is not None or spec.max is not None) and value_type not in ("int", "float"):
        key = "min" if spec.min is not None else "max"
        problems.add(loc + (key,), f"min/max only apply to valueType int or float (got {value_type})")
        return
    if spec.min is not None and spec.max is not None and spec.min > spec.max:
        problems.add(loc + ("max",), f"max {spec.max} is below min {spec.min}")
    default = spec.default
    if default is None:
        return
    if not _fits(default, value_type):
        problems.add(loc + ("default",), f"default must be {_VALUE_TYPE_WORDS[value_type]}"
                     f" for valueType {value_type} (got {show_value(default)})")
    elif widget == "select" and spec.choices and default not in spec.choices:
        options = ", ".join(str(choice) for choice in spec.choices)
        problems.add(loc + ("default",), f"default {show_value(default)} is not one of the choices ({options})")
    elif value_type in ("int", "float") and spec.min is not None and default < spec.min:
        problems.add(loc + ("default",), f"default {default} is below min {spec.min}")
    elif value_type in ("int", "float") and spec.max is not None and default > spec.max:
        problems.add(loc + ("default",), f"default {default} is above max {spec.max}")


def widget_of(spec: FieldSpec) -> str:
    """A field's widget: its `type`, else boolean for valueType bool, else text."""
    return spec.type or ("boolean" if spec.value_type == "bool" else "text")


def _add_validation(problems: Problems, exc: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> None:
    for err in exc.errors():
        problems.add(prefix + tuple(err["loc"]), describe_error(err, model))
