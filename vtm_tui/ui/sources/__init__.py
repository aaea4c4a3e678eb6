"""Where the UI gets the time and outside state: every source a tab reads, in one `Sources`.

The app takes one `Sources`; production uses the defaults below, and nothing else reaches for
the outside world on its own. Snapshot tests and the screenshot script pass pinned ones (built
with `dataclasses.replace`, see the `demo` package) so a picture never depends on the clock, the
machine's GPUs or whether an MLflow server happens to answer.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vtm_tui.settings import Settings
from vtm_tui.ui.sources.serving import ServingSources

if TYPE_CHECKING:
    from vtm_tui.core.gpus.host import HostState
    from vtm_tui.core.runs.store import RunRecord
    from vtm_tui.core.tracking.client import Tracking
    from vtm_tui.core.tracking.server import ServerStatus

__all__ = ["RUNS_LIMIT", "ServingSources", "Sources"]

RUNS_LIMIT = 200  # the table shows the newest runs; older ones stay in `vtm runs`


def _server_status(settings: Settings) -> ServerStatus:
    from vtm_tui.core.tracking.server import status

    return status(settings)


def _list_runs(settings: Settings) -> list[RunRecord]:
    from vtm_tui.core.runs.lifecycle import list_runs

    return list_runs(settings, RUNS_LIMIT)  # also marks runs whose supervisor vanished as lost


def _read_host(settings: Settings) -> HostState:
    from vtm_tui.core.runs.gpu_queue import read_host

    return read_host(settings)  # NVML, /proc and the run store: the GPUs, who holds them, the queue


def _open_tracking(settings: Settings) -> Tracking:
    """The tracking server every part of vtm uses (core's resolver), without starting vtm's
    embedded server: looking at a tab never starts it (launching, importing, serving do)."""
    from vtm_tui.core.tracking.uri import open_tracking

    return open_tracking(settings, start=False)


@dataclass(frozen=True)
class Sources:
    clock: Callable[[], float] = time.time
    server_status: Callable[[Settings], ServerStatus] = _server_status  # the header's MLflow state
    host: Callable[[Settings], HostState] = _read_host  # the host view, the Launcher's GPU picker
    list_runs: Callable[[Settings], list[RunRecord]] = _list_runs
    tracking: Callable[[Settings], Tracking] = _open_tracking  # what the MLflow Ops tab reads
    serving: ServingSources = field(default_factory=ServingSources)  # the Serving tab's
