"""The MLflow Ops tab's status line: which tracking server, and whether it answers; and what the
tab's body says instead of experiments and runs while it does not."""
from __future__ import annotations

from rich.text import Text

from vtm_tui.ui.widgets.text_line import TextLine


class TrackingStatus(TextLine):
    def not_connected(self) -> None:
        self.update(Text.assemble(("MLflow ", "bold"), ("not connected yet", "dim")))

    def connecting(self, uri: str, retrying: bool) -> None:
        if retrying:
            self.update(Text.assemble(("MLflow unreachable at ", "bold red"), (uri, "bold red"),
                                      ("  retrying…", "yellow")))
        else:
            self.update(Text.assemble(("MLflow ", "bold"), ("● connecting ", "bold yellow"), uri))

    def connected(self, uri: str, experiments: int) -> None:
        self.update(Text.assemble(("MLflow ", "bold"), ("● ", "bold green"), uri,
                                  f" · {experiments} experiment{'s' if experiments != 1 else ''}"))

    def failed(self, uri: str, state: str) -> None:
        """state: "unreachable" (no answer), or "error" (it could not even be asked)."""
        self.update(Text.assemble((f"MLflow {state} at ", "bold red"), (uri, "bold red"), ("  ctrl+r retries", "dim")))


def unreachable_text(uri: str, error: str, state: str) -> Text:
    return Text.assemble(
        (f"MLflow {state} at {uri}\n\n", "bold"), (error, "red"),
        "\n\nStart the server (`vtm mlflow up`, or launch a run), or point MLFLOW_TRACKING_URI "
        "at one, then press ctrl+r.")
