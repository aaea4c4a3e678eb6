"""Headless command groups. Each module has `register(subparsers)`, which adds its parsers and
sets `handler(args, settings) -> exit code`; heavy imports happen inside the handlers."""
from __future__ import annotations

import errno
import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)


def run_reporting_user_errors(prog: str, call) -> int:
    """call() -> exit code; a UserError prints one line (`PROG: error: MESSAGE`) and exits with
    its exit_code (2 for usage and input errors), never a traceback. So does a full disk, a disk
    I/O error or a read-only filesystem met anywhere (exit code 1)."""
    from vtm_tui.errors import EXIT_FAILED, UserError

    try:
        return call()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{prog}: error: {(exc.strerror or str(exc)).lower()}{where}", file=sys.stderr)
        return EXIT_FAILED
