"""What goes wrong in a catalog, and where: the errors, and the collector that knows the line
of every key so each problem reads `file:line: key: message`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from vtm_tui.errors import UserError

Loc = tuple[Union[str, int], ...]  # a key path in the file: ("tasks", 0, "runner", "target")


class CatalogError(Exception):
    """One problem in a catalog file, pointing at the line and key to fix."""

    def __init__(self, path: Path, line: int | None, key: str, message: str):
        super().__init__(message)
        self.path, self.line, self.key, self.message = Path(path), line, key, message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class CatalogErrors(UserError):
    """Every problem found in one catalog file, in file order."""

    def __init__(self, errors: list[CatalogError]):
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(map(str, self.errors))


class FieldValueError(ValueError):
    """A form value that does not fit its field; the message is shown to the user as is."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class FieldValueErrors(UserError, ValueError):
    """All bad values of one form, so the user fixes them in one go."""

    def __init__(self, errors: list[FieldValueError]):
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(e.message for e in self.errors)


class UnknownTask(UserError, LookupError):
    """A task type the catalog does not declare (the message lists the known ones)."""
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""




def show_value(value: Any) -> str:
    """A short rendering of a value for '(got ...)' in messages, in YAML spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def dotted_key(loc: Loc) -> str:
    """("tasks", 0, "runner") -> "tasks[0].runner", the way messages name a key."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


class Problems:
    """Collects CatalogErrors; knows the line of every key and list item in the file."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: dict[Loc, int] = {}
        self.errors: list[CatalogError] = []

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc` in the file; a missing key has no line of its own, so the
        nearest enclosing mapping's line (None when nothing of the path has a line)."""
        # A missing key has no line of its own: point at the mapping that lacks it.
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def add(self, loc: Loc, message: str) -> None:
        """Record a problem at `loc` (its line looked up)."""
        self.errors.append(CatalogError(self.path, self.line_of(loc), dotted_key(loc), message))

    def add_at(self, line: int | None, loc: Loc, message: str) -> None:
        """Record a problem at an explicit line (YAML errors, duplicate keys)."""
        self.errors.append(CatalogError(self.path, line, dotted_key(loc), message))
