"""The one hierarchy of errors meant for the user, and the one place that turns any exception
into the text a user sees.

Every error whose message is written for the user is a `UserError`: the CLI prints it as one
line (`vtm: error: MESSAGE`) with no traceback and exits with its `exit_code`; the TUI shows
the same text and keeps running; a `--script` step fails with that code. This module sits
below `settings` and `core`, so all of them can raise these errors; it imports nothing of vtm.
"""
from __future__ import annotations

EXIT_FAILED, EXIT_USAGE = 1, 2


class UserError(Exception):
    """A problem the user can act on, with a message that says what to do.

    exit_code: 2 for usage and input errors (the default), 1 where an operation the input was
    fine for did not succeed (a server refused, no run qualified, a transfer broke)."""

    exit_code = EXIT_USAGE


class OperationFailed(UserError):
    """Well-formed input, but the work could not be done (exit code 1)."""

    exit_code = EXIT_FAILED


def error_text(exc: BaseException) -> str:
    """What a user sees of an exception: a UserError's own message; for anything unexpected,
    its type too, so a bug report says what broke."""
    if isinstance(exc, UserError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
