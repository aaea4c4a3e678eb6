"""`vtm import-tb`: TensorBoard event logs -> MLflow. The same flags work as
`python -m vtm_tui.tb_import` (the original migration command)."""
from __future__ import annotations

import signal
import sys
import threading
import time

from vtm_tui.commands import EXIT_FAILED, EXIT_OK, print_json
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


def add_arguments(parser) -> None:
    parser.add_argument("--tensorboard-dir", required=True, metavar="DIR",
                        help="a TensorBoard log directory; every directory below it that holds "
                             "event files becomes one MLflow run")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else vtm's "
                             "embedded server, started when needed)")
    parser.add_argument("--experiment-name", metavar="NAME",
                        help="MLflow experiment (default: VTM_EXPERIMENT_NAME or void-train-manager)")
    parser.add_argument("--run-name", metavar="NAME",
                        help="name of the run (one event directory) or of the parent run (several)")
    parser.add_argument("--flatten-tags", action="store_true",
                        help="turn '/' in tag names into '_' (train/loss -> train_loss)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="log_batch requests in flight (default 4 for a tracking server)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


class ProgressBar:
    """points, percent of the estimate and points/s on one redrawn stderr line."""

    def __init__(self, stream=sys.stderr, width: int = 24):
        self.stream, self.width = stream, width
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        filled = round(fraction * self.width)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(f"\r\x1b[2K[{'#' * filled}{'-' * (self.width - filled)}] {fraction:4.0%} "
                          f"{done:,}/{total:,} points {rate:,.0f} points/s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def cmd_import_tb(args, settings: Settings) -> int:
    from vtm_tui.core.tensorboard import format_report, import_tensorboard

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    cancel = threading.Event()

    def on_sigint(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\nstopping after the batches in flight (Ctrl-C again to abort; a later import "
              "resumes either way)", file=sys.stderr)

    previous = None
    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        pass
    bar = ProgressBar() if sys.stderr.isatty() else None
    try:
        report = import_tensorboard(
            args.tensorboard_dir, tracking_uri=args.tracking_uri,
            experiment_name=args.experiment_name or settings.experiment_name,
            run_name=args.run_name, flatten_tags=args.flatten_tags, on_progress=bar,
            cancel=cancel, settings=settings, workers=args.workers)
    finally:
        if bar:
            bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(format_report(report)))
    for problem in report.problems:
        print(f"import-tb: {problem}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def register(sub) -> None:
    parser = sub.add_parser("import-tb", help="import TensorBoard event logs into MLflow",
                            description="Import every scalar point (and hparams) of TensorBoard "
                            "event logs into MLflow, one run per event directory. Importing again "
                            "adds only what is new; an interrupted import resumes.")
    add_arguments(parser)
    parser.set_defaults(handler=cmd_import_tb)
