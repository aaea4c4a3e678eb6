"""catalog.yaml: which training tasks exist, the form each one shows, and how a
filled-in form becomes a command line.

The file format is the original Void Train Manager's training_catalog.yaml,
unchanged. Loading validates everything up front and reports every problem at
once as `file:line: key: message`, so a broken catalog is fixed in one pass
rather than one crash at a time.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import sys
import types
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal, Mapping, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic import Field as SchemaField
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from vtm_tui.errors import UserError
from vtm_tui.settings import PACKAGED_CATALOG

Loc = tuple[Union[str, int], ...]

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class CatalogError(Exception):
    """One problem in a catalog file, pointing at the line and key to fix."""

    def __init__(self, path: Path, line: int | None, key: str, message: str):
        super().__init__(message)
        self.path, self.line, self.key, self.message = Path(path), line, key, message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class CatalogErrors(UserError):
    """Every problem found in one catalog file, in file order."""

    def __init__(self, errors: list[CatalogError]):
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(map(str, self.errors))


class FieldValueError(ValueError):
    """A form value that does not fit its field; the message is shown to the user as is."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class FieldValueErrors(UserError, ValueError):
    """All bad values of one form, so the user fixes them in one go."""

    def __init__(self, errors: list[FieldValueError]):
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(e.message for e in self.errors)


