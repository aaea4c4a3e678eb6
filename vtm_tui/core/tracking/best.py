"""The best run of an experiment by one metric.

Rules: every run matching the filter is considered (all statuses; deleted runs never); runs
without the metric, or whose latest value is NaN, are excluded and never chosen; `max` or `min`
of the latest value wins; ties go to the most recent run (later start_time, then later end_time;
a run with no end time loses the tie; the run id settles the rest, so the answer is stable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from vtm_tui.core.tracking.client import PAGE_SIZE, ExperimentInfo, RunInfo, Tracking
from vtm_tui.errors import OperationFailed, UserError

MODES = ("max", "min")


class NoEligibleRun(OperationFailed):
    """No considered run has a usable value of the metric (exit code 1, not a usage error)."""

    def __init__(self, experiment: str, metric: str, considered: int, missing: int, nan: int,
                 filter: str | None = None):
        self.experiment, self.metric, self.filter = experiment, metric, filter
        self.considered, self.missing, self.nan = considered, missing, nan
        where = f"experiment {experiment!r}" + (f" matching {filter!r}" if filter else "")
        if considered == 0:
            text = f"no eligible run: 0 runs considered in {where}"
        else:
            text = (f"no eligible run for metric {metric!r}: {considered} run"
                    f"{'s' if considered != 1 else ''} considered in {where}, all excluded "
                    f"({missing} without {metric}, {nan} NaN)")
        super().__init__(text)

    def to_json(self) -> dict:
        """The `--json` answer when no run qualified: run_id null, the error, and the counts."""
        return {"run_id": None, "error": str(self), "experiment": self.experiment, "metric": self.metric,
                "filter": self.filter, "considered": self.considered, "eligible": 0,
                "excluded": self.missing + self.nan, "excluded_missing": self.missing,
                "excluded_nan": self.nan}


class UnknownMetric(UserError):
    """No considered run logged that metric (the message lists the metrics they did log)."""
    pass


@dataclass
class Selection:
    """What select_best saw: the winner (if any) and the counts behind it."""
    run: RunInfo | None
    value: float | None
    considered: int
    missing: int
    nan: int
    metric_seen: bool  # whether any considered run logged the metric at all (NaN included)
    metric_names: set[str]

    @property
    def eligible(self) -> int:
        """Runs with a usable (present, not NaN) value of the metric."""
        return self.considered - self.missing - self.nan


def check_mode(mode: str) -> str:
    """`mode` when it is max or min; UserError otherwise."""
    if mode not in MODES:
        raise UserError(f"mode must be max or min, got {mode!r}")
    return mode


def _tie_key(run: RunInfo) -> tuple:
    return (run.start_time if run.start_time is not None else -1,
            run.end_time if run.end_time is not None else -1, run.run_id)


def select_best(runs: Iterable[RunInfo], metric: str, mode: str) -> Selection:
    """Pure selection over runs already fetched; see the module docstring for the rules."""
    check_mode(mode)
    sign = 1.0 if mode == "max" else -1.0
    best, best_key = None, None
    considered = missing = nan = 0
    seen, names = False, set()
    for run in runs:
        considered += 1
        names.update(run.metrics)
        value = run.metrics.get(metric)
        if value is None:
            missing += 1
            continue
        seen = True
        if math.isnan(value):
            nan += 1
            continue
        key = (sign * value, *_tie_key(run))
        if best_key is None or key > best_key:
            best, best_key = run, key
    return Selection(best, None if best is None else best.metrics[metric], considered, missing, nan,
                     seen, names)


@dataclass
class BestRun:
    """The best run of an experiment by a metric: the run, the metric and mode, its value (the
    run's latest value of the metric), the experiment, and how many runs were considered and
    excluded (no such metric, NaN), with the filter and tracking URI used."""
    run: RunInfo
    metric: str
    mode: str
    value: float
    experiment: ExperimentInfo
    considered: int
    missing: int  # excluded: no such metric
    nan: int  # excluded: latest value NaN
    filter: str | None = None
    tracking_uri: str = ""

    @property
    def eligible(self) -> int:
        """Runs with a usable value of the metric."""
        return self.considered - self.missing - self.nan

    @property
    def excluded(self) -> int:
        """Runs left out: without the metric, or with NaN."""
        return self.missing + self.nan

    def summary(self) -> str:
        """One line: the run, its value, and the counts behind the choice."""
        name = f" ({self.run.name})" if self.run.name else ""
        where = f" matching {self.filter!r}" if self.filter else ""
        return (f"best run {self.run.run_id}{name} in experiment {self.experiment.name!r}: "
                f"{self.metric} = {self.value:.6g} ({self.mode}); {self.considered} run"
                f"{'s' if self.considered != 1 else ''} considered{where}, {self.eligible} eligible, "
                f"{self.excluded} excluded ({self.missing} without {self.metric}, {self.nan} NaN)")

    def to_json(self) -> dict:
        """The `vtm mlflow best --json` object (with the run itself under "run")."""
        return {"run_id": self.run.run_id, "run_name": self.run.name, "value": self.value,
                "metric": self.metric, "mode": self.mode, "experiment": self.experiment.name,
                "experiment_id": self.experiment.experiment_id, "filter": self.filter,
                "considered": self.considered, "eligible": self.eligible, "excluded": self.excluded,
                "excluded_missing": self.missing, "excluded_nan": self.nan,
                "tracking_uri": self.tracking_uri, "run": self.run.to_json()}


def best_run(tracking: Tracking, experiment: str, metric: str, mode: str = "max",
             filter: str | None = None, page_size: int = PAGE_SIZE) -> BestRun:
    """The best run, or NoEligibleRun; UnknownMetric when no run of the experiment has the metric."""
    check_mode(mode)
    if not metric:
        raise UserError("name the metric to rank runs by")
    exp = tracking.experiment(experiment)
    chosen = select_best(tracking.iter_runs(exp, filter, page_size=page_size), metric, mode)
    if chosen.run is None:
        if chosen.considered and not chosen.metric_seen:
            names = chosen.metric_names
            if filter:  # the filter may just have left out the runs that have it
                everything = select_best(tracking.iter_runs(exp, page_size=page_size),
                                         metric, mode)
                names = everything.metric_names
                known = everything.metric_seen
            else:
                known = False
            if not known:
                shown = ", ".join(sorted(names)) or "none"
                raise UnknownMetric(f"no run in experiment {exp.name!r} at {tracking.display_uri} "
                                    f"has a metric {metric!r} (metrics logged: {shown})")
        raise NoEligibleRun(exp.name, metric, chosen.considered, chosen.missing, chosen.nan, filter)
    return BestRun(chosen.run, metric, mode, chosen.value, exp, chosen.considered, chosen.missing,
                   chosen.nan, filter, tracking.display_uri)


@dataclass
class BestQuery:
    """What to rank by and what to register, with the catalog's task defaults filled in."""
    experiment: str
    metric: str
    mode: str
    filter: str | None = None
    task: str | None = None
    model_name: str | None = None
    artifact_path: str = "model"


def resolve_query(settings, *, task: str | None = None, experiment: str | None = None,
                  metric: str | None = None, mode: str | None = None, filter: str | None = None,
                  model_name: str | None = None, artifact_path: str | None = None,
                  catalog=None) -> BestQuery:
    """Explicit values win; a task supplies mlflow.metric/mode/modelName/artifactPath from the
    catalog; the experiment defaults to Settings.experiment_name."""
    defaults = None
    if task:
        from vtm_tui.core.catalog import load_catalog

        defaults = (catalog or load_catalog(settings.catalog_path)).task(task).mlflow
    metric = metric or (defaults.metric if defaults else None)
    if not metric:
        raise UserError(f"task {task!r} sets no mlflow.metric in the catalog; pass --metric"
                        if task else "say what to rank by: --task TASK (the catalog's mlflow.metric "
                        "and mode) or --metric NAME --mode max|min")
    mode = mode or (defaults.mode if defaults else None)
    if not mode:
        raise UserError(f"say whether a higher or lower {metric} is better: --mode max|min")
    return BestQuery(experiment=experiment or settings.experiment_name, metric=metric,
                     mode=check_mode(mode), filter=filter or None, task=task,
                     model_name=model_name or (defaults.model_name if defaults else None),
                     artifact_path=artifact_path or (defaults.artifact_path if defaults else "model"))
