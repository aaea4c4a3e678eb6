"""The line protocol training scripts speak on stdout.

    VTM_PROGRESS::{"epoch": 3, "total_epochs": 10, "val_accuracy": 0.81}
    VTM_RUN_META::{"mlflow_run_id": "..."}

Anything else - including a prefixed line whose JSON is broken - is a plain log line.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

PROGRESS_PREFIX = "VTM_PROGRESS::"
META_PREFIX = "VTM_RUN_META::"


@dataclass(frozen=True)
class ProgressLine:
    """A parsed `VTM_PROGRESS::{...}` line: its JSON object (epoch, total_epochs, metrics)."""
    data: dict


@dataclass(frozen=True)
class MetaLine:
    """A parsed `VTM_RUN_META::{...}` line: its JSON object (mlflow_run_id, ...)."""
    data: dict


_scan_json = json.JSONDecoder().scan_once  # the C scanner: no per-call wrapper overhead


def _json_object(payload: str) -> dict | None:
    try:
        value, end = _scan_json(payload, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(payload) or not isinstance(value, dict):
        return None  # trailing text, e.g. two records run together
    return value


def parse_line(line: str | bytes) -> ProgressLine | MetaLine | None:
    """Classify one output line; None means 'plain log line'. Never raises."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if line.startswith(PROGRESS_PREFIX):
        data = _json_object(line[len(PROGRESS_PREFIX):])
        return ProgressLine(data) if data is not None else None
    if line.startswith(META_PREFIX):
        data = _json_object(line[len(META_PREFIX):])
        return MetaLine(data) if data is not None else None
    return None


def format_progress(data: dict) -> str:
    """The `VTM_PROGRESS::` line for `data` (compact JSON), as a training script prints it."""
    return PROGRESS_PREFIX + json.dumps(data, separators=(",", ":"))


def format_meta(data: dict) -> str:
    """The `VTM_RUN_META::` line for `data` (compact JSON), as a training script prints it."""
    return META_PREFIX + json.dumps(data, separators=(",", ":"))


def numeric_metrics(data: dict) -> dict[str, float]:
    """The chartable keys of a progress record: finite numbers that are not bookkeeping."""
    skip = {"epoch", "total_epochs", "step", "total_steps"}
    return {
        key: float(value)
        for key, value in data.items()
        if key not in skip
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fraction_done(data: dict) -> float | None:
    """0..1 from epoch/total_epochs (refined by step/total_steps inside an epoch), or None."""
    epoch, total = _number(data.get("epoch")), _number(data.get("total_epochs"))
    if epoch is None or not total or total <= 0:
        return None
    step, steps = _number(data.get("step")), _number(data.get("total_steps"))
    if step is not None and steps and steps > 0 and epoch >= 1:
        epoch = epoch - 1 + min(step / steps, 1.0)
    return max(0.0, min(epoch / total, 1.0))
