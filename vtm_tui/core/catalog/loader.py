"""catalog.yaml: which training tasks exist, the form each one shows, and how a
filled-in form becomes a command line.

The file format is the original Void Train Manager's training_catalog.yaml,
unchanged. Loading validates everything up front and reports every problem at
once as `file:line: key: message`, so a broken catalog is fixed in one pass
rather than one crash at a time: YAML with line numbers (yaml_lines.py) ->
schema (schema.py) -> cross-field checks (checks.py) -> Catalog (tasks.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from vtm_tui.core.catalog.checks import base_of, declared_fields, validate, widget_of
from vtm_tui.core.catalog.fields import Field
from vtm_tui.core.catalog.problems import CatalogError, CatalogErrors, Problems
from vtm_tui.core.catalog.schema import FieldSpec, TaskSpec
from vtm_tui.core.catalog.tasks import Catalog, MlflowDefaults, RegistryModel, Runner, Task
from vtm_tui.core.catalog.yaml_lines import compose


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog.yaml into a Catalog.

    Every problem of the file is found in one pass and raised together as CatalogErrors
    (`file:line: key: message` each, in file order), including a missing or unreadable file.
    Relative paths in it (runner.cwd, python_script targets) are relative to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogErrors([CatalogError(
            path, None, "", "file not found; set TRAINING_CATALOG_PATH or create it")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogErrors([CatalogError(path, None, "", f"cannot read the file: {exc}")]) from None
    problems = Problems(path)
    data = compose(text, problems)
    specs = validate(data, problems)
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


def _field_from_spec(spec: FieldSpec) -> Field:
    value_type = spec.value_type or "str"
    default = spec.default
    if value_type == "float" and default is not None:
        default = float(default)
    return Field(name=spec.name, label=spec.label or spec.name, value_type=value_type,
                 widget=widget_of(spec), choices=list(spec.choices or []),
                 required=bool(spec.required), default=default, help=spec.help or "",
                 min=spec.min, max=spec.max)


_MLFLOW_DEFAULTS = {
    "classification": ("val_accuracy", "max", "classification-best-model", "model"),
    "segmentation": ("val_miou", "max", "segmentation-best-model", "model"),
}


def _build_task(spec: TaskSpec, catalog_dir: Path) -> Task:
    base = base_of(spec)
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
            model_name=m.model_name or model_name, artifact_path=m.artifact_path or artifact_path,
            on_unreachable=m.on_unreachable),
        catalog_dir=catalog_dir,
        fields=[_field_from_spec(s) for s in declared_fields(spec).values()],
        field_order=list(spec.field_order), hidden_fields=list(spec.hidden_fields))
