"""TensorBoard event logs -> MLflow: every scalar point and hparam, exactly once, resumable.

    from vtm_tui.core.tensorboard import format_report, import_tensorboard

    report = import_tensorboard("runs/", settings=settings, on_progress=cb, cancel=event)
    print("\n".join(format_report(report)))      # report.ok, report.problems, report.to_json()

Modules: tfrecord (the record framing), events (Event protos -> points and params), survey
(the folders and what they hold), keys (one MLflow key per tag, never shared), state (the
import's record in MLflow tags), mlflow_calls, batching, importer, report.
"""
from __future__ import annotations

from vtm_tui.core.tensorboard.importer import import_tensorboard
from vtm_tui.core.tensorboard.report import Change, ImportReport, Problem, RunResult, format_report
from vtm_tui.core.tensorboard.state import FILE_TAG, SLOT_TAG
from vtm_tui.core.tensorboard.survey import find_event_dirs

__all__ = ["Change", "FILE_TAG", "ImportReport", "Problem", "RunResult", "SLOT_TAG", "find_event_dirs",
           "format_report", "import_tensorboard"]
