"""The progress card of the selected run: title, progress bar, facts, metric charts."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar

from vtm_tui.core.formatting import format_duration, format_epoch
from vtm_tui.core.runs.gpu_queue import run_request
from vtm_tui.core.runs.progress import fraction_done
from vtm_tui.core.runs.store import RunRecord
from vtm_tui.ui.status_styles import RUN
from vtm_tui.ui.tabs.runs.metric_chart import MetricCharts, series_by_key, system_series
from vtm_tui.ui.widgets.text_line import TextLine


def status_text(run: RunRecord) -> Text:
    if run.active and run.cancel_requested:
        return RUN.text("cancelling")
    return RUN.text(run.status)


def run_duration(run: RunRecord, now: float) -> float | None:
    """Like RunRecord.duration, but against the app's clock (pinned in screenshots)."""
    if run.started_at is None:
        return None
    return (run.ended_at or now) - run.started_at


class RunDetail(Vertical):
    def compose(self) -> ComposeResult:
        yield TextLine(id="run-title")
        yield ProgressBar(total=100, show_eta=False, id="run-bar")
        yield TextLine(id="run-facts")
        yield MetricCharts(id="run-charts")

    def show_run(self, run: RunRecord, now: float) -> None:
        title = Text.assemble((f"Run {run.id}", "bold"), "  ", run.task, "  ", status_text(run))
        if run.engine != "local":  # e.g. slurm: where the job is, as the scheduler says
            job = " ".join(str(part) for part in (run.job_id, run.job_state, run.node) if part)
            title.append(f"  {run.engine} {job}".rstrip(), "dim")
        elif run.gpus is not None:
            title.append(f"  gpus {run.gpus or 'cpu'}", "dim")
        self.query_one("#run-title", TextLine).update(title)
        done = fraction_done(run.progress)
        if done is None and run.status == "succeeded":
            done = 1.0
        # Never an indeterminate bar: it animates forever (CPU over SSH, unstable screenshots).
        self.query_one("#run-bar", ProgressBar).update(total=100, progress=round((done or 0) * 100, 1))
        facts = Text.assemble(
            "epoch ", format_epoch(run.progress), "  ·  ", format_duration(run_duration(run, now)))
        if run.exit_code is not None:
            facts.append(f"  ·  exit {run.exit_code}")
        facts.append("\nMLflow ")
        facts.append(run.mlflow_run_id or "-", "cyan" if run.mlflow_run_id else "dim")
        if run.status == "queued" and run.gpu_request:
            asked = run_request(run)
            facts.append(f"\nwaits in the GPU queue for {asked.describe() if asked else run.gpu_request}"
                         f"{f', priority {run.priority}' if run.priority else ''}; h: its place and why", "yellow")
        if run.message and run.status != "succeeded":
            facts.append("\n" + run.message, "red")
        self.query_one("#run-facts", TextLine).update(facts)

    async def show_points(self, run: RunRecord, points: list[dict], system: list[dict] | None = None) -> None:
        await self.query_one(MetricCharts).show(series_by_key(points, run.progress), system_series(system or []))
