"""Errors that are the user's to fix: the CLI prints them in one line and exits 2."""


class UserError(Exception):
    """A usage or input problem with a message that says what to do."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type whose message is meant for the user as is (no traceback)."""
    from vtm_tui.core.catalog import CatalogErrors, FieldValueErrors, UnknownTask
    from vtm_tui.core.runs import RunNotFound

    return (UserError, CatalogErrors, FieldValueErrors, UnknownTask, RunNotFound)
