"""The catalog's schema (pydantic), in the original file format: keys are camelCase, unknown
keys are errors, YAML's own types are taken strictly. Also the built-in fields of the two base
task types, and the wording of a schema error as a message about the file."""
from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as SchemaField
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from vtm_tui.core.catalog.problems import Loc, show_value

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
    """fieldOverrides.<name>: what a task changes of a built-in or extra field; every key is
    optional (label, valueType, type, choices, required, default, help, min, max)."""
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
        raise PydanticCustomError("catalog", "expected a number (got {got})", {"got": show_value(value)})


class FieldSpec(FieldOverrideSpec):
    """extraFields[]: a field of the task's own, named like a command-line option (--name)."""
    name: str = SchemaField(pattern=FIELD_NAME_PATTERN)


class SlurmSpec(_Schema):
    """runner.slurm: sbatch options (partition, gres, time "HH:MM:SS", cpus, mem, extraArgs)."""
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
    """runner: how a task starts (startMethod python_script / python_module / command, target,
    targetEnvVar overriding the target), on which engine (local, slurm), with which extra
    environment and working directory (relative to the catalog)."""
    start_method: StartMethod
    target: Any  # str, or a list of str for `command`; checked together with startMethod
    target_env_var: str | None = SchemaField(None, pattern=ENV_VAR_PATTERN)
    engine: Literal["local", "slurm"] = "local"
    env: dict[str, str] = {}
    slurm: SlurmSpec = SlurmSpec()
    cwd: str | None = None


class MlflowSpec(_Schema):
    """mlflow: the metric and mode (max, min) that rank runs, the registered model name and the
    artifact path of the logged model (defaults come from the base task type), and what a launch
    does when the tracking server does not answer (onUnreachable: refuse | no-tracking)."""
    metric: str | None = None
    mode: Literal["max", "min"] | None = None
    model_name: str | None = None
    artifact_path: str | None = None
    on_unreachable: Literal["refuse", "no-tracking"] = "refuse"


class TaskSpec(_Schema):
    """tasks[]: one training task, in the original catalog format (camelCase keys)."""
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
    """registryModels[]: a registry model the Registry tab offers, with its default stage, version
    and download folder."""
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
    """The top level: `tasks` (each validated on its own) and `registryModels`."""
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


def describe_error(err: dict, model: type[BaseModel]) -> str:
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
        return f"expected one of {options} (got {show_value(got)})" if options else err["msg"]
    if kind == "string_pattern_mismatch":
        pattern = err["ctx"]["pattern"].strip("^$")
        return f"expected a name matching {pattern} (got {show_value(got)})"
    if kind == "string_type" and isinstance(got, bool):
        # YAML 1.1 reads yes/no/on/off unquoted as booleans.
        return f"expected a string (got {show_value(got)}; quote the value)"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]} (got {show_value(got)})"
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

