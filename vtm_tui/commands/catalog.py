"""`vtm catalog check|tasks`."""
from __future__ import annotations

from pathlib import Path

from vtm_tui.commands import EXIT_OK
from vtm_tui.settings import Settings


def cmd_catalog(args, settings: Settings) -> int:
    from vtm_tui.core.catalog import load_catalog

    path = Path(args.path) if getattr(args, "path", None) else settings.catalog_path
    catalog = load_catalog(path)
    if args.catalog_action == "tasks":
        for task in catalog.tasks:
            state = "" if task.enabled else " (disabled)"
            print(f"{task.task_type:<20} {task.title}{state}")
        return EXIT_OK
    print(f"{path}: OK ({len(catalog.tasks)} tasks, {len(catalog.registry_models)} registry models)")
    return EXIT_OK


def register(sub) -> None:
    catalog = sub.add_parser("catalog", help="check or list the training catalog")
    catalog_sub = catalog.add_subparsers(dest="catalog_action", metavar="ACTION", required=True)
    check = catalog_sub.add_parser("check", help="validate a catalog; exit 2 on any error")
    check.add_argument("path", nargs="?", help="catalog file (default: TRAINING_CATALOG_PATH or ./catalog.yaml)")
    tasks = catalog_sub.add_parser("tasks", help="list the catalog's tasks")
    tasks.add_argument("path", nargs="?")
    catalog.set_defaults(handler=cmd_catalog)
