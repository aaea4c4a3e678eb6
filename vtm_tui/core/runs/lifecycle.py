"""Launching, cancelling and re-running catalog tasks: the one path the CLI, scripts and TUI share."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping

from vtm_tui.core.gpus.allocation import GpuRequest, check_request, parse_request
from vtm_tui.core.gpus.inventory import read_inventory
from vtm_tui.core.runs.engines import get_engine, reconcile
from vtm_tui.core.runs.folders import tail_lines as tail_lines  # re-exported: part of this surface
from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.errors import UserError
from vtm_tui.settings import RUN_DIR_VARIABLE, Settings

if TYPE_CHECKING:
    from vtm_tui.core.catalog import Catalog


def open_store(settings: Settings) -> RunStore:
    """The run store of these settings (<VTM_HOME>/runs.db)."""
    return RunStore(settings.runs_db)


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`--set NAME=VALUE` items -> {NAME: VALUE}."""
    values: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set expects NAME=VALUE, got {item!r}")
        values[name.strip()] = value
    return values


def normalize_gpus(gpus: str | None) -> str | None:
    """'0,1' -> '0,1'; 'cpu' or '' -> '' (hide all GPUs); None -> leave the environment alone."""
    if gpus is None:
        return None
    text = gpus.strip().lower()
    if text in ("", "cpu", "none"):
        return ""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise UserError(f"--gpus expects GPU indices like 0 or 0,1 (or 'cpu'), got {gpus!r}")
    return ",".join(parts)


def launch(settings: Settings, task_type: str, values: Mapping[str, object] | None = None, *,
           gpus: str | None = None, engine: str | None = None,
           catalog: Catalog | None = None, tracking: bool | None = None,
           num_gpus: int | str | None = None, priority: int = 0) -> RunRecord:
    """Validate the task's field values, make sure tracking answers, record the run and start it.

    GPUs: `gpus` '0,2' (exactly those) or `num_gpus` N (any N, vtm picks) put a local run in the
    GPU queue (core/runs/gpu_queue.py): it stays `queued` until its devices are free, higher
    `priority` first, then first come first served, and starts with CUDA_VISIBLE_DEVICES set to
    them; gpus 'cpu' hides every GPU; neither leaves CUDA_VISIBLE_DEVICES alone. UserError (exit
    2) for both at once or devices vtm may not hand out (VTM_GPUS). Slurm gets the count as gres.

    tracking=False (`--no-tracking`) starts the run with MLflow off (TensorBoard on, what MLflow
    would get kept in the run's spool). Otherwise the tracking URI is probed first: when it does
    not answer within a few seconds, the task's mlflow.onUnreachable decides: refuse (raise
    TrackingUnavailable, `cannot reach the MLflow tracking server at URL: REASON`, exit code 2)
    or no-tracking (start with MLflow off; the run's message says why)."""
    from vtm_tui.core.catalog import load_catalog

    catalog = catalog or load_catalog(settings.catalog_path)
    task = catalog.task(task_type)
    if not task.enabled:
        raise UserError(f"task {task_type!r} is disabled in {catalog.path} (enabled: false)")
    resolved = task.resolve_values(values or {})
    argv = task.build_argv(resolved, environ=settings.env)
    engine_name = engine or task.runner.engine
    try:
        engine_impl = get_engine(engine_name)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    request = parse_request(gpus, num_gpus)
    cuda = normalize_gpus(gpus) if request is None or request.devices is not None else None
    slurm_options = dict(task.runner.slurm) if engine_name == "slurm" else {}
    if request is not None and engine_name == "local":
        check_request(request, [device.index for device in read_inventory(settings).allocatable])
        cuda = None  # the queue hands the devices out when the run starts
    elif request is not None and request.count is not None and engine_name == "slurm":
        slurm_options.setdefault("gres", f"gpu:{request.count}")  # Slurm's own queue picks them

    from vtm_tui.core.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(settings)
    note = None
    if tracking is None or tracking:
        problem = tracking_problem(settings, uri)
        if problem is not None and (tracking or task.mlflow.on_unreachable == "refuse"):
            raise UserError(f"{problem} (or launch with --no-tracking: MLflow off, TensorBoard on)")
        if problem is not None:
            tracking, note = False, f"{problem}: started with MLflow off (mlflow.onUnreachable: no-tracking)"
    # The supervisor reads VTM_CANCEL_GRACE back through Settings.from_environ: it never reads
    # .env, where the value may come from.
    env = {**task.runner.env, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1", "VTM_TASK": task.task_type,
           "VTM_CANCEL_GRACE": f"{settings.cancel_grace:g}", "VTM_TRACKING": "off" if tracking is False else "on",
           **handed_gpu_settings(settings)}
    if cuda is not None and engine_name == "local":  # Slurm assigns devices itself
        env["CUDA_VISIBLE_DEVICES"] = cuda
    cwd = str(task.runner.cwd or settings.workdir)
    store = open_store(settings)
    run = store.create(task=task.task_type, argv=argv, env=env, field_values=resolved, cwd=cwd,
                       runs_dir=settings.runs_dir, engine=engine_name, gpus=cuda, engine_options=slurm_options,
                       gpu_request=request.to_text() if request is not None and engine_name == "local" else None,
                       priority=_priority(priority))
    env["VTM_RUN_ID"] = str(run.id)
    env[RUN_DIR_VARIABLE] = str(run.run_dir)  # the spool's home, and the mark of the run's processes
    store.update(run.id, env=env, message=note)
    engine_impl.start(store, store.get(run.id))
    return store.get(run.id)


