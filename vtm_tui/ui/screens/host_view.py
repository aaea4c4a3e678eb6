"""The host view (key h from any tab): every GPU's live utilization and memory, who holds it (a
vtm run or another process), the host's CPU and memory, and the GPU queue with each waiting run's
place and what it waits for. Usable at 80x24: one title line, two spark lines and one line of
processes per GPU (the GPUs scroll), the queue below.

A worker thread reads the box (sources.host: NVML, /proc, the run store) every `interval`
seconds; the sparklines keep the last samples seen while the view is open.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from vtm_tui.core.formatting import MB, format_size, format_used
from vtm_tui.core.gpus.host import GpuView, HostState
from vtm_tui.errors import error_text
from vtm_tui.settings import Settings
from vtm_tui.ui.pacing import pause
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.widgets.level_spark import LevelSpark
from vtm_tui.ui.widgets.live_table import LiveTable
from vtm_tui.ui.widgets.text_line import TextLine

HISTORY = 240  # samples kept per GPU: 4 minutes at one a second, wider than any terminal
QUEUE_COLUMNS = [("place", "#"), ("run", "Run"), ("task", "Task"), ("wants", "Wants"), ("priority", "Prio"),
                 ("waits", "Waits for")]
WAITS_WIDTH = 30  # cells of the queue's "Waits for" column


def _mb(value: float | None) -> str:
    return format_size(None if value is None else value * MB)


def gpu_title(view: GpuView, state: HostState) -> Text:
    """Who holds the GPU first (what a glance is for), then its readings, its name last (cut first
    on a narrow terminal): 'GPU 0  held by run 12 (classification)  87%  3.2/80.0 GB  64°C 250 W
    NVIDIA H100'."""
    device = view.device
    text = Text(f"GPU {device.index}  ", "bold")
    holder = state.run(view.holder)
    if holder is not None:
        text.append(f"held by run {holder.run_id} ({holder.task})", "bold")
    elif view.busy:
        text.append(f"busy: {view.state}", "bold")
    else:
        text.append(view.state, "dim" if not view.allocatable else "bold green")
    facts = []
    if device.utilization_percent is not None:
        facts.append(f"{device.utilization_percent:.0f}%")
    if device.memory_total_mb is not None:
        facts.append(format_used(_bytes(device.memory_used_mb), _bytes(device.memory_total_mb)))
    if device.temperature_c is not None:
        facts.append(f"{device.temperature_c:.0f}°C")
    if device.power_w is not None:
        facts.append(f"{device.power_w:.0f} W")
    return text.append("  " + "  ".join([*facts, device.name]))


def _bytes(mb: float | None) -> float | None:
    return None if mb is None else mb * MB


def gpu_users(view: GpuView) -> Text:
    """Who is on the GPU: 'run 12: pid 4242 python 3.1 GB · pid 77 Xorg 120.0 MB'."""
    if view.device.processes is None:
        return Text("processes: unknown (no NVML)" if view.device.memory_total_mb is None
                    else "processes: not listed by NVML", "dim")
    if not view.users:
        return Text("no processes", "dim")
    parts = []
    for user in view.users:
        who = f"run {user.run_id}: " if user.run_id is not None else ""
        parts.append(f"{who}pid {user.pid} {user.name or '?'} {_mb(user.used_mb)}")
    return Text(" · ".join(parts))


def summary(state: HostState) -> Text:
    """The host's CPU and memory, where the GPU list comes from, and (on a line of its own) why
    NVML is missing or what is wrong with VTM_GPUS."""
    text = Text()
    if state.cpu_percent is not None:
        text.append(f"CPU {state.cpu_percent:.0f}%  ")
    if state.memory_used_mb is not None and state.memory_total_mb:
        text.append(f"RAM {format_used(_bytes(state.memory_used_mb), _bytes(state.memory_total_mb))}  ")
    inventory = state.inventory
    count = len(inventory.devices)
    if inventory.source == "nvml":
        text.append(f"{count} GPU{'s' if count != 1 else ''} (NVML)", "bold")
    elif inventory.source in ("VTM_GPUS", "CUDA_VISIBLE_DEVICES"):
        text.append(f"{count} GPU{'s' if count != 1 else ''} declared by {inventory.source}, no NVML", "bold")
    else:
        text.append("no GPUs", "bold")
    notes = [note for note in (inventory.note if inventory.source != "nvml" else None, *inventory.problems) if note]
    if notes:
        text.append("\n" + "; ".join(notes), "dim" if not inventory.problems else "red")
    return text


def waits_text(placement) -> str:
    """What a queued run waits for, in one line ('' once it may start: 'starting on GPU 1')."""
    if placement.devices is not None:
        return f"nothing: starting on GPU {','.join(map(str, placement.devices))}"
    return "; ".join(placement.waits_for)


class GpuCard(Vertical):
    """One GPU: its title line, utilization and memory sparklines, its processes."""

    def __init__(self, index: int) -> None:
        super().__init__(classes="gpu-card", id=f"gpu-{index}")
        self.index = index

    def compose(self) -> ComposeResult:
        yield TextLine(classes="gpu-title")
        with Horizontal(classes="gpu-sparks"):
            yield Label("util", classes="spark-label")
            yield LevelSpark(classes="gpu-util")
            yield Label(" mem", classes="spark-label")
            yield LevelSpark(classes="gpu-memory")
        yield TextLine(classes="gpu-users")

    def show(self, view: GpuView, state: HostState, util: list, memory: list) -> None:
        self.query_one(".gpu-title", TextLine).update(gpu_title(view, state))
        self.query_one(".gpu-util", LevelSpark).values = tuple(util)
        self.query_one(".gpu-memory", LevelSpark).values = tuple(memory)
        self.query_one(".gpu-users", TextLine).update(gpu_users(view))
        self.set_class(view.busy, "-busy")


