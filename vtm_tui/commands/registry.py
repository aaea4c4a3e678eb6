"""`vtm registry ls|show|publish|publish-best|promote|pull`: the model registry."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from contextlib import contextmanager

from vtm_tui.commands import EXIT_OK, print_json
from vtm_tui.commands.convert_args import add_convert_arguments, conversion_lines, request_from_args
from vtm_tui.core.formatting import format_megabytes, format_rate
from vtm_tui.settings import Settings

EXIT_INTERRUPTED = 130


def _model_block(settings: Settings, model: str, *, quiet: bool):
    """The conversion defaults of the catalog task whose `model:` block publishes to `model`
    (mlflow.modelName), as publish-best and the Registry tab take them; None when none does. The
    options given win over the block. A catalog that cannot be read is said in one line on stderr
    and left out: publishing a file never needs it."""
    from vtm_tui.core.catalog import load_catalog
    from vtm_tui.errors import UserError, error_text

    try:
        block = load_catalog(settings.catalog_path).model_block_for(model)
    except UserError as exc:
        print(f"vtm: note: catalog not read, no model: block applied: {error_text(exc)}", file=sys.stderr)
        return None
    if block is not None and not quiet:
        print(f"vtm: spec options not given are taken from {settings.catalog_path}'s model: block for "
              f"'{model}'", file=sys.stderr)
    return block


class _ProgressLine:
    """`label 45% 90.0/200.0 MB 310 MB/s` on stderr, redrawn in place on a terminal only."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and (total is None or done < total)):
            return
        self.last = now
        rate = format_rate(done / max(now - self.started, 1e-6), digits=0)
        part = f"{done / total:4.0%} {format_megabytes(done, total)}" if total else format_megabytes(done)
        sys.stderr.write(f"\r\x1b[2K{self.label} {part} {rate}")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


@contextmanager
def _cancel_on_ctrl_c():
    """First Ctrl-C cancels the transfer cleanly (temporary files removed); a second one aborts."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        sys.stderr.write("\ncancelling (Ctrl-C again to abort at once)...\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_ls(args, settings: Settings, registry) -> int:
    if args.model and args.stage:
        infos = registry.list_versions(args.model, args.stage)
        if args.json:
            pointer = registry.latest_pointer(args.model, args.stage)
            print_json({"registry": registry.url, "model": args.model, "stage": args.stage,
                        "latest": next((i.version for i in infos if i.latest), None),
                        "latest_pointer": pointer, "versions": [i.to_json() for i in infos],
                        "warnings": _shown_warnings(registry)})
            return EXIT_OK
        if not infos:
            print(f"{args.model}/{args.stage}: no versions in {registry.url}")
            return EXIT_OK
        print(f"{'VERSION':>7}  {'CREATED':<20} {'SIZE':>9}  {'SHA256':<12}  {'METRIC':<24} SOURCE")
        for info in infos:
            m = info.manifest
            metric = f"{m.metric.get('name')}={m.metric.get('value'):.4g}" if m.metric and isinstance(
                m.metric.get("value"), (int, float)) else "-"
            print(f"{str(info.version) + (' *' if info.latest else ''):>7}  {m.created:<20} "
                  f"{format_megabytes(m.bundle_size):>9}  {m.bundle_sha256[:12]:<12}  {metric:<24} {_source(m.source)}")
        print("* latest")
        return EXIT_OK
    models = [args.model] if args.model else registry.list_models()
    data = []
    for model in models:
        stages = {stage: registry.stage_summary(model, stage) for stage in registry.list_stages(model)}
        data.append({"model": model, "stages": stages})
    if args.model and not data[0]["stages"] and not args.json:
        print(f"{args.model}: no such model in {registry.url}")
        return EXIT_OK
    if args.json:
        print_json({"registry": registry.url, "models": data, "warnings": _shown_warnings(registry)}
                   if not args.model else {"registry": registry.url, **data[0], "warnings": _shown_warnings(registry)})
        return EXIT_OK
    if not data:
        print(f"no models in {registry.url} yet: publish one with `vtm registry publish FILE --model NAME`")
        return EXIT_OK
    print(f"{'MODEL':<32} {'STAGE':<8} {'VERSIONS':>8} {'LATEST':>6}")
    for entry in data:
        for stage, summary in entry["stages"].items():
            print(f"{entry['model']:<32} {stage:<8} {len(summary['versions']):>8} "
                  f"{summary['latest'] if summary['latest'] is not None else '-':>6}")
    return EXIT_OK


def _shown_warnings(registry) -> list[str]:
    """The registry's warnings for --json, printed on stderr as well."""
    warnings = registry.take_warnings()
    _print_warnings(warnings)
    return warnings


