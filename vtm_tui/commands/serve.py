"""`vtm serve native|ls|stop [--all]` and `vtm predict [TARGET]`: MLflow native serving first, the
registry bundle with the local loader as fallback. TARGET follows core/serving/targets.py, the
grammar the Serving tab's target field follows too."""
from __future__ import annotations

from vtm_tui.commands import EXIT_OK, print_json
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


def cmd_serve(args, settings: Settings) -> int:
    from vtm_tui.core.serving import native

    if args.serve_action == "native":
        record = native.start_native(settings, args.model_uri, port=args.port)
        if args.json:
            print_json(record.to_json())
        else:
            print(f"serving {record.model_uri} at {record.url} (server {record.id}, pid {record.pid})")
        return EXIT_OK
    if args.serve_action == "ls":
        records = native.list_servers(settings, include_stopped=args.all)
        if args.json:
            print_json([record.to_json() for record in records])
        elif not records:
            print("no model servers running: start one with `vtm serve native MODEL_URI`")
        else:
            for record in records:
                print(f"{record.id:>3}  {record.status:<8} {record.url:<24} {record.model_uri}")
        return EXIT_OK
    if args.all == bool(args.id):
        raise UserError("give a server id (see `vtm serve ls`) or --all, not both")
    records = native.stop_all(settings) if args.all else [native.stop_server(settings, args.id)]
    for record in records:
        print(f"model server {record.id} {record.status} ({record.model_uri} at {record.url})")
    if args.all and not records:
        print("no model servers running")
    return EXIT_OK


class _CountLine:
    """`predict 120/640 samples` on stderr, redrawn in place on a terminal only (a batch)."""

    def __init__(self) -> None:
        import sys

        self.stream = sys.stderr
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total > 1 and self.stream.isatty():
            width = 30
            bar = "#" * (width * done // total)
            self.stream.write(f"\r\x1b[2Kpredict [{bar:<{width}}] {done}/{total} samples")
            self.stream.flush()
            self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def cmd_predict(args, settings: Settings) -> int:
    from vtm_tui.core.serving.fallback import predict_target
    from vtm_tui.core.serving.predict_io import parse_shape
    from vtm_tui.core.serving.targets import ModelTarget, ServerTarget, parse_target

    shape = parse_shape(args.shape)
    if args.target:
        if args.stage is not None or args.version is not None:
            raise UserError("a TARGET carries its stage and version (NAME@STAGE:VERSION): "
                            "--stage and --version go with --model")
        target = parse_target(args.target)
    elif args.url:
        target = ServerTarget(args.url)
    elif args.model:
        target = ModelTarget(args.model, args.stage or "release", args.version or "latest")
    else:
        raise UserError("give --url URL (a running model server) or --model NAME (the registry)")
    progress = _CountLine()
    try:
        result = predict_target(settings, target, source=args.input, random=args.random, native=args.native,
                                top_k=args.top_k, mask_path=args.mask, registry=args.registry, shape=shape,
                                task_type=args.task_type, outputs_path=args.save_outputs,
                                predict_progress=progress, trust_torchscript=args.trust_torchscript)
    finally:
        progress.end()
    if args.json:
        print_json(result.to_json())
    else:
        print("\n".join(result.lines()))
    return EXIT_OK


def register(sub) -> None:
    serve = sub.add_parser("serve", help="MLflow native model servers")
    serve_sub = serve.add_subparsers(dest="serve_action", metavar="ACTION", required=True)
    native = serve_sub.add_parser("native", help="start `mlflow models serve` for a model, detached")
    native.add_argument("model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH")
    native.add_argument("--port", type=int, help="port on 127.0.0.1 (default 5002)")
    native.add_argument("--json", action="store_true")
    listing = serve_sub.add_parser("ls", help="model servers started by vtm")
    listing.add_argument("--all", action="store_true", help="include stopped ones")
    listing.add_argument("--json", action="store_true")
    stop = serve_sub.add_parser("stop", help="stop a model server, or all of them")
    stop.add_argument("id", nargs="?", help="the server's id (vtm serve ls)")
    stop.add_argument("--all", action="store_true", help="stop every model server vtm started")
    serve.set_defaults(handler=cmd_serve)

    predict = sub.add_parser("predict", help="predict with a served model, or locally from the registry")
    target = predict.add_mutually_exclusive_group()
    target.add_argument("target", nargs="?", metavar="TARGET",
                        help="http://HOST:PORT (a model server), models:/NAME@ALIAS or NAME@STAGE[:VERSION] "
                             "(native server if running, or --native, else the registry bundle), "
                             "models:/NAME/VERSION or runs:/RUN_ID/PATH (a running server for it), "
                             "or a local model file / pulled folder (./model-standard.pt2), run here")
    target.add_argument("--url", help="a model server, e.g. http://127.0.0.1:5002")
    target.add_argument("--model", help="registry model name: native server if running (or --native), else local")
    predict.add_argument("--stage", choices=["dev", "release"], help="with --model (default: release)")
    predict.add_argument("--version", help="with --model: latest (default) or a version number")
    predict.add_argument("--native", action="store_true",
                         help="serve natively through MLflow (models:/NAME@STAGE) when possible")
    predict.add_argument("--registry", help="registry URL (default: VTM_REGISTRY_URL or the local folder)")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--input", help="an image (PNG/JPEG), a folder of images, or a .npy / .pt array "
                                        "(C,H,W or a batch N,C,H,W)")
    source.add_argument("--random", action="store_true", help="a random input of the model's shape")
    predict.add_argument("--shape", help="C,H,W of the input, for a server, model file or registry bundle "
                                         "that cannot tell")
    predict.add_argument("--task-type", choices=["classification", "segmentation"],
                         help="how to read a server's outputs (default: from their shape)")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--mask", help="segmentation: where to write the PNG mask (a folder for a batch)")
    predict.add_argument("--save-outputs", metavar="FILE.npy", help="also write the raw model outputs as .npy")
    predict.add_argument("--trust-torchscript", action="store_true",
                         help="allow a TorchScript file (torch.jit.load runs its code: only files you trust)")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=cmd_predict)
