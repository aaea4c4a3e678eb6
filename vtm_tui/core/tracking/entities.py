"""MLflow's entities as plain dataclasses (experiment, run, metric point), so the TUI and the
CLI never touch mlflow objects. Times are ms since the epoch, as MLflow keeps them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def _json_number(value: float) -> float | None:
    """NaN and infinities are not JSON: they come out as null."""
    return value if math.isfinite(value) else None


@dataclass
class ExperimentInfo:
    """An MLflow experiment: id, name, lifecycle stage (active, deleted), artifact location,
    tags, creation and last update times (ms since the epoch)."""
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"
    artifact_location: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None  # ms since the epoch, as MLflow keeps it
    last_update_time: int | None = None

    @classmethod
    def from_mlflow(cls, exp) -> "ExperimentInfo":
        """Copy an mlflow.entities.Experiment."""
        return cls(experiment_id=str(exp.experiment_id), name=exp.name,
                   lifecycle_stage=exp.lifecycle_stage, artifact_location=exp.artifact_location or "",
                   tags=dict(exp.tags or {}), creation_time=exp.creation_time,
                   last_update_time=exp.last_update_time)

    def to_json(self) -> dict:
        """Every field, as JSON."""
        return asdict(self)


@dataclass
class RunInfo:
    """An MLflow run: id, name, status (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED), start and
    end times (ms since the epoch), params, the latest value of each metric, tags, experiment id,
    artifact URI, lifecycle stage."""
    run_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int | None  # ms since the epoch
    end_time: int | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value of each metric
    tags: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    artifact_uri: str = ""
    lifecycle_stage: str = "active"

    @classmethod
    def from_mlflow(cls, run) -> "RunInfo":
        """Copy an mlflow.entities.Run (metrics as floats)."""
        info, data = run.info, run.data
        return cls(run_id=info.run_id, name=info.run_name or "", status=info.status,
                   start_time=info.start_time, end_time=info.end_time, params=dict(data.params),
                   metrics={k: float(v) for k, v in data.metrics.items()}, tags=dict(data.tags),
                   experiment_id=str(info.experiment_id), artifact_uri=info.artifact_uri or "",
                   lifecycle_stage=info.lifecycle_stage)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while it has no end."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, (self.end_time - self.start_time) / 1000)

    @property
    def user_tags(self) -> dict[str, str]:
        """Tags without MLflow's own `mlflow.*` bookkeeping."""
        return {k: v for k, v in self.tags.items() if not k.startswith("mlflow.")}

    def to_json(self) -> dict:
        """Every field plus "duration" (seconds); NaN and infinite metrics as null."""
        data = asdict(self)
        data["metrics"] = {k: _json_number(v) for k, v in self.metrics.items()}
        data["duration"] = self.duration
        return data


@dataclass
class MetricPoint:
    """One logged value of a metric: step, value, timestamp (ms since the epoch)."""
    step: int
    value: float
    timestamp: int  # ms since the epoch

    def to_json(self) -> dict:
        """{"step", "value" (null when not finite), "timestamp"}."""
        return {"step": self.step, "value": _json_number(self.value), "timestamp": self.timestamp}
