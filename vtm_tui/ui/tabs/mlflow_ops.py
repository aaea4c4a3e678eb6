"""MLflow Ops tab (placeholder until its issue lands)."""
from vtm_tui.ui.tabs.later import LaterPane


class MlflowOpsPane(LaterPane):
    TITLE, PANE_ID = "MLflow Ops", "mlflow-ops"
    COMING = ("Experiments and runs, the best run by a metric, registering a model, and importing "
              "TensorBoard event logs into MLflow.")
    COMMANDS = ("mlflow", "experiments", "best", "register", "tb-import")