class UnknownTask(UserError, LookupError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _show(value: Any) -> str:
    """A short rendering of a value for '(got ...)' in messages, in YAML spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------
# Schema (pydantic). Keys are camelCase as in the original file format.
# ---------------------------------------------------------------------------

ValueType = Literal["str", "int", "float", "bool", "path"]
Widget = Literal["text", "select", "boolean"]
StartMethod = Literal["python_script", "python_module", "command"]
BaseTaskType = Literal["classification", "segmentation"]

FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
TASK_TYPE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MODULE_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"


class _Schema(BaseModel):
    # strict: YAML already yields typed values, so "5" where an int belongs is a
    # mistake worth reporting rather than something to coerce silently.
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel,
                              protected_namespaces=())


class FieldOverrideSpec(_Schema):
    label: str | None = None
    value_type: ValueType | None = None
    type: Widget | None = None
    choices: list[Any] | None = None
    required: bool | None = None
    default: Any = None
    help: str | None = None
    min: Any = None
    max: Any = None

    @field_validator("min", "max")
    @classmethod
    def _bound_is_number(cls, value: Any) -> Any:
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise PydanticCustomError("catalog", "expected a number (got {got})", {"got": _show(value)})


class FieldSpec(FieldOverrideSpec):
    name: str = SchemaField(pattern=FIELD_NAME_PATTERN)


class SlurmSpec(_Schema):
    partition: str | None = None
    gres: str | None = None
    time: str | None = None
    cpus: int | None = None
    mem: str | None = None
    extra_args: list[str] | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _time_is_quoted(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 01:00:00 as the base-60 integer 3600.
        if isinstance(value, int) and not isinstance(value, bool):
            raise PydanticCustomError(
                "catalog", 'expected a string; quote the time, e.g. time: "01:00:00"')
        return value


class RunnerSpec(_Schema):
    start_method: StartMethod
    target: Any  # str, or a list of str for `command`; checked together with startMethod
    target_env_var: str | None = SchemaField(None, pattern=ENV_VAR_PATTERN)
    engine: Literal["local", "slurm"] = "local"
    env: dict[str, str] = {}
    slurm: SlurmSpec = SlurmSpec()
    cwd: str | None = None


class MlflowSpec(_Schema):
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    model_name: str | None = None
    artifact_path: str | None = None


class TaskSpec(_Schema):
    task_type: str = SchemaField(pattern=TASK_TYPE_PATTERN)
    base_task_type: BaseTaskType | None = None
    title: str | None = None
    description: str | None = None
    enabled: bool = True
    runner: RunnerSpec
    field_order: list[str] = []
    hidden_fields: list[str] = []
    field_overrides: dict[str, FieldOverrideSpec] = {}
    extra_fields: list[FieldSpec] = []
    mlflow: MlflowSpec = MlflowSpec()


class RegistryModelSpec(_Schema):
    id: str
    title: str | None = None
    task_type: str | None = None
    model_name: str
    default_stage: Literal["dev", "release"] = "release"
    default_version: str = "latest"
    default_destination_dir: str = "./downloads"

    @field_validator("default_version", mode="before")
    @classmethod
    def _version_number_is_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class CatalogSpec(_Schema):
    tasks: list[Any]  # each item is validated on its own so one bad task hides no other's errors
    registry_models: list[RegistryModelSpec] = []


# ---------------------------------------------------------------------------
# Built-in fields: the arguments the bundled training scripts accept.
# ---------------------------------------------------------------------------


def _base_fields(num_classes: int, image_size: int, samples: int) -> list[FieldSpec]:
    specs = [
        {"name": "epochs", "label": "Epochs", "valueType": "int", "default": 5, "min": 1,
         "max": 10000, "help": "Full passes over the training data."},
        {"name": "batch_size", "label": "Batch size", "valueType": "int", "default": 32,
         "min": 1, "help": "Samples per optimisation step."},
        {"name": "learning_rate", "label": "Learning rate", "valueType": "float",
         "default": 0.001, "min": 0, "help": "Optimiser step size."},
        {"name": "num_classes", "label": "Classes", "valueType": "int", "default": num_classes,
         "min": 2, "help": "Number of target classes."},
        {"name": "image_size", "label": "Image size", "valueType": "int", "default": image_size,
         "min": 8, "help": "Width and height of the square input images, in pixels."},
        {"name": "samples", "label": "Samples", "valueType": "int", "default": samples,
         "min": 16, "help": "Size of the synthetic training dataset."},
        {"name": "seed", "label": "Seed", "valueType": "int", "default": 42,
         "help": "Random seed, for reproducible runs."},
        {"name": "device", "label": "Device", "type": "select", "choices": ["auto", "cpu", "cuda"],
         "default": "auto", "help": "Where to train; auto picks cuda when available."},
        {"name": "experiment_name", "label": "MLflow experiment", "default": "void-train-manager",
         "help": "MLflow experiment the run is logged to."},
        {"name": "output_dir", "label": "Output directory", "valueType": "path",
         "default": "./outputs", "help": "Where checkpoints and TensorBoard logs are written."},
    ]
    return [FieldSpec.model_validate(spec) for spec in specs]


BASE_FIELDS: dict[str, list[FieldSpec]] = {
    "classification": _base_fields(num_classes=5, image_size=32, samples=512),
    "segmentation": _base_fields(num_classes=3, image_size=64, samples=256),
}

DEFAULT_CATALOG_PATH = PACKAGED_CATALOG

# ---------------------------------------------------------------------------
# The loaded catalog
# ---------------------------------------------------------------------------

_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


@dataclass
class Field:
    name: str
    label: str
    value_type: str  # str | int | float | bool | path
    widget: str  # text | select | boolean
    choices: list = dataclass_field(default_factory=list)
    required: bool = False
    default: Any = None
    help: str = ""
    min: int | float | None = None
    max: int | float | None = None

    def coerce(self, raw: Any) -> Any:
        """Turn a form / `--set` string (or an already typed value) into this field's value."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if self.required:
                raise self._error("a value is required")
            return None
        value = self._convert(raw)
        if self.widget == "select" and self.choices and value not in self.choices:
            options = ", ".join(str(choice) for choice in self.choices)
            raise self._error(f"must be one of {options} (got {_show(value)})")
        if self.min is not None and value < self.min:
            raise self._error(f"must be >= {self.min} (got {_show(value)})")
        if self.max is not None and value > self.max:
            raise self._error(f"must be <= {self.max} (got {_show(value)})")
        return value

    def _convert(self, raw: Any) -> Any:
        if self.value_type == "bool":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word in _TRUE_WORDS or word in _FALSE_WORDS:
                return word in _TRUE_WORDS
            raise self._error(f"must be true or false (got {_show(raw)})")
        if self.value_type == "int":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
                return int(raw)
            raise self._error(f"must be an integer (got {_show(raw)})")
        if self.value_type == "float":
            try:
                if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                    raise ValueError
                value = float(raw)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise self._error(f"must be a number (got {_show(raw)})")
            return value
        if isinstance(raw, (list, dict)):
            raise self._error(f"must be text (got {_show(raw)})")
        return str(raw).strip()

    def _error(self, message: str) -> FieldValueError:
        return FieldValueError(self.name, f"{self.name}: {message}")


@dataclass
class Runner:
    start_method: str  # python_script | python_module | command
    target: str | list[str]
    target_env_var: str | None = None
    engine: str = "local"
    env: dict[str, str] = dataclass_field(default_factory=dict)
    slurm: dict[str, Any] = dataclass_field(default_factory=dict)
    cwd: Path | None = None  # absolute; None: the caller's working directory


@dataclass
class MlflowDefaults:
    metric: str | None
    mode: str
    model_name: str
    artifact_path: str


@dataclass
class Task:
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
    id: str
    title: str
    task_type: str | None
    model_name: str
    default_stage: str
    default_version: str
    default_destination_dir: str


@dataclass
class Catalog:
    path: Path
    tasks: list[Task]
    registry_models: list[RegistryModel] = dataclass_field(default_factory=list)

    def enabled_tasks(self) -> list[Task]:
        return [task for task in self.tasks if task.enabled]

    def task(self, task_type: str) -> Task:
        for task in self.tasks:
            if task.task_type == task_type:
                return task
        known = ", ".join(task.task_type for task in self.tasks) or "none"
        raise UnknownTask(f"unknown task '{task_type}'; known: {known}")


# ---------------------------------------------------------------------------
# Loading: YAML with line numbers -> schema -> cross-field checks -> Catalog
# ---------------------------------------------------------------------------


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogErrors([CatalogError(
            path, None, "", "file not found; set TRAINING_CATALOG_PATH or create it")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogErrors([CatalogError(path, None, "", f"cannot read the file: {exc}")]) from None
    problems = _Problems(path)
    data = _compose(text, problems)
    specs = _validate(data, problems)
    if problems.errors:
        raise CatalogErrors(sorted(problems.errors, key=lambda e: e.line or 0))
    # Not resolve(): a symlinked catalog's relative paths mean the folder it is seen in.
    catalog_dir = Path(os.path.abspath(path)).parent
    top, task_specs = specs
    return Catalog(
        path=path,
        tasks=[_build_task(spec, catalog_dir) for spec in task_specs],
        registry_models=[RegistryModel(
            id=m.id, title=m.title or m.id, task_type=m.task_type, model_name=m.model_name,
            default_stage=m.default_stage, default_version=m.default_version,
            default_destination_dir=m.default_destination_dir) for m in top.registry_models],
    )


def _dotted(loc: Loc) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


class _Problems:
    """Collects CatalogErrors; knows the line of every key and list item in the file."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: dict[Loc, int] = {}
        self.errors: list[CatalogError] = []

    def line_of(self, loc: Loc) -> int | None:
        # A missing key has no line of its own: point at the mapping that lacks it.
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def add(self, loc: Loc, message: str) -> None:
        self.errors.append(CatalogError(self.path, self.line_of(loc), _dotted(loc), message))

    def add_at(self, line: int | None, loc: Loc, message: str) -> None:
        self.errors.append(CatalogError(self.path, line, _dotted(loc), message))

    def add_validation(self, exc: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> None:
        for err in exc.errors():
            self.add(prefix + tuple(err["loc"]), _describe(err, model))


def _compose(text: str, problems: _Problems) -> Any:
    """Parse YAML into plain data, recording the line of every key and item in problems.lines."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _node_to_data(root, (), loader, problems, active=set())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # A problem found at the end of the stream sits past the last line; point at that line.
        line = min(mark.line + 1, max(len(text.splitlines()), 1)) if mark else None
        message = exc.problem or exc.context
        if exc.context and exc.problem and exc.context_mark:
            message = f"{exc.context} at line {exc.context_mark.line + 1}: {exc.problem}"
        problems.add_at(line, (), f"invalid YAML: {message}")
    except yaml.YAMLError as exc:
        problems.add_at(None, (), f"invalid YAML: {exc}")
    finally:
        loader.dispose()
    return None


def _node_to_data(node: yaml.Node, loc: Loc, loader: yaml.SafeLoader, problems: _Problems,
                  active: set[int]) -> Any:
    problems.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if id(node) in active:
        problems.add(loc, "recursive YAML alias")
        return None
    active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                problems.lines[loc + (index,)] = item.start_mark.line + 1
                items.append(_node_to_data(item, loc + (index,), loader, problems, active))
            return items
        mapping: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add_at(line, loc, "a key must be plain text")
                continue
            # All keys of the format are names, so take them as written (`on:` stays "on").
            key = key_node.value
            if key in first_line:
                problems.add_at(line, loc + (key,),
                                f"duplicate key '{key}' (first at line {first_line[key]})")
                continue
            first_line[key] = line
            problems.lines[loc + (key,)] = line
            mapping[key] = _node_to_data(value_node, loc + (key,), loader, problems, active)
        return mapping
    finally:
        active.discard(id(node))


_EXPECTED = {
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "float_type": "expected a number",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def _describe(err: dict, model: type[BaseModel]) -> str:
    """A pydantic error as a message that says what the file should contain."""
    kind, loc, got = err["type"], tuple(err["loc"]), err.get("input")
    if kind == "extra_forbidden":
        parent = _annotation_at(model, loc[:-1])
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = ", ".join(f.alias or name for name, f in parent.model_fields.items())
            return f"unknown key '{loc[-1]}' (allowed: {allowed})"
        return f"unknown key '{loc[-1]}'"
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "literal_error":
        options = ", ".join(map(str, get_args(_annotation_at(model, loc))))
        return f"expected one of {options} (got {_show(got)})" if options else err["msg"]
    if kind == "string_pattern_mismatch":
        pattern = err["ctx"]["pattern"].strip("^$")
        return f"expected a name matching {pattern} (got {_show(got)})"
    if kind == "string_type" and isinstance(got, bool):
        # YAML 1.1 reads yes/no/on/off unquoted as booleans.
        return f"expected a string (got {_show(got)}; quote the value)"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]} (got {_show(got)})"
    return err["msg"]


def _annotation_at(model: type[BaseModel], loc: Loc) -> Any:
    """The schema type found at `loc` inside `model` (walking models, lists and dicts); None if lost."""
    annotation: Any = model
    for part in loc:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {(f.alias or name): f for name, f in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _without_none(annotation)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _validate(data: Any, problems: _Problems) -> tuple[CatalogSpec, list[TaskSpec]] | None:
    if data is None:
        if not problems.errors:  # an empty file, not a YAML syntax error
            problems.add_at(1, (), "the catalog is empty; expected a mapping with a 'tasks' list")
        return None
    if not isinstance(data, dict):
        problems.add((), f"expected a mapping with a 'tasks' list at the top level (got {_show(data)})")
        return None
    top = None
    try:
        top = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        problems.add_validation(exc, CatalogSpec)
    raw_tasks = data.get("tasks") if isinstance(data.get("tasks"), list) else []
    task_specs = []
    for index, raw in enumerate(raw_tasks):
        loc = ("tasks", index)
        try:
            spec = TaskSpec.model_validate(raw)
        except ValidationError as exc:
            problems.add_validation(exc, TaskSpec, loc)
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


def _check_unique(problems: _Problems, items: list, list_key: str, key: str) -> None:
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


def _base_of(spec: TaskSpec) -> str | None:
    if spec.base_task_type:
        return spec.base_task_type
    return spec.task_type if spec.task_type in BASE_FIELDS else None


def _declared_fields(spec: TaskSpec) -> dict[str, FieldSpec]:
    """Base fields with their overrides, then extra fields, by name in declaration order."""
    fields = {base.name: base for base in BASE_FIELDS.get(_base_of(spec), [])}
    for extra in spec.extra_fields:
        fields.setdefault(extra.name, extra)  # a clash is reported by _check_task
    for name, override in spec.field_overrides.items():
        if name in fields:
            fields[name] = fields[name].model_copy(update=override.model_dump(exclude_unset=True))
    return fields


def _check_task(spec: TaskSpec, problems: _Problems, loc: Loc) -> None:
    _check_runner(spec.runner, problems, loc + ("runner",))
    base = _base_of(spec)
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
    fields = _declared_fields(spec)
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


def _check_runner(runner: RunnerSpec, problems: _Problems, loc: Loc) -> None:
    target, where = runner.target, loc + ("target",)
    if runner.start_method == "command":
        if isinstance(target, list) and target and all(isinstance(part, str) for part in target):
            return
        if not isinstance(target, str):
            problems.add(where, f"expected a command string or a list of strings (got {_show(target)})")
            return
        try:
            if not shlex.split(target):
                problems.add(where, "the command is empty")
        except ValueError as exc:
            problems.add(where, f"cannot split the command: {exc}")
    elif not isinstance(target, str) or not target.strip():
        what = "a script path" if runner.start_method == "python_script" else "a module name"
        problems.add(where, f"expected {what} (got {_show(target)})")
    elif runner.start_method == "python_module" and not re.fullmatch(MODULE_PATTERN, target):
        problems.add(where, f"expected a dotted module name like package.module (got {_show(target)})")


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


def _check_field(spec: FieldSpec, problems: _Problems, loc: Loc) -> None:
    value_type = spec.value_type or "str"
    widget = _widget_of(spec)
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
                             f" for valueType {value_type} (got {_show(choice)})")
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
                     f" for valueType {value_type} (got {_show(default)})")
    elif widget == "select" and spec.choices and default not in spec.choices:
        options = ", ".join(str(choice) for choice in spec.choices)
        problems.add(loc + ("default",), f"default {_show(default)} is not one of the choices ({options})")
    elif value_type in ("int", "float") and spec.min is not None and default < spec.min:
        problems.add(loc + ("default",), f"default {default} is below min {spec.min}")
    elif value_type in ("int", "float") and spec.max is not None and default > spec.max:
        problems.add(loc + ("default",), f"default {default} is above max {spec.max}")


def _widget_of(spec: FieldSpec) -> str:
    return spec.type or ("boolean" if spec.value_type == "bool" else "text")


def _field_from_spec(spec: FieldSpec) -> Field:
    value_type = spec.value_type or "str"
    default = spec.default
    if value_type == "float" and default is not None:
        default = float(default)
    return Field(name=spec.name, label=spec.label or spec.name, value_type=value_type,
                 widget=_widget_of(spec), choices=list(spec.choices or []),
                 required=bool(spec.required), default=default, help=spec.help or "",
                 min=spec.min, max=spec.max)


_MLFLOW_DEFAULTS = {
    "classification": ("val_accuracy", "max", "classification-best-model", "model"),
    "segmentation": ("val_miou", "max", "segmentation-best-model", "model"),
}


def _build_task(spec: TaskSpec, catalog_dir: Path) -> Task:
    base = _base_of(spec)
    metric, mode, model_name, artifact_path = _MLFLOW_DEFAULTS.get(
        base, (None, "max", f"{spec.task_type}-model", "model"))
    m, r = spec.mlflow, spec.runner
    runner = Runner(
        start_method=r.start_method,
        target=list(r.target) if isinstance(r.target, list) else r.target,
        target_env_var=r.target_env_var, engine=r.engine, env=dict(r.env),
        slurm=r.slurm.model_dump(exclude_unset=True),
        cwd=catalog_dir / Path(r.cwd).expanduser() if r.cwd else None)
    return Task(
        task_type=spec.task_type, base_task_type=base, title=spec.title or spec.task_type,
        description=spec.description or "", enabled=spec.enabled, runner=runner,
        mlflow=MlflowDefaults(
            metric=m.metric if m.metric is not None else metric, mode=m.mode or mode,
            model_name=m.model_name or model_name, artifact_path=m.artifact_path or artifact_path),
        catalog_dir=catalog_dir,
        fields=[_field_from_spec(s) for s in _declared_fields(spec).values()],
        field_order=list(spec.field_order), hidden_fields=list(spec.hidden_fields))
