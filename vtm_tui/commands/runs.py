"""`vtm launch` and `vtm runs ...`: start catalog tasks and manage their runs."""
from __future__ import annotations

import sys
import time

from vtm_tui.commands import EXIT_FAILED, EXIT_OK, print_json
from vtm_tui.core.formatting import format_duration
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


def progress_text(run, width: int = 20) -> str:
    """One line: bar, percent, epoch and the latest metrics of a run."""
    from vtm_tui.core.runs.progress import fraction_done, numeric_metrics

    done = fraction_done(run.progress)
    parts = [f"run {run.id} {run.task} {run.status}"]
    if run.engine == "slurm":
        parts.append(f"[{run.where}]")
    if done is not None:
        filled = round(done * width)
        parts.append(f"[{'#' * filled}{'-' * (width - filled)}] {done:4.0%}")
    if "epoch" in run.progress:
        parts.append(f"epoch {run.progress.get('epoch')}/{run.progress.get('total_epochs', '?')}")
    parts += [f"{key}={value:.4g}" for key, value in numeric_metrics(run.progress).items()]
    return " ".join(parts)


def _wait_with_progress(settings: Settings, run_id: int) -> int:
    from vtm_tui.core.runs import lifecycle

    tty = sys.stdout.isatty()

    def show(run) -> None:
        line = progress_text(run)
        print(("\r\x1b[2K" + line) if tty else line, end="" if tty else "\n", flush=True)

    run = lifecycle.wait(settings, run_id, on_update=show)
    if tty:
        print()
    summary = f"run {run.id} {run.status}"
    if run.exit_code is not None:
        summary += f" (exit code {run.exit_code})"
    if run.mlflow_run_id:
        summary += f", MLflow run {run.mlflow_run_id}"
    print(summary + (f": {run.message}" if run.message and run.status != "succeeded" else ""))
    return EXIT_OK if run.status == "succeeded" else EXIT_FAILED


def show_store_notices(settings: Settings) -> None:
    """Print what happened to the run store since anyone last looked (it was missing or damaged
    and got rebuilt), one line each, on stderr."""
    from vtm_tui.core.runs import lifecycle

    for notice in lifecycle.open_store(settings).take_notices():
        print(f"vtm: note: {notice}", file=sys.stderr)


def cmd_launch(args, settings: Settings) -> int:
    from vtm_tui.core.runs import lifecycle

    values = lifecycle.parse_assignments(args.set)
    show_store_notices(settings)
    run = lifecycle.launch(settings, args.task, values, gpus=args.gpus, engine=args.engine,
                           tracking=False if args.no_tracking else None, num_gpus=args.num_gpus,
                           priority=args.priority)
    if run.message:  # e.g. started with MLflow off because the server did not answer
        print(f"vtm: note: run {run.id}: {run.message}", file=sys.stderr)
    if args.json and not args.wait:
        print_json(run.to_json())
        return EXIT_OK
    if not args.json:
        from vtm_tui.core.runs.gpu_queue import run_request

        asked = run_request(run)
        queued = f", {asked.describe()} from the GPU queue" if asked else ""
        print(f"launched run {run.id} ({run.task}){queued}; log: {run.log_path}")
    if args.wait:
        if args.json:
            run = lifecycle.wait(settings, run.id)
            print_json(run.to_json())
            return EXIT_OK if run.status == "succeeded" else EXIT_FAILED
        return _wait_with_progress(settings, run.id)
    return EXIT_OK


def cmd_runs(args, settings: Settings) -> int:
    from vtm_tui.core.runs import lifecycle
    from vtm_tui.core.runs.progress import fraction_done

    action = args.runs_action or "list"
    show_store_notices(settings)
    if action == "list":
        runs = lifecycle.list_runs(settings, args.limit)
        places = _queue_places(settings, runs)
        if args.json:
            print_json([{**run.to_json(), **places.get(run.id, {})} for run in runs])
            return EXIT_OK
        if not runs:
            print("no runs yet: start one with `vtm launch TASK`")
            return EXIT_OK
        print(f"{'ID':>4}  {'STATUS':<10} {'TASK':<16} {'PROGRESS':>8} {'EXIT':>4}  {'DURATION':>8}  "
              f"{'MLFLOW RUN':<32}  WHERE")
        for run in runs:
            done = fraction_done(run.progress)
            print(f"{run.id:>4}  {run.status:<10} {run.task[:16]:<16} "
                  f"{'-' if done is None else f'{done:.0%}':>8} "
                  f"{'-' if run.exit_code is None else run.exit_code:>4}  "
                  f"{format_duration(run.duration):>8}  {run.mlflow_run_id or '-':<32}  {run.where}")
            if run.id in places:
                queue = places[run.id]["queue"]
                print(f"      queue place {queue['place']}, waits for: {'; '.join(queue['waits_for']) or 'starting'}")
        return EXIT_OK
    if action == "show":
        run = lifecycle.get_run(settings, args.id)
        if args.json:
            print_json(run.to_json())
            return EXIT_OK
        for key, value in run.to_json().items():
            print(f"{key:>16}: {value}")
        return EXIT_OK
    if action == "logs":
        return _show_logs(settings, args)
    if action == "cancel":
        run = lifecycle.cancel(settings, args.id)
        if not run.active:
            print(f"run {run.id} is already {run.status}")
            return EXIT_OK
        print(f"cancel requested for run {run.id}")
        if args.wait:
            run = lifecycle.wait(settings, run.id)
            print(f"run {run.id} {run.status}")
        return EXIT_OK
    if action == "rerun":
        values = lifecycle.parse_assignments(args.set)
        run = lifecycle.rerun(settings, args.id, values, gpus=args.gpus)
        print(f"launched run {run.id} ({run.task}) from run {args.id}; log: {run.log_path}")
        return _wait_with_progress(settings, run.id) if args.wait else EXIT_OK
    raise UserError(f"unknown runs action {action!r}")


