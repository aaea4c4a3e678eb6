"""`vtm mlflow ...`: the embedded tracking server (up, down, status) and MLflow Ops (experiments,
runs, run, history, best, register) against it or any --tracking-uri."""
from __future__ import annotations

import sys
import time

from vtm_tui.commands import EXIT_FAILED, EXIT_OK, print_json
from vtm_tui.settings import Settings


def _redact(uri: str | None) -> str | None:
    from vtm_tui.core.formatting import redact_url

    return redact_url(uri) if uri else uri


def _server(args, settings: Settings) -> int:
    from vtm_tui.core.tracking import server as mlflow_server

    if args.mlflow_action == "up":
        if args.backend_store_uri:
            from vtm_tui.core.tracking.probes import check_database_uri

            check_database_uri(args.backend_store_uri)  # fail in seconds, not after MLflow's retries
        state = mlflow_server.up(settings, port=args.port, backend_store_uri=args.backend_store_uri)
        print(f"MLflow tracking server up at {state.uri} (pid {state.pid}, "
              f"backend {_redact(state.backend_store_uri)})")
        _deliver_spools(settings)
        return EXIT_OK
    if args.mlflow_action == "down":
        print(mlflow_server.down(settings).summary())
        return EXIT_OK
    state = mlflow_server.status(settings)
    if args.json:
        data = state.to_json()
        data["backend_store_uri"] = _redact(data.get("backend_store_uri"))
        print_json(data)
    else:
        print(f"{state.state}: {_redact(state.uri)}" + (f" (pid {state.pid})" if state.pid else "")
              + (f" - {state.message}" if state.message else ""))
    return EXIT_OK if state.state == "up" else EXIT_FAILED


def _deliver_spools(settings: Settings) -> None:
    """`vtm mlflow up` delivers what runs spooled while MLflow was away, before it returns; a
    spool that cannot go out now is a warning (the server is up either way)."""
    from vtm_tui.core.runs.sync import sync_runs
    from vtm_tui.errors import UserError

    try:
        results = sync_runs(settings)
    except UserError as exc:
        print(f"vtm: warning: spooled MLflow records not delivered: {exc}", file=sys.stderr)
        return
    for result in results:
        print(result.summary())


def _sync(args, settings: Settings) -> int:
    from vtm_tui.core.runs.sync import sync_runs

    results = sync_runs(settings, args.run, args.tracking_uri)
    if args.json:
        print_json([result.to_json() for result in results])
    elif not results:
        print("nothing spooled: every run's MLflow records were delivered")
    for result in [] if args.json else results:
        print(result.summary())
    return EXIT_OK if all(not r.delivery.pending and not r.delivery.busy for r in results) else EXIT_FAILED


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _metrics_text(metrics: dict[str, float], limit: int = 4) -> str:
    shown = [f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:limit]]
    return " ".join(shown) + (" ..." if len(metrics) > limit else "")


def _experiments(args, tracking) -> int:
    experiments = tracking.experiments(include_deleted=args.all)
    if args.json:
        print_json([e.to_json() for e in experiments])
        return EXIT_OK
    print(f"{'ID':>6}  {'NAME':<40} {'STAGE':<8} LAST UPDATE")
    for e in experiments:
        print(f"{e.experiment_id:>6}  {e.name[:40]:<40} {e.lifecycle_stage:<8} {_when(e.last_update_time)}")
    return EXIT_OK


def _runs(args, tracking, settings: Settings) -> int:
    runs = tracking.search_runs(args.experiment or settings.experiment_name, args.filter,
                                args.order_by or ["attributes.start_time DESC"], args.limit)
    if args.json:
        print_json([r.to_json() for r in runs])
        return EXIT_OK
    if not runs:
        print("no runs match")
        return EXIT_OK
    print(f"{'RUN ID':<32}  {'STATUS':<9} {'STARTED':<19}  {'NAME':<24} METRICS")
    for r in runs:
        print(f"{r.run_id:<32}  {r.status:<9} {_when(r.start_time):<19}  {r.name[:24]:<24} "
              f"{_metrics_text(r.metrics)}")
    return EXIT_OK


