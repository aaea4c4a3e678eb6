"""A form field of a task, and how a typed-in value (a form entry, a `--set NAME=VALUE`) becomes
that field's value: coercion to its type, then its choices and bounds."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from vtm_tui.core.catalog.problems import FieldValueError, show_value

_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


@dataclass
class Field:
    """One form field of a task, as declared (built-in, overridden or extra).

    value_type: str, int, float, bool or path; widget: text, select or boolean; choices: the
    values a select offers; min/max: inclusive bounds of a number; default: the value an empty
    form entry gets (None: no value, left out of the command line)."""
    name: str
    label: str
    value_type: str  # str | int | float | bool | path
    widget: str  # text | select | boolean
    choices: list = dataclass_field(default_factory=list)
    required: bool = False
    default: Any = None
    help: str = ""
    min: int | float | None = None
    max: int | float | None = None

    def coerce(self, raw: Any) -> Any:
        """Turn a form / `--set` string (or an already typed value) into this field's value."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if self.required:
                raise self._error("a value is required")
            return None
        value = self._convert(raw)
        if self.widget == "select" and self.choices and value not in self.choices:
            options = ", ".join(str(choice) for choice in self.choices)
            raise self._error(f"must be one of {options} (got {show_value(value)})")
        if self.min is not None and value < self.min:
            raise self._error(f"must be >= {self.min} (got {show_value(value)})")
        if self.max is not None and value > self.max:
            raise self._error(f"must be <= {self.max} (got {show_value(value)})")
        return value

    def _convert(self, raw: Any) -> Any:
        if self.value_type == "bool":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word in _TRUE_WORDS or word in _FALSE_WORDS:
                return word in _TRUE_WORDS
            raise self._error(f"must be true or false (got {show_value(raw)})")
        if self.value_type == "int":
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
                return int(raw)
            raise self._error(f"must be an integer (got {show_value(raw)})")
        if self.value_type == "float":
            try:
                if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                    raise ValueError
                value = float(raw)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise self._error(f"must be a number (got {show_value(raw)})")
            return value
        if isinstance(raw, (list, dict)):
            raise self._error(f"must be text (got {show_value(raw)})")
        return str(raw).strip()

    def _error(self, message: str) -> FieldValueError:
        return FieldValueError(self.name, f"{self.name}: {message}")

