"""Metric-history charts of MLflow runs: one chart per metric, one coloured line per run.

Drawn with braille dots (2x4 per cell) by a small pure function, not a plotting library: the
lines of several runs share one scale, so runs can be compared, and the picture depends only on
the data and the size (stable snapshots, no global plotting state across threads). The card
(`HistoryCharts`) fetches the histories it lacks in a worker of its own, once the cursor rests.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

from vtm_tui.core.formatting import format_number
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.tabs.mlflow_ops.tracking_link import TrackingFailed, TrackingLink

if TYPE_CHECKING:
    from vtm_tui.core.tracking.client import RunInfo

# One colour per compared run, in marking order; fixed hex values so pictures match everywhere.
PALETTE = ("#4FC1FF", "#F28FAD", "#A6E3A1", "#F9E2AF", "#CBA6F7", "#FAB387", "#94E2D5", "#EBA0AC")
MAX_SERIES = len(PALETTE)
CHART_DELAY = 0.15  # seconds; scrolling through the table fetches only where the cursor rests
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][column] of a braille cell


@dataclass(frozen=True)
class Series:
    """One run's history of one metric: (step, value) points in step order."""
    label: str
    points: tuple[tuple[float, float], ...]
    color: str


def _finite(series: Sequence[Series]) -> list[list[tuple[float, float]]]:
    return [[(x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y)] for s in series]


