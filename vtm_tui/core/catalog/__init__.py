"""The training catalog (catalog.yaml): which tasks exist, the form each one shows, how its
values become a command line; and the registry models the Registry tab offers.

    from vtm_tui.core.catalog import load_catalog

    catalog = load_catalog(settings.catalog_path)     # CatalogErrors: every problem, file:line: key
    task = catalog.task("classification")             # UnknownTask
    values = task.resolve_values({"epochs": "3"})     # FieldValueErrors: every bad value
    argv = task.build_argv(values)                    # [python, -u, script, --epochs, 3, ...]

Modules: problems (errors, the line-aware collector), yaml_lines (YAML with line numbers),
schema (pydantic), checks (cross-field checks), fields (Field and value coercion), tasks
(Catalog, Task, Runner, ... dataclasses), loader (load_catalog).
"""
from __future__ import annotations

from vtm_tui.core.catalog.fields import Field
from vtm_tui.core.catalog.loader import load_catalog
from vtm_tui.core.catalog.problems import CatalogError, CatalogErrors, FieldValueError, FieldValueErrors, UnknownTask
from vtm_tui.core.catalog.tasks import Catalog, MlflowDefaults, RegistryModel, Runner, Task

__all__ = [
    "Catalog", "CatalogError", "CatalogErrors", "Field", "FieldValueError", "FieldValueErrors", "MlflowDefaults",
    "RegistryModel", "Runner", "Task", "UnknownTask", "load_catalog",
]