def _source(source: dict) -> str:
    kind = source.get("type")
    if kind == "mlflow_run":
        return f"mlflow run {source.get('run_id')}"
    if kind == "promotion":
        return f"promoted from {source.get('from_stage')}/{source.get('from_version')}"
    if kind == "file":
        return f"file {source.get('file_name')}"
    return str(kind or "-")


def cmd_registry(args, settings: Settings) -> int:
    from vtm_tui.core.registry import Cancelled, open_registry

    try:
        with _cancel_on_ctrl_c() as cancel, open_registry(settings, args.registry) as registry:
            try:
                return _dispatch(args, settings, registry, cancel)
            finally:
                _print_warnings(registry.take_warnings())
    except Cancelled:
        print("vtm: cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED


def _print_warnings(warnings: list[str]) -> None:
    """What reading the registry had to skip (unreadable listing entries, bad manifests)."""
    for warning in warnings:
        print(f"vtm: warning: {warning}", file=sys.stderr)


def _dispatch(args, settings: Settings, registry, cancel) -> int:
    action = args.registry_action
    if action == "ls":
        return _print_ls(args, settings, registry)
    if action == "show":
        manifest = registry.read_manifest(args.model, args.stage, args.version)
        if args.json:
            print_json(manifest.to_json())
        else:
            for key, value in manifest.to_json().items():
                print(f"{key:>14}: {value}")
        return EXIT_OK
    progress = _ProgressLine(action)
    try:
        if action == "publish":
            from vtm_tui.core.registry.mlflow_models import is_mlflow_uri, publish_logged_model

            request = request_from_args(args, settings, task_type=args.task)
            if args.convert_standard or is_mlflow_uri(args.file):
                request = request.merged(_model_block(settings, args.model, quiet=args.json))
            if is_mlflow_uri(args.file):
                result = publish_logged_model(
                    registry, settings, args.file, args.model, args.stage, request=request, version=args.version,
                    set_latest=args.set_latest, tracking_uri=args.tracking_uri, progress=progress, cancel=cancel)
            else:
                if _gives_spec(args) and not args.convert_standard:
                    raise _usage("the model spec options (--arch, --input-shape, ...) go with --convert-standard")
                result = registry.publish_file(
                    args.file, args.model, args.stage, version=args.version, set_latest=args.set_latest,
                    convert_standard=args.convert_standard, request=request, progress=progress, cancel=cancel)
        elif action == "publish-best":
            from vtm_tui.core.registry.publish_best import publish_best
            from vtm_tui.core.tracking.best import NoEligibleRun

            try:
                result = publish_best(
                    registry, settings, task=args.task, stage=args.stage, experiment=args.experiment_name,
                    metric=args.metric, mode=args.mode, model=args.model, artifact_path=args.artifact_path,
                    filter=args.filter, set_latest=args.set_latest, convert_standard=args.convert_standard,
                    tracking_uri=args.tracking_uri, request=request_from_args(args, settings),
                    progress=progress, cancel=cancel)
            except NoEligibleRun as exc:  # a UserError (exit code 1); --json also gets the counts on stdout
                if args.json:
                    progress.end()
                    print_json(exc.to_json())
                raise
        elif action == "promote":
            result = registry.promote(args.model, args.version, args.from_stage, args.to_stage,
                                      set_latest=args.set_latest, progress=progress, cancel=cancel)
        elif action == "pull":
            result = registry.pull(args.model, args.stage, args.version, args.dest, progress=progress,
                                   cancel=cancel, keep_bundle=args.keep_bundle)
        else:
            raise _usage(f"unknown registry action {action!r}")
    finally:
        progress.end()
    if args.json:
        print_json(result.to_json())
    else:
        best = getattr(result, "extra", {}).get("best_run")
        if best:
            print(f"best run {best['run_id']} ({best['run_name']}) in experiment {best['experiment']!r}: "
                  f"{best['metric']} = {best['value']:.6g} ({best['mode']})")
        print(result.summary())
        if action in ("publish", "publish-best") and result.created:
            for line in conversion_lines(result.manifest) + [f"note: {n}" for n in result.extra.get("notes", [])]:
                print(line)
    return EXIT_OK


def _gives_spec(args) -> bool:
    return any(getattr(args, name, None) for name in (
        "arch", "arch_kwargs", "input_shape", "class_names", "mean", "std", "channel_order", "resize",
        "output_key", "output_kind", "trust_torchscript"))


def _usage(message: str):
    from vtm_tui.core.registry import RegistryUsageError

    return RegistryUsageError(message)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def register(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="URL",
                        help="ftp://user@host:port/path, ftps://..., file:///path or a folder "
                             "(default: VTM_REGISTRY_URL, else <VTM_HOME>/registry)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")

    registry = sub.add_parser("registry", help="the model registry: publish, promote, browse, pull",
                              description="A model registry with dev and release stages on an FTP "
                              "server or in a folder. FTP passwords: VTM_FTP_PASSWORD, ~/.netrc, or "
                              "a prompt; VTM_FTP_TIMEOUT (seconds, default 30); VTM_FTP_CA_FILE for ftps://.")
    actions = registry.add_subparsers(dest="registry_action", metavar="ACTION", required=True)

    ls = actions.add_parser("ls", parents=[common], help="list models, a model's stages, or a stage's versions")
    ls.add_argument("model", nargs="?")
    ls.add_argument("stage", nargs="?", choices=["dev", "release"])

    show = actions.add_parser("show", parents=[common], help="a version's manifest")
    show.add_argument("model")
    show.add_argument("stage", nargs="?", default="release", choices=["dev", "release"])
    show.add_argument("version", nargs="?", default="latest", help="a number or latest (default)")

    publish = actions.add_parser(
        "publish", parents=[common], help="publish a model file (.pth/.pt/.ckpt/.pt2, TorchScript) or an MLflow model",
        description="Publish a checkpoint (.pth/.pt, Lightning .ckpt), a .pt2 program, a TorchScript file, or an "
                    "MLflow model (runs:/RUN_ID/model, models:/NAME/VERSION: its standard program). "
                    "--convert-standard adds model-standard.pt2, a torch.export program proved against the model.")
    publish.add_argument("file", help="a local file, or runs:/RUN_ID/PATH / models:/NAME/VERSION|@ALIAS")
    publish.add_argument("--model", required=True, help="registry model name (modelName)")
    publish.add_argument("--stage", default="dev", choices=["dev", "release"])
    publish.add_argument("--version", type=_positive_int, help="this version number (default: the next one)")
    publish.add_argument("--set-latest", action="store_true", help="move LATEST to this version")
    publish.add_argument("--convert-standard", action="store_true",
                         help="add model-standard.pt2, a torch.export program (convertToTorchStandard)")
    publish.add_argument("--task", choices=["classification", "segmentation"],
                         help="task type for the conversion (torchTaskType)")
    publish.add_argument("--num-classes", type=_positive_int, help="classes, for the conversion (torchNumClasses)")
    publish.add_argument("--tracking-uri", help="for runs:/ and models:/ sources (default: MLFLOW_TRACKING_URI "
                                                "or vtm's embedded server)")
    add_convert_arguments(publish)

    best = actions.add_parser("publish-best", parents=[common],
                              help="publish the best MLflow run's checkpoint and logged model")
    best.add_argument("--task", help="catalog task: its mlflow metric/mode/modelName are the defaults")
    best.add_argument("--stage", default="dev", choices=["dev", "release"])
    best.add_argument("--experiment-name", help="default: VTM_EXPERIMENT_NAME or void-train-manager")
    best.add_argument("--metric")
    best.add_argument("--mode", choices=["max", "min"])
    best.add_argument("--filter", help="MLflow filter expression for the runs considered")
    best.add_argument("--model", help="registry model name (default: the task's mlflow.modelName)")
    best.add_argument("--artifact-path", help="where the run's .pth/.pt/.ckpt is (default: checkpoints)")
    best.add_argument("--set-latest", action="store_true")
    best.add_argument("--convert-standard", action="store_true",
                      help="convert the checkpoint when the run logged no pt2 model (a logged pt2 model is "
                           "always the bundle's standard program)")
    best.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI or vtm's embedded server")
    add_convert_arguments(best)

    promote = actions.add_parser("promote", parents=[common],
                                 help="copy a verified version to another stage (same sha256)")
    promote.add_argument("model")
    promote.add_argument("version", help="a number or latest")
    promote.add_argument("--from", dest="from_stage", default="dev", choices=["dev", "release"])
    promote.add_argument("--to", dest="to_stage", default="release", choices=["dev", "release"])
    promote.add_argument("--no-set-latest", dest="set_latest", action="store_false",
                         help="leave the target stage's LATEST alone")

    pull = actions.add_parser("pull", parents=[common], help="download, verify and extract a version")
    pull.add_argument("model")
    pull.add_argument("--stage", default="release", choices=["dev", "release"])
    pull.add_argument("--version", default="latest", help="a number or latest (default)")
    pull.add_argument("--dest", default="downloads", help="folder; files land in DEST/MODEL/STAGE/VERSION")
    pull.add_argument("--keep-bundle", action="store_true", help="keep bundle.tar.gz next to the files")
    registry.set_defaults(handler=cmd_registry)