def handed_gpu_settings(settings: Settings) -> dict[str, str]:
    """The GPU queue's and the system metrics' settings as the run's supervisor must see them
    (it reads only its environment, never .env): VTM_GPUS, VTM_GPU_BUSY_MB,
    VTM_SYSTEM_METRICS_INTERVAL, where set."""
    names = ("VTM_GPUS", "VTM_GPU_BUSY_MB", "VTM_SYSTEM_METRICS_INTERVAL")
    return {name: settings.env[name] for name in names if settings.env.get(name)}


def _priority(priority: int | str | None) -> int:
    try:
        return int(str(priority).strip() or 0) if priority is not None else 0
    except ValueError:
        raise UserError(f"--priority expects a whole number (higher goes first), got {priority!r}") from None


def tracking_problem(settings: Settings, uri: str) -> str | None:
    """Why the tracking store at `uri` cannot be used right now (one line), or None when it
    answers: an http(s) server gets one short probe, a networked database one TCP probe; vtm's
    embedded server was just checked by resolve_tracking_uri."""
    from vtm_tui.core.tracking.failures import TrackingUnavailable
    from vtm_tui.core.tracking.probes import check_database_uri, is_http_uri, probe_server

    if settings.embedded_tracking:
        return None
    try:
        if is_http_uri(uri):
            probe_server(uri)
        else:
            check_database_uri(uri)
    except TrackingUnavailable as exc:
        return str(exc).split(" (is it running?", 1)[0]
    return None


def rerun(settings: Settings, run_id: int | str, changes: Mapping[str, object] | None = None,
          *, gpus: str | None = None) -> RunRecord:
    """Launch the same task again with the earlier run's field values, some of them changed, and
    its GPU request (`--num-gpus N` again asks for any N) and priority unless gpus says otherwise."""
    old = open_store(settings).get(run_id)
    values = {**old.field_values, **(changes or {})}
    num_gpus = None
    if gpus is None and old.gpu_request:
        asked = GpuRequest.from_text(old.gpu_request)
        num_gpus = asked.count
        gpus = None if asked.devices is None else ",".join(map(str, asked.devices))
    return launch(settings, old.task, values, gpus=gpus if gpus is not None or num_gpus else old.gpus,
                  num_gpus=num_gpus, priority=old.priority, engine=old.engine)


def cancel(settings: Settings, run_id: int | str) -> RunRecord:
    """Cancel an active run through its engine and return its record (unchanged when it had
    already ended). RunNotFound for an unknown id."""
    store = open_store(settings)
    run = store.get(run_id)
    if run.active:
        get_engine(run.engine).cancel(store, run)
    return store.get(run.id)


def list_runs(settings: Settings, limit: int | None = None) -> list[RunRecord]:
    """Every run, newest first (at most `limit`), after reconciling the active ones."""
    store = open_store(settings)
    reconcile(store)
    return store.list(limit)


def get_run(settings: Settings, run_id: int | str) -> RunRecord:
    """One run's record, reconciled first when it is active. RunNotFound for an unknown id."""
    store = open_store(settings)
    run = store.get(run_id)
    if run.active:
        get_engine(run.engine).refresh(store, run)
        run = store.get(run.id)
    return run


def wait(settings: Settings, run_id: int | str, on_update=None, interval: float = 0.5,
         timeout: float | None = None) -> RunRecord:
    """Block until the run finishes; on_update(run) is called whenever its record changes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        run = get_run(settings, run_id)
        snapshot = (run.status, run.progress, run.mlflow_run_id)
        if snapshot != last and on_update:
            on_update(run)
        last = snapshot
        if not run.active:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise UserError(f"run {run.id} still {run.status} after {timeout:.0f}s")
        time.sleep(interval)
