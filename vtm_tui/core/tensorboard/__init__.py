"""TensorBoard event logs -> MLflow: every scalar point and hparam, exactly once, resumable.

    from vtm_tui.core.tensorboard import format_report, import_tensorboard

    report = import_tensorboard("runs/", settings=settings, on_progress=cb, cancel=event)
    print("\n".join(format_report(report)))      # report.ok, report.problems, report.to_json()

Modules: tfrecord (the record framing), events (Event protos -> points and params), state
(the import's record in MLflow tags), mlflow_calls, batching, importer, report.
"""
from __future__ import annotations

from vtm_tui.core.tensorboard.importer import find_event_dirs, import_tensorboard
from vtm_tui.core.tensorboard.report import ImportReport, Problem, RunResult, format_report
from vtm_tui.core.tensorboard.state import FILE_TAG, SLOT_TAG

__all__ = ["FILE_TAG", "ImportReport", "Problem", "RunResult", "SLOT_TAG", "find_event_dirs", "format_report",
           "import_tensorboard"]
