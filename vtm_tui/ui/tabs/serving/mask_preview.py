"""A segmentation mask drawn in the terminal: one block per cell of the result's preview grid,
in the class colours of `core.predict.PALETTE` (the same as the PNG mask on disk)."""
from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from vtm_tui.core.serving.predict_io import PALETTE


def class_colour(index: int) -> Color:
    return Color.from_rgb(*PALETTE[index % len(PALETTE)])


def preview_text(grid: list[list[int]], height: int) -> Text:
    """One full block per cell when `height` rows fit the grid (terminal cells are about twice
    as tall as wide, and the grid is sampled for that); else two cells per character with half
    blocks, squashed but whole."""
    text = Text(no_wrap=True, overflow="crop")
    if not grid:
        return text
    if len(grid) <= height:
        for row in grid:
            for value in row:
                text.append("█", Style(color=class_colour(value)))
            text.append("\n")
    else:
        for top, bottom in zip(grid[0::2], grid[1::2] + [None] * (len(grid) % 2), strict=True):
            for column, value in enumerate(top):
                below = bottom[column] if bottom is not None else None
                style = Style(color=class_colour(value),
                              bgcolor=class_colour(below) if below is not None else None)
                text.append("▀", style)
            text.append("\n")
    text.rstrip()
    return text


class MaskPreview(Widget):
    DEFAULT_CSS = """
    MaskPreview {
        width: 24;
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._grid: list[list[int]] = []

    @property
    def grid(self) -> list[list[int]]:
        return self._grid

    def show(self, grid: list[list[int]] | None) -> None:
        self._grid = [list(row) for row in grid or []]
        self.refresh()

    def render(self) -> Text:
        return preview_text(self._grid, self.size.height)