def _run(args, tracking) -> int:
    run = tracking.run(args.run_id)
    if args.json:
        print_json({**run.to_json(), "url": tracking.run_url(run)})
        return EXIT_OK
    print(f"run {run.run_id} ({run.name}) {run.status}, experiment {run.experiment_id}")
    print(f"  started {_when(run.start_time)}, ended {_when(run.end_time)}")
    if tracking.run_url(run):
        print(f"  {tracking.run_url(run)}")
    for title, values in (("params", run.params), ("metrics", run.metrics), ("tags", run.user_tags)):
        if values:
            print(f"  {title}:")
            for key, value in sorted(values.items()):
                print(f"    {key} = {value}")
    return EXIT_OK


def _history(args, tracking) -> int:
    points = tracking.metric_history(args.run_id, args.metric)
    if args.json:
        print_json([p.to_json() for p in points])
        return EXIT_OK
    if not points:
        print(f"run {args.run_id} has no values of {args.metric!r}")
        return EXIT_OK
    for p in points:
        print(f"{p.step:>6}  {p.value:.6g}  {_when(p.timestamp)}")
    return EXIT_OK


def _best(args, tracking, settings: Settings) -> int:
    from vtm_tui.core.tracking.best import NoEligibleRun, best_run, resolve_query
    from vtm_tui.errors import UserError

    query = resolve_query(settings, task=args.task, experiment=args.experiment, metric=args.metric,
                          mode=args.mode, filter=args.filter, model_name=args.model,
                          artifact_path=args.artifact_path)
    register = args.register or bool(args.alias)
    if register and not query.model_name:
        raise UserError("--register needs --model NAME (or --task, for the catalog's modelName)")
    try:
        best = best_run(tracking, query.experiment, query.metric, query.mode, query.filter)
    except NoEligibleRun as exc:  # a UserError (exit code 1); --json also gets the counts on stdout
        if args.json:
            print_json(exc.to_json())
        raise
    registration = None
    if register:
        from vtm_tui.core.tracking.register import register_run

        registration = register_run(tracking, best.run.run_id, query.model_name, query.artifact_path, args.alias)
    if args.json:
        print_json({**best.to_json(), "url": tracking.run_url(best.run),
                    "registered": registration.to_json() if registration else None})
    else:
        print(best.summary())
        if registration:
            print(registration.summary())
    return EXIT_OK


def _register(args, tracking, settings: Settings) -> int:
    from vtm_tui.core.tracking.register import register_run
    from vtm_tui.errors import UserError

    model, artifact_path = args.model, args.artifact_path
    if args.task:
        from vtm_tui.core.catalog import load_catalog

        defaults = load_catalog(settings.catalog_path).task(args.task).mlflow
        model, artifact_path = model or defaults.model_name, artifact_path or defaults.artifact_path
    if not model:
        raise UserError("say where to register: --model NAME (or --task TASK for the catalog's modelName)")
    registration = register_run(tracking, args.run_id, model, artifact_path or "model", args.alias)
    if args.json:
        print_json(registration.to_json())
    else:
        print(registration.summary())
    return EXIT_OK


def cmd_mlflow(args, settings: Settings) -> int:
    if args.mlflow_action in ("up", "down", "status"):
        return _server(args, settings)
    if args.mlflow_action == "sync":
        return _sync(args, settings)
    from vtm_tui.core.tracking.uri import open_tracking

    tracking = open_tracking(settings, args.tracking_uri)
    action = args.mlflow_action
    if action == "experiments":
        return _experiments(args, tracking)
    if action == "runs":
        return _runs(args, tracking, settings)
    if action == "run":
        return _run(args, tracking)
    if action == "history":
        return _history(args, tracking)
    if action == "best":
        return _best(args, tracking, settings)
    return _register(args, tracking, settings)


