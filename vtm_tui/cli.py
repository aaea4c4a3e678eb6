"""Entry point `vtm`: the TUI with no arguments, subcommands and `--script` headless.

Heavy modules (mlflow, torch, tensorboard, textual) are imported inside the commands that need
them, so `vtm --help` starts instantly. Command groups live in `vtm_tui.commands`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vtm_tui.commands import catalog, ftp, mlflow, registry, run_reporting_user_errors, runs, serve, tensorboard, web
from vtm_tui.settings import Settings

COMMAND_GROUPS = (runs, catalog, mlflow, tensorboard, registry, ftp, serve, web)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vtm", description="Void Train Manager: launch, watch, track, register and serve "
        "training runs. With no command, opens the terminal UI.")
    parser.add_argument("--script", metavar="FILE", help="run the steps of a YAML script headless")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def run_script(path: str, settings: Settings) -> int:
    from vtm_tui.script.runner import run_script as run_steps

    return run_steps(settings, Path(path))


def run_tui(settings: Settings) -> int:
    from vtm_tui.ui.app import run_app

    return run_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.script and args.command:
        parser.error("--script cannot be combined with a command")

    def dispatch() -> int:
        settings = Settings.load()
        if args.script:
            return run_script(args.script, settings)
        if not args.command:
            return run_tui(settings)
        return args.handler(args, settings)

    return run_reporting_user_errors("vtm", dispatch)


if __name__ == "__main__":
    sys.exit(main())
