"""Serving tab (placeholder until its issue lands)."""
from vtm_tui.ui.tabs.later import LaterPane


class ServingPane(LaterPane):
    TITLE, PANE_ID = "Serving", "serving"
    COMING = ("Serve a registered model with `mlflow models serve`, or download it and predict "
              "locally.")
    COMMANDS = ("serve", "serving", "predict")