def _line(x0: int, y0: int, x1: int, y1: int):
    """Bresenham: every dot from (x0, y0) to (x1, y1)."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        yield x0, y0
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def render_lines(series: Sequence[Series], width: int, height: int) -> list[Text]:
    """`height` lines of `width` cells: y labels on the left, the plot, a step axis below.

    Every series shares the x (step) and y ranges; where two runs cross one cell, the dots of
    both stay and the later run's colour wins."""
    width, height = max(width, 12), max(height, 3)
    clean = _finite(series)
    values = [p for points in clean for p in points]
    if not values:
        return [Text("no points", style="dim")] + [Text("")] * (height - 1)
    xs, ys = [x for x, _ in values], [y for _, y in values]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    top, bottom = format_number(y_hi), format_number(y_lo)
    gutter = max(len(top), len(bottom)) + 1
    rows, cols = height - 1, width - gutter
    px_w, px_h = cols * 2, rows * 4
    cells: dict[tuple[int, int], list] = {}

    def to_px(x: float, y: float) -> tuple[int, int]:
        fx = 0.0 if x_hi == x_lo else (x - x_lo) / (x_hi - x_lo)
        fy = (y - y_lo) / (y_hi - y_lo)
        return round(fx * (px_w - 1)), round((1 - fy) * (px_h - 1))

    for s, points in zip(series, clean, strict=True):
        pixels = [to_px(x, y) for x, y in points]
        dots = list(_line(*pixels[0], *pixels[0])) if len(pixels) == 1 else [
            dot for a, b in pairwise(pixels) for dot in _line(*a, *b)]
        for px, py in dots:
            cell = cells.setdefault((py // 4, px // 2), [0, s.color])
            cell[0] |= _DOT[py % 4][px % 2]
            cell[1] = s.color
    lines = []
    for row in range(rows):
        label = top if row == 0 else bottom if row == rows - 1 else ""
        line = Text(label.rjust(gutter - 1) + ("┤" if label else "│"), style="dim")
        for col in range(cols):
            cell = cells.get((row, col))
            if cell is None:
                line.append(" ")
            else:
                line.append(chr(0x2800 + cell[0]), style=cell[1])
        lines.append(line)
    left, right = f"step {format_number(x_lo)}", format_number(x_hi)
    axis = " " * gutter + left + right.rjust(max(cols - len(left), len(right) + 1))
    lines.append(Text(axis, style="dim"))
    return lines


def legend(key: str, series: Sequence[Series]) -> Text:
    """The chart's title line: the metric, then each run's colour, label and latest value."""
    text = Text(key, style="bold")
    for s in series:
        last = s.points[-1][1] if s.points else None
        text.append("  ● ", style=s.color)
        text.append(f"{s.label} {format_number(last)}")
    return text


class HistoryPlot(Widget):
    """One metric: its legend line, then the lines of every charted run."""

    DEFAULT_CSS = """
    HistoryPlot {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, key: str, series: Sequence[Series], **kwargs) -> None:
        super().__init__(classes="history-plot", **kwargs)
        self.key = key
        self.series = list(series)

    def render(self) -> Text:
        width, height = self.content_size
        title = legend(self.key, self.series)
        title.truncate(width, overflow="ellipsis")
        return Text("\n").join([title, *render_lines(self.series, width, height - 1)])


class HistoryCharts(VerticalScroll):
    """One HistoryPlot per metric; rebuilt whenever what is charted changes. Histories are
    fetched once and kept (`forget` drops them: a refresh, an import)."""

    @dataclass
    class HistoriesLoaded(Message):
        histories: dict[tuple[str, str], list[tuple[float, float]]]

    def __init__(self, link: TrackingLink, **kwargs) -> None:
        super().__init__(**kwargs)
        self.link = link
        self.charted: dict[str, list[Series]] = {}
        self._histories: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (run id, metric) -> points
        self._runs: list[tuple[RunInfo, str]] = []  # what to chart: (run, colour)
        self._keys: list[str] = []
        self._marked = False
        self._draw_pending = False

    def compose(self) -> ComposeResult:
        yield Static("Select a run to chart its metrics; mark runs with space to compare them.",
                     classes="charts-empty")

    async def show(self, charted: dict[str, list[Series]], empty: str = "") -> None:
        self.charted = charted
        await self.remove_children()
        if charted:
            await self.mount_all(HistoryPlot(key, series) for key, series in charted.items())
        else:
            await self.mount(Static(empty or "no metric history", classes="charts-empty"))

    def chart(self, runs: list[tuple[RunInfo, str]], keys: list[str], marked: bool) -> None:
        """Chart these runs' (run, colour) histories of these metrics: fetch the missing ones,
        then draw. marked: the runs are the marked ones (else the highlighted one)."""
        self._runs, self._keys, self._marked = runs, keys, marked
        missing = [(run.run_id, key) for run, _ in runs for key in keys
                   if key in run.metrics and (run.run_id, key) not in self._histories]
        if missing:
            self._fetch(missing)
        else:
            self._schedule_draw()

    def forget(self) -> None:
        self._histories.clear()

    @work(thread=True, exclusive=True, group="mlops-history")
    def _fetch(self, wanted: list[tuple[str, str]]) -> None:
        if not pause(CHART_DELAY):
            return
        found, worker = {}, get_current_worker()
        try:
            tracking = self.link.get()
            for run_id, key in wanted:
                if worker.is_cancelled:
                    return
                found[(run_id, key)] = [(p.step, p.value) for p in tracking.metric_history(run_id, key)]
        except Exception as exc:
            self.post_message(self.link.failed("history", exc))
            return
        self.post_message(self.HistoriesLoaded(found))

    def on_history_charts_histories_loaded(self, message: HistoriesLoaded) -> None:
        message.stop()
        self._histories.update(message.histories)
        self._schedule_draw()

    def on_tracking_failed(self, message: TrackingFailed) -> None:
        self.call_later(self.show, {}, message.error)  # and on to the tab

    def _schedule_draw(self) -> None:
        if not self._draw_pending:  # one redraw for a burst of marks and highlights
            self._draw_pending = True
            self.call_later(self._draw)

    async def _draw(self) -> None:
        self._draw_pending = False
        series: dict[str, list[Series]] = {}
        for key in self._keys:
            lines = [Series(run.name or run.run_id[:8], tuple(self._histories[(run.run_id, key)]), color)
                     for run, color in self._runs if (run.run_id, key) in self._histories]
            if lines:
                series[key] = lines
        self.border_title = ("Metric history · " + (f"{len(self._runs)} marked runs" if self._marked
                             else "highlighted run (space marks runs)"))
        if series != self.charted or not self.children:
            await self.show(series, "no metrics logged" if self._runs else "no run selected")
