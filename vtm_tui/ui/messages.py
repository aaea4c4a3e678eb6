"""Messages that cross tabs: posted by one pane (often from a worker thread), routed by the app."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message

from vtm_tui.core.runs import RunRecord

if TYPE_CHECKING:  # the catalog module (pydantic) loads in a worker, after the first frame
    from vtm_tui.core.catalog import Catalog


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


def error_text(exc: BaseException) -> str:
    """What a user sees of an exception: the message of the errors meant for them, the type
    as well for anything unexpected."""
    from vtm_tui.core.errors import user_error_types

    if isinstance(exc, user_error_types()):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