class HostScreen(Screen):
    AUTO_FOCUS = "#host-queue"  # up/down pick a queued run and show all it waits for
    BINDINGS = [Binding("escape,h", "close", "Close", id="host.close")]

    @dataclass
    class Polled(Message):
        state: HostState | None
        error: BaseException | None = None
        keep: bool = False  # a pinned picture shows every read (its sparklines fill the same way each time)

        def can_replace(self, message: Message) -> bool:
            return not self.keep and isinstance(message, HostScreen.Polled)

    def __init__(self, settings: Settings, sources: Sources, interval: float = 1.0,
                 max_reads: int | None = None) -> None:
        """interval: seconds between reads; max_reads: stop reading after that many (a pinned
        picture), None: read until closed."""
        super().__init__()
        self.settings, self.sources, self.interval, self.max_reads = settings, sources, interval, max_reads
        self.state: HostState | None = None
        self.polls = 0  # states shown so far (tests and screenshots wait on it)
        self._shown: list[int] | None = None  # the GPU indices with a card
        self._util: dict[int, deque] = defaultdict(lambda: deque(maxlen=HISTORY))
        self._memory: dict[int, deque] = defaultdict(lambda: deque(maxlen=HISTORY))

    def compose(self) -> ComposeResult:
        yield TextLine(Text("Host: GPUs, who holds them, the queue", "bold"), id="host-title")
        yield Static("reading the box…", id="host-summary")
        yield VerticalScroll(id="host-gpus")
        yield TextLine(id="queue-title")
        queue = LiveTable(id="host-queue")
        # What a run waits for is cut to fit beside the rest at 80 columns; the line under the
        # table has all of it for the highlighted run.
        queue.set_columns(QUEUE_COLUMNS, {"priority": 1}, widths={"waits": WAITS_WIDTH})
        yield queue
        yield Static(id="queue-detail")
        yield Footer()

    def on_mount(self) -> None:
        self._poll()

    def action_close(self) -> None:
        self.dismiss()

    @work(thread=True, exclusive=True, group="host")
    def _poll(self) -> None:
        reads = 0
        while self.max_reads is None or reads < self.max_reads:
            reads += 1
            try:
                self.post_message(self.Polled(self.sources.host(self.settings), keep=self.max_reads is not None))
            except Exception as exc:  # a damaged store or a failing driver: say so, keep polling
                self.post_message(self.Polled(None, exc, keep=self.max_reads is not None))
            if not pause(self.interval):
                return

    async def on_host_screen_polled(self, message: Polled) -> None:
        if message.state is None:
            self.query_one("#host-summary", Static).update(Text(error_text(message.error), "red"))
            return
        state = self.state = message.state
        self._summary(summary(state))
        box = self.query_one("#host-gpus", VerticalScroll)
        indices = [view.device.index for view in state.gpus]
        if indices != self._shown:
            self._shown = indices
            await box.remove_children()
            await box.mount_all(GpuCard(index) for index in indices)
            if not indices:
                await box.mount(TextLine("No GPU here: runs that ask for GPUs wait until VTM_GPUS names some.",
                                         classes="gpu-none"))
        for view in state.gpus:
            index = view.device.index
            self._util[index].append(view.device.utilization_percent)
            self._memory[index].append(view.device.memory_percent)
            box.query_one(f"#gpu-{index}", GpuCard).show(view, state, self._util[index], self._memory[index])
        self._show_queue(state)
        self.polls += 1

    def _summary(self, text: Text) -> None:
        widget = self.query_one("#host-summary", Static)
        if str(widget.content) != str(text) or not self.polls:  # Static.update lays the screen out again
            widget.update(text)

    def _show_queue(self, state: HostState) -> None:
        waiting = len(state.queue)
        title = f"Queue: {waiting} run{'s' if waiting != 1 else ''} waiting for GPUs" if waiting else \
            "Queue: empty (runs that ask for busy GPUs wait here)"
        self.query_one("#queue-title", TextLine).update(Text(title, "bold"))
        rows = {}
        for queued in state.queue:
            run, placement = queued.run, queued.placement
            rows[str(run.run_id)] = (
                Text(str(placement.place), justify="right"), Text(str(run.run_id), justify="right"), run.task,
                run.request.describe() if run.request else "-", Text(str(run.priority), justify="right"),
                waits_text(placement))
        table = self.query_one("#host-queue", LiveTable)
        table.show_rows(rows, keep=table.current_key)
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        """The whole of what the highlighted queued run waits for (the table's column is cut at 80
        columns), wrapped under the table."""
        key = self.query_one("#host-queue", LiveTable).current_key
        queued = next((q for q in self.state.queue if str(q.run.run_id) == key), None) if self.state else None
        text = Text()
        if queued is not None:
            text.append(f"run {queued.run.run_id} ({queued.run.task}) waits for ", "bold")
            text.append(waits_text(queued.placement))
        detail = self.query_one("#queue-detail", Static)
        if str(detail.content) != str(text):
            detail.update(text)
