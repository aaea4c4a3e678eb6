"""One small chart per numeric progress key, over epochs (Sparklines: cheap, any size)."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from vtm_tui.core.formatting import format_number
from vtm_tui.core.runs.progress import numeric_metrics
from vtm_tui.ui.widgets.text_line import TextLine


def series_by_key(points: list[dict], latest: dict) -> dict[str, list[float]]:
    """{metric: values per epoch}, in the order keys first appear; the latest progress record
    stands in when no per-epoch point has been stored yet."""
    series: dict[str, list[float]] = {}
    for point in points or [latest]:
        for key, value in numeric_metrics(point).items():
            series.setdefault(key, []).append(value)
    return series


class MetricChart(Horizontal):
    """Name and latest value on the left, the sparkline beside them: one row is enough at
    80x24, and taller terminals get taller charts (and the min/max line)."""

    def __init__(self, key: str) -> None:
        super().__init__(classes="metric-chart")
        self.key = key

    def compose(self) -> ComposeResult:
        yield TextLine(self.key, classes="metric-label")
        yield Sparkline([], classes="metric-spark")

    def update_series(self, values: list[float]) -> None:
        low, high = min(values), max(values)
        label = Text.assemble((self.key, "bold"), " ", format_number(values[-1]),
                              (f"\nmin {format_number(low)}\nmax {format_number(high)}", "dim"))
        self.query_one(".metric-label", TextLine).update(label)
        self.query_one(Sparkline).data = values


class MetricCharts(Vertical):
    """Rebuilt only when the set of metrics changes; otherwise each chart just gets new data."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._keys: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("no metrics yet", classes="charts-empty")

    async def show(self, series: dict[str, list[float]]) -> None:
        keys = list(series)
        if keys != self._keys:
            self._keys = keys
            await self.remove_children()
            if keys:
                await self.mount_all(MetricChart(key) for key in keys)
            else:
                await self.mount(Static("no metrics yet", classes="charts-empty"))
        for chart in self.query(MetricChart):
            chart.update_series(series[chart.key])
