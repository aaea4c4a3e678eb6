"""Headless command groups. Each module has `register(subparsers)`, which adds its parsers and
sets `handler(args, settings) -> exit code`; heavy imports happen inside the handlers."""
from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def run_reporting_user_errors(prog: str, call) -> int:
    """call() -> exit code; a UserError prints one line (`PROG: error: MESSAGE`) and exits with
    its exit_code (2 for usage and input errors), never a traceback."""
    from vtm_tui.errors import UserError

    try:
        return call()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
