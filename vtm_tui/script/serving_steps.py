"""`--script` steps for serving: `serve`, `predict`, `stop`.

    steps:
      - serve: {model_uri: "models:/classification-best-model@release", port: 5002, as: api}
      - predict: {url: api, random: true}                  # a `serve` label or a URL
      - predict: {model: classification-best-model, stage: release, input: cat.png, native: true}
      - stop: api
"""
from __future__ import annotations

SERVE_KEYS = {"model_uri", "port", "as"}
PREDICT_KEYS = {"url", "model", "stage", "version", "native", "input", "random", "shape", "top_k",
                "mask", "registry", "expect_served_by"}


def _server_ref(ctx, ref) -> str:
    from vtm_tui.script.context import StepFailed

    servers = ctx.servers
    if ref in servers:
        return servers[ref]
    if str(ref).isdigit():
        return str(ref)
    raise StepFailed(f"unknown server reference {ref!r} (an earlier serve step's `as`, or an id)", 2)


def step_serve(ctx, spec) -> None:
    from vtm_tui.core.serving import native
    from vtm_tui.script.context import step_spec

    spec = step_spec(spec, "model_uri", SERVE_KEYS, {"modelUri": "model_uri"})
    record = native.start_native(ctx.settings, str(spec.get("model_uri")), port=spec.get("port"))
    ctx.servers[str(spec.get("as") or record.id)] = str(record.id)
    ctx.log(f"serving {record.model_uri} at {record.url} (server {record.id})")


def step_predict(ctx, spec) -> None:
    from vtm_tui.core.serving import native
    from vtm_tui.core.serving.fallback import predict_target
    from vtm_tui.core.serving.predict_io import parse_shape
    from vtm_tui.core.serving.targets import ModelTarget, ServerTarget
    from vtm_tui.script.context import StepFailed, step_spec

    spec = step_spec(spec, "model", PREDICT_KEYS, {"modelName": "model", "topK": "top_k"})
    if spec.get("url"):
        url = str(spec["url"])
        if not url.startswith("http"):
            url = native.get_server(ctx.settings, _server_ref(ctx, url)).url
        target = ServerTarget(url)
    elif spec.get("model"):
        target = ModelTarget(str(spec["model"]), spec.get("stage") or "release", spec.get("version") or "latest")
    else:
        raise StepFailed("predict needs `url` (a model server or serve label) or `model`", 2)
    result = predict_target(ctx.settings, target, source=spec.get("input"), random=bool(spec.get("random")),
                            native=bool(spec.get("native")), top_k=int(spec.get("top_k") or 3),
                            mask_path=spec.get("mask"), registry=spec.get("registry"),
                            shape=parse_shape(spec.get("shape")) if spec.get("url") else None)
    ctx.log("\n".join(result.lines()))
    expected = spec.get("expect_served_by")
    if expected and result.served_by != expected:
        raise StepFailed(f"served by {result.served_by}, expected {expected}", 1)


def step_stop(ctx, spec) -> None:
    from vtm_tui.core.serving import native
    from vtm_tui.script.context import step_spec

    spec = step_spec(spec, "server", {"server"})
    record = native.stop_server(ctx.settings, _server_ref(ctx, spec.get("server")))
    ctx.log(f"model server {record.id} {record.status}")
