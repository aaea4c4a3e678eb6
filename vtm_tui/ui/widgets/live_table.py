"""A table of rows that keep coming back: runs, MLflow runs, model servers, read again and again.

Each row has a key (a run id, a server id). When the same keys come back in the same order, only
the cells that changed are updated, so the cursor and the scroll stay put and a poll costs next to
nothing; when a row comes, goes or moves, the table is rebuilt and the cursor is put back on the
row it should be on.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.widgets import DataTable


class LiveTable(DataTable):
    def __init__(self, columns: Sequence[tuple[str, str]] = (), **kwargs) -> None:
        """columns: (key, label) of each column, in order."""
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._row_keys: list[str] = []
        self._row_cells: dict[str, Sequence] = {}
        for key, label in columns:
            self.add_column(label, key=key)

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
        return super().clear(columns)

    def show_rows(self, rows: Mapping[str, Sequence], keep: str | None = None) -> bool:
        """Show `rows` (key -> cells, in order). The same keys as last time: only the changed cells
        are updated. Other keys: the table is rebuilt and the cursor put on `keep` when that row
        is there (else it is on the first row). True when the table was rebuilt."""
        keys = list(rows)
        rebuilt = keys != self._row_keys
        if rebuilt:
            self.clear()
            for key in keys:
                self.add_row(*rows[key], key=key)
            if keep in rows:
                self.move_cursor(row=keys.index(keep), animate=False)
        else:
            columns = [column.key for column in self.ordered_columns]
            for key in keys:  # same keys: every row was here last time
                for column, old, new in zip(columns, self._row_cells[key], rows[key], strict=True):
                    if old != new:
                        self.update_cell(key, column, new, update_width=True)
        self._row_keys, self._row_cells = keys, dict(rows)
        return rebuilt

    def move_to(self, key: str) -> bool:
        """Put the cursor on the row with this key; False when there is none."""
        if key not in self._row_keys:
            return False
        self.move_cursor(row=self._row_keys.index(key), animate=False)
        return True
