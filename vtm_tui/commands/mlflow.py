"""`vtm mlflow up|down|status`: the embedded tracking server."""
from __future__ import annotations

from vtm_tui.commands import EXIT_FAILED, EXIT_OK, print_json
from vtm_tui.settings import Settings


def cmd_mlflow(args, settings: Settings) -> int:
    from vtm_tui.core import mlflow_server

    if args.mlflow_action == "up":
        state = mlflow_server.up(settings, port=args.port, backend_store_uri=args.backend_store_uri)
        print(f"MLflow tracking server up at {state.uri} (pid {state.pid}, backend {state.backend_store_uri})")
        return EXIT_OK
    if args.mlflow_action == "down":
        stopped = mlflow_server.down(settings)
        print("MLflow tracking server stopped" if stopped else "vtm's MLflow tracking server was not running")
        return EXIT_OK
    state = mlflow_server.status(settings)
    if args.json:
        print_json(state.to_json())
    else:
        print(f"{state.state}: {state.uri}" + (f" (pid {state.pid})" if state.pid else "")
              + (f" - {state.message}" if state.message else ""))
    return EXIT_OK if state.state == "up" else EXIT_FAILED


def register(sub) -> None:
    mlflow = sub.add_parser("mlflow", help="the embedded MLflow tracking server")
    mlflow_sub = mlflow.add_subparsers(dest="mlflow_action", metavar="ACTION", required=True)
    up = mlflow_sub.add_parser("up", help="start (or reuse) the local tracking server")
    up.add_argument("--port", type=int, help="port on 127.0.0.1 (default 5001 or VTM_MLFLOW_PORT)")
    up.add_argument("--backend-store-uri", help="e.g. postgresql+psycopg2://user:pw@127.0.0.1:55433/mlflow")
    mlflow_sub.add_parser("down", help="stop vtm's tracking server")
    state = mlflow_sub.add_parser("status", help="is the tracking server up?")
    state.add_argument("--json", action="store_true")
    mlflow.set_defaults(handler=cmd_mlflow)