def register(sub) -> None:
    mlflow = sub.add_parser("mlflow", help="the tracking server; experiments, runs, best run, register a model",
                            description="The embedded MLflow tracking server and MLflow Ops. Ops commands use "
                            "--tracking-uri, else MLFLOW_TRACKING_URI, else vtm's embedded server.")
    mlflow_sub = mlflow.add_subparsers(dest="mlflow_action", metavar="ACTION", required=True)
    up = mlflow_sub.add_parser("up", help="start (or reuse) the local tracking server; then deliver what runs "
                               "spooled while MLflow was unreachable")
    up.add_argument("--port", type=int, help="port on 127.0.0.1 (default 5001 or VTM_MLFLOW_PORT)")
    up.add_argument("--backend-store-uri", help="e.g. postgresql+psycopg2://user:pw@127.0.0.1:55433/mlflow "
                    "(needs the postgres extra: pip install 'vtm-tui[postgres]')")
    mlflow_sub.add_parser("down", help="stop vtm's tracking server")
    state = mlflow_sub.add_parser("status", help="is the tracking server up?")
    state.add_argument("--json", action="store_true")

    def ops(name: str, help: str):
        parser = mlflow_sub.add_parser(name, help=help, description=help)
        parser.add_argument("--tracking-uri", metavar="URI",
                            help="server (http://...) or database URI (default: MLFLOW_TRACKING_URI, "
                            "else the embedded server)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    experiments = ops("experiments", "list experiments")
    experiments.add_argument("--all", action="store_true", help="include deleted experiments")

    runs = ops("runs", "search the runs of an experiment")
    runs.add_argument("--experiment", "-e", metavar="NAME", help="name or id (default: VTM_EXPERIMENT_NAME "
                      "or void-train-manager)")
    runs.add_argument("--filter", metavar="EXPR", help="MLflow filter, e.g. \"metrics.val_accuracy > 0.8 "
                      "and params.epochs = '5'\"")
    runs.add_argument("--order-by", action="append", metavar="KEY", help="e.g. 'metrics.val_loss ASC' "
                      "(repeatable; default: newest first)")
    runs.add_argument("--limit", type=int, metavar="N", help="at most N runs")

    run = ops("run", "show one run: params, latest metrics, tags")
    run.add_argument("run_id", metavar="RUN_ID")

    history = ops("history", "every logged value of one metric of a run")
    history.add_argument("run_id", metavar="RUN_ID")
    history.add_argument("metric", metavar="METRIC")

    best = ops("best", "the best run by a metric (exit 1 when no run has a usable value)")
    best.add_argument("--task", "-t", metavar="TASK", help="use the catalog task's mlflow.metric/mode "
                      "(and modelName/artifactPath for --register)")
    best.add_argument("--experiment", "-e", metavar="NAME", help="name or id (default: VTM_EXPERIMENT_NAME "
                      "or void-train-manager)")
    best.add_argument("--metric", "-m", metavar="NAME", help="metric to rank by (overrides the task's)")
    best.add_argument("--mode", choices=["max", "min"], help="higher or lower is better (overrides the task's)")
    best.add_argument("--filter", metavar="EXPR", help="only runs matching this MLflow filter")
    best.add_argument("--register", action="store_true", help="register the best run's model")
    best.add_argument("--model", metavar="NAME", help="registered model name (default: the task's modelName)")
    best.add_argument("--artifact-path", metavar="PATH", help="where the run logged its model "
                      "(default: the task's artifactPath, else model)")
    best.add_argument("--alias", metavar="ALIAS", help="point this alias (dev, release, ...) at the "
                      "version; implies --register")

    sync_help = ("deliver what runs spooled while MLflow was unreachable (metrics, params, tags, artifacts, "
                 "model, final status); exit 1 while something stays spooled")
    sync = mlflow_sub.add_parser("sync", help=sync_help, description=sync_help)
    sync.add_argument("run", nargs="?", metavar="RUN", help="a vtm run id or a spool folder (default: every run "
                      "with something spooled, except runs launched with --no-tracking)")
    sync.add_argument("--tracking-uri", metavar="URI", help="deliver there (default: the tracking URI each run "
                      "logged to)")
    sync.add_argument("--json", action="store_true", help="print JSON")

    reg = ops("register", "register a run's logged model and optionally set an alias")
    reg.add_argument("run_id", metavar="RUN_ID")
    reg.add_argument("--model", metavar="NAME", help="registered model name (default: the task's modelName)")
    reg.add_argument("--task", "-t", metavar="TASK", help="take modelName/artifactPath from the catalog task")
    reg.add_argument("--artifact-path", metavar="PATH", help="where the run logged its model (default: model)")
    reg.add_argument("--alias", metavar="ALIAS", help="point this alias (dev, release, ...) at the version")
    mlflow.set_defaults(handler=cmd_mlflow)
