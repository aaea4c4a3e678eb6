"""Headless command groups. Each module has `register(subparsers)`, which adds its parsers and
sets `handler(args, settings) -> exit code`; heavy imports happen inside the handlers."""
from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def run_reporting_user_errors(prog: str, call) -> int:
    """call() -> exit code; a user mistake prints one line and exits 2, never a traceback."""
    from vtm_tui.core.errors import user_error_types

    try:
        return call()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, user_error_types()):
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
