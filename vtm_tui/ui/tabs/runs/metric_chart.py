"""One small chart per numeric progress key, over epochs (Sparklines: cheap, any size)."""
from __future__ import annotations

import re

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


def system_label(name: str) -> str:
    """A short chart label for an MLflow system-metric name: system/process_cpu_utilization_percentage
    -> 'cpu %', system/process_memory_rss_megabytes -> 'rss MB', system/gpu_0_utilization_percentage
    -> 'gpu0 util %', system/gpu_0_memory_usage_megabytes -> 'gpu0 mem MB'; others: the name
    without system/."""
    short = SYSTEM_LABELS.get(name)
    if short:
        return short
    match = re.fullmatch(r"system/gpu_(\d+)_(\w+)", name)
    if match and match.group(2) in GPU_LABELS:
        return f"gpu{match.group(1)} {GPU_LABELS[match.group(2)]}"
    return name.removeprefix("system/")


SYSTEM_LABELS = {"system/process_cpu_utilization_percentage": "cpu %",
                 "system/process_memory_rss_megabytes": "rss MB"}
GPU_LABELS = {"utilization_percentage": "util %", "memory_usage_megabytes": "mem MB", "power_usage_watts": "W"}


def system_series(samples: list[dict]) -> dict[str, list[float]]:
    """{system metric name: values over time} of the run's own share (its process tree, its
    GPUs), from the store's samples, oldest first; the host-wide figures are left to the host view."""
    series: dict[str, list[float]] = {}
    for sample in samples:
        for key, value in sample.items():
            if key in SYSTEM_LABELS or (key.startswith("system/gpu_") and system_label(key) != key[7:]):
                series.setdefault(key, []).append(value)
    return series


class MetricChart(Horizontal):
    """Name and latest value on the left, the sparkline beside them: one row is enough at
    80x24, and taller terminals get taller charts (and the min/max line)."""

    def __init__(self, key: str, label: str | None = None) -> None:
        super().__init__(classes="metric-chart")
        self.key, self.label = key, label or key

    def compose(self) -> ComposeResult:
        yield TextLine(self.label, classes="metric-label")
        yield Sparkline([], classes="metric-spark")

    def update_series(self, values: list[float]) -> None:
        low, high = min(values), max(values)
        label = Text.assemble((self.label, "bold"), " ", format_number(values[-1]),
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

    async def show(self, series: dict[str, list[float]], system: dict[str, list[float]] | None = None) -> None:
        """Chart the training metrics (`series`: {key: values per epoch}), then the "system"
        group (`system`: {MLflow system metric name: values over time}, see system_series)."""
        system = system or {}
        keys = [*series, *system]
        if keys != self._keys:
            self._keys = keys
            await self.remove_children()
            if keys:
                await self.mount_all(MetricChart(key) for key in series)
                if system:
                    await self.mount(TextLine(Text("system", "bold dim"), classes="chart-group"))
                    await self.mount_all(MetricChart(key, system_label(key)) for key in system)
            else:
                await self.mount(Static("no metrics yet", classes="charts-empty"))
        values = {**series, **system}
        for chart in self.query(MetricChart):
            chart.update_series(values[chart.key])
