"""Messages that cross tabs: posted by one pane (often from a worker thread), routed by the app."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message

from vtm_tui.core.runs.store import RunRecord

if TYPE_CHECKING:  # the catalog module (pydantic) loads in a worker, after the first frame
    from vtm_tui.core.catalog.loader import Catalog


@dataclass
class RunLaunched(Message):
    """A run was started (launch, rerun): the app shows it selected in the Runs tab."""
    run: RunRecord


@dataclass
class CatalogLoaded(Message):
    """A (re)load of the catalog file: the catalog, or the errors that stop it loading."""
    catalog: Catalog | None
    errors: list[str] = field(default_factory=list)


@dataclass
class CloneRequested(Message):
    """Open this run's task and field values in the Launcher form for editing."""
    run: RunRecord



