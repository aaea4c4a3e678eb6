"""A one-line history of a level on a fixed scale (GPU utilization and memory in percent).

Textual's Sparkline scales each picture to its data's own minimum and maximum
(textual/renderables/sparkline.py), so a GPU held at a steady 87% would draw as a flat line at the
bottom, exactly like an idle one; a level must be drawn against 0..100 to mean anything. One block
character per sample, newest on the right, as wide as the widget.
"""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

BARS = " ▁▂▃▄▅▆▇█"


def level_bars(values: Sequence[float | None], width: int, top: float = 100.0) -> str:
    """The last `width` values as block characters on 0..top (None: a gap, '·'), padded on the left."""
    cells = []
    for value in list(values)[-width:] if width > 0 else []:
        if value is None:
            cells.append("·")
            continue
        level = min(max(value / top, 0.0), 1.0)
        cells.append(BARS[max(1, round(level * (len(BARS) - 1)))])  # 0 still shows: a baseline
    return " " * (max(width, 0) - len(cells)) + "".join(cells)


class LevelSpark(Widget):
    DEFAULT_CSS = """
    LevelSpark {
        height: 1;
        width: 1fr;
        color: $success;
    }
    """

    values: reactive[tuple] = reactive(tuple, layout=False)

    def __init__(self, top: float = 100.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.top = top

    def render(self) -> Text:
        return Text(level_bars(self.values, self.size.width, self.top), no_wrap=True)
