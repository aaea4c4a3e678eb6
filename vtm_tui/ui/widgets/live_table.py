"""A table of rows that keep coming back: runs, MLflow runs, model servers, read again and again.

Each row has a key (a run id, a server id). When the same keys come back in the same order, only
the cells that changed are updated, so the cursor and the scroll stay put and a poll costs next to
nothing; when a row comes, goes or moves, the table is rebuilt and the cursor is put back on the
row it should be on.

Columns keep the width of what they hold, and the table shows only the columns that fit its
width whole: a column that would be cut at the edge (a number shown as its first digits, a
header cut short) is left out instead, the least important first (`priorities`: higher numbers
give way first; equal ones from the right). `hidden_columns` names what a wider terminal shows.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def _width(value) -> int:
    if isinstance(value, Text):
        return value.cell_len
    return cell_len(str(value))


class LiveTable(DataTable):
    def __init__(self, columns: Sequence[tuple[str, str]] = (), priorities: Mapping[str, int] | None = None,
                 **kwargs) -> None:
        """columns: (key, label) of each column, in order; priorities: column key -> rank
        (higher gives way first when the table is too narrow; missing: 0)."""
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._row_keys: list[str] = []
        self._row_cells: dict[str, Sequence] = {}
        self._rows: dict[str, Sequence] = {}  # every column's cells, as last shown
        self._keep: str | None = None
        self.set_columns(columns, priorities)

    def set_columns(self, columns: Sequence[tuple[str, object]], priorities: Mapping[str, int] | None = None,
                    widths: Mapping[str, int] | None = None) -> None:
        """Every column the rows hold: (key, label), in order; widths: fixed widths (the others
        take what they hold). The next show_rows picks the ones that fit."""
        self._columns = list(columns)
        self._priorities = dict(priorities or {})
        self._fixed = dict(widths or {})
        self._shown_columns: list[str] | None = None  # None: the table's columns are stale
        self.hidden_columns: list[str] = []

    @property
    def keys(self) -> list[str]:
        """The rows' keys, top to bottom."""
        return list(self._row_keys)

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor; None when the table is empty."""
        row = self.cursor_row
        return self._row_keys[row] if 0 <= row < len(self._row_keys) else None

    def clear(self, columns: bool = False):
        self._row_keys, self._row_cells = [], {}
        if columns:
            self._shown_columns = None
        return super().clear(columns)

    def _fitting(self, rows: Mapping[str, Sequence]) -> list[str]:
        """The keys of the columns to show: all of them when they fit the table's width (or it
        has none yet), else without the ones that give way first."""
        keys = [key for key, _ in self._columns]
        available = self.scrollable_content_region.width
        if not available:
            return keys
        pad = 2 * self.cell_padding
        need = {}
        for index, (key, label) in enumerate(self._columns):
            widest = max((_width(cells[index]) for cells in rows.values()), default=0)
            need[key] = self._fixed.get(key, max(_width(label), widest)) + pad
        shown = list(keys)
        by_rank = sorted(range(len(keys)), key=lambda i: (self._priorities.get(keys[i], 0), i), reverse=True)
        for index in by_rank:
            if sum(need[key] for key in shown) <= available or len(shown) == 1:
                break
            shown.remove(keys[index])
        return shown

    def show_rows(self, rows: Mapping[str, Sequence], keep: str | None = None) -> bool:
        """Show `rows` (key -> cells of every column, in order). The same keys and columns as
        last time: only the changed cells are updated. Otherwise the table is rebuilt and the
        cursor put on `keep` when that row is there (else it is on the first row). True when the
        table was rebuilt."""
        self._rows, self._keep = dict(rows), keep
        shown = self._fitting(rows)
        if shown != self._shown_columns:
            super().clear(columns=True)
            self._row_keys, self._row_cells = [], {}
            labels = dict(self._columns)
            for key in shown:
                self.add_column(labels[key], key=key, width=self._fixed.get(key))
            self._shown_columns = shown
            self.hidden_columns = [key for key, _ in self._columns if key not in shown]
        index = {key: i for i, (key, _) in enumerate(self._columns)}
        picked = {row: [cells[index[key]] for key in shown] for row, cells in rows.items()}
        keys = list(picked)
        rebuilt = keys != self._row_keys
        if rebuilt:
            super().clear()
            for key in keys:
                self.add_row(*picked[key], key=key)
            if keep in picked:
                self.move_cursor(row=keys.index(keep), animate=False)
        else:
            for key in keys:  # same keys: every row was here last time
                for column, old, new in zip(shown, self._row_cells[key], picked[key], strict=True):
                    if old != new:
                        self.update_cell(key, column, new, update_width=True)
        self._row_keys, self._row_cells = keys, picked
        return rebuilt

    def on_resize(self) -> None:
        if self._rows or self._shown_columns is not None:
            self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        if self._fitting(self._rows) != self._shown_columns:
            self.show_rows(self._rows, keep=self.current_key or self._keep)

    def move_to(self, key: str) -> bool:
        """Put the cursor on the row with this key; False when there is none."""
        if key not in self._row_keys:
            return False
        self.move_cursor(row=self._row_keys.index(key), animate=False)
        return True

    def update_cell(self, row_key, column_key, value, *, update_width: bool = False):
        """DataTable.update_cell for a column that is shown; nothing for a hidden one."""
        if self._shown_columns is not None and str(getattr(column_key, "value", column_key)) not in self._shown_columns:
            return
        return super().update_cell(row_key, column_key, value, update_width=update_width)