def _queue_places(settings: Settings, runs) -> dict[int, dict]:
    """{run id: {"queue": {"place", "request", "priority", "waits_for"}}} for the queued runs
    waiting for GPUs among `runs` (empty when none waits, without reading the GPUs)."""
    if not any(run.status == "queued" and run.gpu_request for run in runs):
        return {}
    from vtm_tui.core.runs import gpu_queue, lifecycle

    state = gpu_queue.box_state(settings, lifecycle.open_store(settings))
    return {queued.run.run_id: {"queue": {
        "place": queued.placement.place, "request": queued.run.request.describe(),
        "priority": queued.run.priority, "waits_for": list(queued.placement.waits_for)}}
        for queued in state.queue}


def _show_logs(args_settings: Settings, args) -> int:
    from vtm_tui.core.runs import lifecycle

    run = lifecycle.get_run(args_settings, args.id)
    for line in lifecycle.tail_lines(run.log_path, args.lines):
        print(line)
    if not args.follow:
        return EXIT_OK
    try:
        with open(run.log_path, "rb") as handle:
            handle.seek(0, 2)
            while True:
                chunk = handle.read(1 << 16)
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                    continue
                if not lifecycle.get_run(args_settings, run.id).active:
                    sys.stdout.write(handle.read().decode("utf-8", "replace"))
                    return EXIT_OK
                time.sleep(0.3)
    except KeyboardInterrupt:
        return EXIT_OK


def register(sub) -> None:
    launch = sub.add_parser("launch", help="start a catalog task")
    launch.add_argument("task", help="taskType from the catalog")
    launch.add_argument("--set", action="append", metavar="NAME=VALUE", help="set a form field (repeatable)")
    launch.add_argument("--gpus", metavar="LIST",
                        help="exactly these GPUs, e.g. 0,2 (the run waits in the GPU queue until they are free); "
                        "cpu: no GPU")
    launch.add_argument("--num-gpus", metavar="N", help="any N free GPUs (vtm picks; the run waits until N are free)")
    launch.add_argument("--priority", type=int, default=0,
                        help="place in the GPU queue: higher goes first, equal ones first come first served")
    launch.add_argument("--engine", choices=["local", "slurm"], help="where to run (default: the task's runner.engine)")
    launch.add_argument("--wait", action="store_true",
                        help="follow progress until the run ends; exit 0 only if it succeeded")
    launch.add_argument("--json", action="store_true", help="print the run record as JSON")
    launch.add_argument("--no-tracking", action="store_true",
                        help="MLflow off for this run (TensorBoard on; what MLflow would get is spooled in the "
                        "run's folder for `vtm mlflow sync RUN`); no check of the tracking server")

    runs = sub.add_parser("runs", help="list and manage runs")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--limit", type=int, default=None)
    runs_sub = runs.add_subparsers(dest="runs_action", metavar="ACTION")
    show = runs_sub.add_parser("show", help="one run's record")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    logs = runs_sub.add_parser("logs", help="a run's output")
    logs.add_argument("id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    logs.add_argument("--lines", "-n", type=int, default=200, help="how many last lines (0: all)")
    cancel = runs_sub.add_parser("cancel", help="cancel a run (SIGINT, SIGTERM, SIGKILL to its processes)")
    cancel.add_argument("id")
    cancel.add_argument("--wait", action="store_true", help="wait until it has stopped")
    rerun = runs_sub.add_parser("rerun", help="launch again with a run's arguments, some changed")
    rerun.add_argument("id")
    rerun.add_argument("--set", action="append", metavar="NAME=VALUE")
    rerun.add_argument("--gpus", metavar="LIST")
    rerun.add_argument("--wait", action="store_true")
    launch.set_defaults(handler=cmd_launch)
    runs.set_defaults(handler=cmd_runs)
