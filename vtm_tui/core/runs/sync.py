"""Delivering the MLflow spools of vtm runs (`vtm mlflow sync [RUN]`, and `vtm mlflow up`, which
syncs before it returns), and keeping the run store in line: a run whose MLflow run was created
by the delivery gets its id, and the run's message says the spool went out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtm_tui.core.runs.outcome import SPOOL_NOTE_PREFIXES
from vtm_tui.core.runs.records import RunNotFound, StoreError
from vtm_tui.core.runs.store import RunStore
from vtm_tui.core.tracking.delivery import Delivery, deliver
from vtm_tui.core.tracking.spool import SPOOL_DIR, Spool, spools_under
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


@dataclass
class SyncResult:
    """One spool's delivery: the vtm run id (None for a spool given by path) and what happened."""
    run_id: int | None
    delivery: Delivery

    def summary(self) -> str:
        """One line: `run 3: 14 record(s) delivered to MLflow run ...`."""
        who = f"run {self.run_id}" if self.run_id is not None else self.delivery.spool
        text = self.delivery.summary()
        return f"{who}: {text.removeprefix(self.delivery.spool + ': ')}"

    def to_json(self) -> dict:
        """The `--json` object: run_id plus every field of the delivery."""
        return {"run_id": self.run_id, **self.delivery.__dict__}


def _spool_of(settings: Settings, target: str) -> tuple[int | None, Spool]:
    if target.isdigit():
        folder = settings.runs_dir / target
        if not folder.is_dir():
            raise RunNotFound(target)
        return int(target), Spool.of_run(folder)
    path = Path(target).expanduser()
    spool = Spool(path if path.name == SPOOL_DIR or (path / "records.jsonl").exists() else path / SPOOL_DIR)
    if not spool.exists():
        raise UserError(f"{target}: no MLflow spool there (expected a run id or a folder with records.jsonl)")
    return None, spool


def sync_runs(settings: Settings, target: str | None = None, tracking_uri: str | None = None) -> list[SyncResult]:
    """Deliver one spool (`target`: a run id or a spool folder; even a --no-tracking run's) or
    every run's pending spool (runs launched with --no-tracking left out), oldest run first, to
    `tracking_uri` (default: the URI each spool was written for). TrackingUnavailable when a
    server cannot be reached; what was delivered until then stays delivered."""
    if target is not None:
        chosen = [_spool_of(settings, target)]
    else:
        chosen = [(run_id, spool) for run_id, spool in spools_under(settings.runs_dir)
                  if spool.pending() and (spool.header() or {}).get("tracking") != "off"]
    results = []
    for run_id, spool in chosen:
        delivery = deliver(spool, tracking_uri)
        results.append(SyncResult(run_id, delivery))
        if run_id is not None and delivery.delivered:
            _record(settings, run_id, delivery)
    return results


def _record(settings: Settings, run_id: int, delivery: Delivery) -> None:
    """Tell the run store (best effort: the delivery is done either way)."""
    try:
        store = RunStore(settings.runs_db)
        run = store.get(run_id)
        changes: dict = {}
        first = next(iter(delivery.run_ids.values()), None)  # the run's first MLflow run
        if first and not run.mlflow_run_id:
            changes["mlflow_run_id"] = first
        if not delivery.pending and not run.active:
            changes["message"] = _without_spool_note(run.message, delivery)
        if changes:
            store.update(run_id, **changes)
    except (StoreError, RunNotFound):
        pass


def _without_spool_note(message: str | None, delivery: Delivery) -> str:
    parts = [part for part in (message or "").split("; ") if part and not part.startswith(SPOOL_NOTE_PREFIXES)]
    return "; ".join([*parts, f"MLflow spool delivered to run {delivery.mlflow_run_id}"])
