"""How each status of each kind is styled, in one place: so "failed" is the same red wherever a
run, a model server or an import fails, and a new status is styled once for every table."""
from __future__ import annotations

from rich.text import Text


class StatusStyles:
    """The style (and, for notes, the icon) of each status of one kind; `default` for any other."""

    def __init__(self, styles: dict[str, str], default: str = "", icons: dict[str, str] | None = None) -> None:
        self.styles, self.default, self.icons = styles, default, icons or {}

    def style(self, status: str) -> str:
        return self.styles.get(status, self.default)

    def icon(self, status: str) -> str:
        return self.icons.get(status, "")

    def text(self, status: str, shown: str | None = None) -> Text:
        """`shown` (default: the status itself) in the status's style."""
        return Text(status if shown is None else shown, style=self.style(status))


# A vtm run (the run store), in the Runs table and the run's card.
RUN = StatusStyles({"queued": "dim", "running": "bold yellow", "succeeded": "bold green", "failed": "bold red",
                    "cancelled": "bold magenta", "lost": "red", "cancelling": "bold magenta"})
# An MLflow run, in the MLflow Ops table (MLflow's upper-case statuses).
MLFLOW_RUN = StatusStyles({"RUNNING": "bold yellow", "FINISHED": "green", "FAILED": "bold red",
                           "KILLED": "magenta", "SCHEDULED": "dim"})
# A model server started by vtm (`mlflow models serve`), in the Serving table.
MODEL_SERVER = StatusStyles({"up": "bold green", "starting": "bold yellow", "failed": "bold red", "stopped": "dim"})
# The tracking server, in the header; "checking" and "unknown" are dim.
TRACKING_SERVER = StatusStyles({"up": "bold green", "starting": "bold yellow", "down": "bold red"}, default="dim")
# Where a prediction came from: a model server, or the registry bundle run here.
SERVED_BY = StatusStyles({"native": "bold green", "local": "bold yellow"}, default="bold")
# A TensorBoard import, on its card.
TB_IMPORT = StatusStyles({"done": "bold green", "problems": "bold red", "cancelled": "magenta",
                          "cancelling": "magenta", "failed": "bold red"})
# A note on a tab's status line (the Registry tab's): what an action came to.
NOTE = StatusStyles({"done": "green", "error": "red", "cancelled": "yellow", "info": "dim", "reading": "dim"},
                    icons={"done": "✓ ", "error": "✗ ", "cancelled": "■ "})
