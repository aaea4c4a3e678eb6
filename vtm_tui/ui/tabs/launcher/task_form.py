"""The Launcher's form, built from one catalog task's fields.

Each field gets the control its catalog entry asks for (Input for str/int/float/path, Select,
Switch for booleans) and an error line right under it. Validation is the catalog's own
`Field.coerce`, so the form can never accept what `vtm launch --set` would refuse.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

if TYPE_CHECKING:
    from vtm_tui.core.catalog.loader import Field, Task


def control_id(name: str) -> str:
    return f"field-{name}"


class FieldRow(Vertical):
    """One field: label (`*` when required), its control, an inline error line."""

    def __init__(self, field: Field, value: Any) -> None:
        super().__init__(classes="field-row")
        self.field = field
        self._initial = value
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        label = self.field.label + (" *" if self.field.required else "")
        with Horizontal(classes="field-line"):
            yield Label(Text(label), classes="field-label")
            yield self._make_control(self._initial)
        yield Static("", classes="field-error")

    def _make_control(self, value: Any) -> Widget:
        field, cid = self.field, control_id(self.field.name)
        if field.widget == "boolean":
            return Switch(value=_as_bool(value), animate=False, id=cid, tooltip=field.help or None)
        if field.widget == "select":
            options = [(str(choice), choice) for choice in field.choices]
            selected = value if value in field.choices else Select.NULL
            # A required field without a value starts blank rather than silently on the first choice.
            allow_blank = not field.required or selected is Select.NULL
            return Select(options, value=selected, allow_blank=allow_blank, compact=True, id=cid,
                          tooltip=field.help or None)
        text = "" if value is None else str(value)
        return Input(text, placeholder=_placeholder(field), compact=True, id=cid,
                     tooltip=field.help or None)

    @property
    def control(self) -> Widget:
        return self.query_one(f"#{control_id(self.field.name)}")

    def raw_value(self) -> Any:
        control = self.control
        if isinstance(control, Switch):
            return control.value
        if isinstance(control, Select):
            return None if control.value is Select.NULL else control.value
        return control.value

    def validate(self) -> str | None:
        """Check the current value with the catalog's coercion; show and return the problem."""
        from vtm_tui.core.catalog import FieldValueError

        try:
            self.field.coerce(self.raw_value())
            error = None
        except FieldValueError as exc:
            error = exc.message.removeprefix(f"{self.field.name}: ")
        self.show_error(error)
        return error

    def show_error(self, error: str | None) -> None:
        self.error = error
        self.set_class(error is not None, "-invalid")
        self.query_one(".field-error", Static).update(Text(error or ""))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _revalidate(self, event) -> None:
        event.stop()
        self.validate()


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "on"}
    return bool(value)


def _placeholder(field: Field) -> str:
    hint = {"int": "integer", "float": "number", "path": "path", "str": "text"}.get(field.value_type, "")
    if field.min is not None and field.max is not None:
        hint += f" {field.min}..{field.max}"
    elif field.min is not None:
        hint += f" >= {field.min}"
    elif field.max is not None:
        hint += f" <= {field.max}"
    return hint + (" (required)" if field.required else "")


class TaskForm(VerticalScroll):
    """The fields of one task, in catalog order (fieldOrder first, hidden fields left out)."""

    can_focus = False  # tab goes straight to the first field; the form still scrolls to it

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shown_task: Task | None = None
        self._lock = asyncio.Lock()  # rebuilds must not interleave: rows reuse widget ids

    async def show(self, task: Task | None, values: Mapping[str, Any] | None = None) -> None:
        """Rebuild for `task`, starting from its defaults overlaid with `values`."""
        async with self._lock:
            self.shown_task = task
            await self.remove_children()
            if task is None:
                return
            values = values or {}
            fields = task.form_fields()
            if not fields:
                await self.mount(Static("This task has no fields.", classes="form-empty"))
                return
            await self.mount_all(FieldRow(field, values.get(field.name, field.default))
                                 for field in fields)
            self.scroll_home(animate=False)

    @property
    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def row(self, name: str) -> FieldRow | None:
        for row in self.rows:
            if row.field.name == name:
                return row
        return None

    def changed_values(self) -> dict[str, Any]:
        """Only what the user changed from the defaults: a draft that survives a catalog reload
        without pinning defaults the file may have changed meanwhile."""
        changed = {}
        for row in self.rows:
            value, default = row.raw_value(), row.field.default
            if isinstance(value, str) and not isinstance(default, str):
                same = value.strip() == ("" if default is None else str(default))
            else:
                same = value == default
            if not same:
                changed[row.field.name] = value
        return changed

    def values(self) -> dict[str, Any]:
        """What the user entered, as typed: launch() coerces it with the same rules."""
        return {row.field.name: row.raw_value() for row in self.rows}

    def validate(self) -> list[FieldRow]:
        """Every row with a bad value (each shows its message)."""
        return [row for row in self.rows if row.validate() is not None]

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        event.stop()
        self.screen.focus_next()  # enter walks down the form, like tab
