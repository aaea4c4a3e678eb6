"""The serving order of the original system: MLflow native serving first; when that cannot
work, the registry bundle, verified, loaded with the local loader and run here.

`predict_target` is the one entry for a target (targets.py); every Prediction says which path
served it and why the other was skipped.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vtm_tui.core.serving.inputs import load_inputs
from vtm_tui.core.serving.predict_io import Prediction, summarize, summarize_chunks
from vtm_tui.core.serving.targets import FileTarget, ModelTarget, PinnedTarget, ServerTarget, Target, parse_target
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings


def _task_from_outputs(outputs) -> str:
    import numpy as np

    return "classification" if np.asarray(outputs).ndim == 2 else "segmentation"


def _saved_outputs(chunks: Iterable, path: str | None, total: int) -> Iterator:
    """Pass output chunks through, writing them when a path was given into a .npy of `total`
    samples (numpy.lib.format.open_memmap, float32), chunk by chunk, through a .part file that
    takes the final name only once every chunk is in (removed when the prediction fails)."""
    if not path:
        yield from chunks
        return
    import numpy as np
    from numpy.lib.format import open_memmap

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    stored, done = None, 0
    try:
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float32)
            if stored is None:
                stored = open_memmap(partial, mode="w+", dtype=np.float32, shape=(total, *chunk.shape[1:]))
            stored[done:done + len(chunk)] = chunk
            done += len(chunk)
            yield chunk
        if stored is not None:
            stored.flush()
            del stored
            partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _save_outputs(outputs, path: str | None) -> None:
    """Write the raw outputs (one array) as a .npy (through a .part file) when a path was given."""
    for _ in _saved_outputs([outputs], path, len(outputs)):
        pass


def predict_via_url(settings: Settings, url: str, source: str | None = None, *, random: bool = False,
                    shape: tuple[int, int, int] | None = None, task_type: str | None = None,
                    top_k: int = 3, mask_path: str | None = None, class_names: list[str] | None = None,
                    model_uri: str | None = None, tracking_uri: str | None = None,
                    outputs_path: str | None = None) -> Prediction:
    """Send one input to the model server at `url` (its /invocations) and read its answer.

    shape (C, H, W) of the input: given, else the server's record, else the signature of
    model_uri on the tracking server (tracking_uri, default: resolve_tracking_uri without
    starting anything); UserError when none tells. task_type: default from the outputs' shape."""
    from vtm_tui.core.serving import native
    from vtm_tui.core.tracking.uri import resolve_tracking_uri

    for record in native.list_servers(settings) if shape is None else []:
        if record.url == url.rstrip("/") and record.input_shape:
            shape = tuple(int(dim) for dim in record.input_shape.split(","))
    if shape is None and model_uri:
        shape = native.served_input_shape(model_uri, resolve_tracking_uri(settings, tracking_uri, start=False))
    if shape is None:
        raise UserError("cannot tell the model's input shape: give --shape C,H,W (e.g. 3,32,32)")
    inputs = load_inputs(source, shape, random=random)
    outputs = native.predict_url(url, inputs.array)
    _save_outputs(outputs, outputs_path)
    result = summarize(task_type or _task_from_outputs(outputs), outputs, class_names, top_k=top_k,
                       mask_path=mask_path, names=inputs.names)
    return dataclasses.replace(result, served_by="native", source=url, skipped=[])


def predict_program(program, source: str | None, *, random: bool = False, top_k: int = 3,
                    mask_path: str | None = None, outputs_path: str | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    cancel: threading.Event | None = None, batch_size: int | None = None) -> Prediction:
    """Run a loaded program (core.standard LoadedProgram) here on `source`, preprocessed by its
    spec, batch_size samples at a time (default: the loader's PREDICT_BATCH): each chunk is read,
    predicted, summarized and written (masks, outputs_path) before the next is read;
    progress(samples done, total) follows the batch. served_by "local", with the program."""
    from vtm_tui.core.standard.loader import PREDICT_BATCH

    spec = program.spec
    inputs = load_inputs(source, spec.input_shape, spec=spec, random=random)
    outputs = program.predict_chunks(inputs.chunks(batch_size or PREDICT_BATCH), len(inputs), progress=progress,
                                     cancel=cancel)
    result = summarize_chunks(spec.task_type, _saved_outputs(outputs, outputs_path, len(inputs)), spec.class_names,
                              top_k=top_k, mask_path=mask_path, output_kind=spec.output_kind, names=inputs.names)
    return dataclasses.replace(result, served_by="local", program={**program.to_json(), "spec_line": spec.describe()})


def _native(settings: Settings, model_uri: str, start: bool) -> tuple[str | None, str]:
    """(url of a server for model_uri, or None; why native was skipped)."""
    from vtm_tui.core.serving import native

    for record in native.list_servers(settings):
        if record.model_uri == model_uri and record.status == "up":
            return record.url, ""
    if not start:
        return None, (f"native: no running model server for {model_uri} "
                      "(start one with `vtm serve native` or pass --native)")
    try:
        return native.start_native(settings, model_uri).url, ""
    except UserError as exc:
        return None, f"native: {exc}"


def predict_model(settings: Settings, model: str, *, stage: str = "release", version="latest",
                  native: bool = False, source: str | None = None, random: bool = False,
                  top_k: int = 3, mask_path: str | None = None, registry: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None, interactive: bool | None = None,
                  outputs_path: str | None = None,
                  predict_progress: Callable[[int, int], None] | None = None,
                  trust_torchscript: bool = False, shape: tuple[int, int, int] | None = None) -> Prediction:
    """Predict with registry model `model` in `stage`: natively when a server for
    models:/MODEL@STAGE runs (or `native` can start one), else from the registry bundle with the
    local loader (trust_torchscript: a TorchScript bundle may be loaded, which runs its code;
    shape (C, H, W): for a bundle that does not say).
    A pinned `version` (not "latest") is always the registry bundle's."""
    skipped = []
    if version == "latest":
        model_uri = f"models:/{model}@{stage}"
        url, why = _native(settings, model_uri, native)
        if url:
            try:
                return predict_via_url(settings, url, source, random=random, top_k=top_k, mask_path=mask_path,
                                       model_uri=model_uri, outputs_path=outputs_path)
            except UserError as exc:
                why = f"native: {url} failed: {exc}"
        skipped.append(why)
    else:
        skipped.append("native: serving follows MLflow aliases; a pinned registry version is "
                       "served from the registry bundle")
    return predict_from_registry(settings, model, stage=stage, version=version, source=source,
                                 random=random, top_k=top_k, mask_path=mask_path, registry=registry,
                                 progress=progress, cancel=cancel, skipped=skipped,
                                 interactive=interactive, outputs_path=outputs_path,
                                 predict_progress=predict_progress, trust_torchscript=trust_torchscript,
                                 shape=shape)


def predict_from_registry(settings: Settings, model: str, *, stage: str, version, source, random,
                          top_k: int, mask_path, registry, progress=None, cancel=None,
                          skipped: list[str] | None = None, interactive: bool | None = None,
                          outputs_path: str | None = None, predict_progress=None,
                          trust_torchscript: bool = False,
                          shape: tuple[int, int, int] | None = None) -> Prediction:
    """Pull (verify, cache in <VTM_HOME>/cache) and run a registry version here with the local
    loader (its standard program first: core/standard/loader.py; a TorchScript bundle only with
    trust_torchscript, since torch.jit.load runs its code).

    progress(bytes done, total) follows the download, predict_progress(samples done, total) a
    batch; setting `cancel` stops either. interactive=False: never prompt for an FTP password
    (the TUI owns the terminal)."""
    from vtm_tui.core.registry import open_registry
    from vtm_tui.core.standard.loader import load_program

    cache = settings.home / "cache"
    with open_registry(settings, registry, interactive=interactive) as reg:
        pulled = reg.pull(model, stage, version, dest=cache, progress=progress, cancel=cancel)
    program = load_program(pulled.path, trust_torchscript=trust_torchscript, input_shape=shape)
    result = predict_program(program, source, random=random, top_k=top_k, mask_path=mask_path,
                             outputs_path=outputs_path, progress=predict_progress, cancel=cancel)
    return dataclasses.replace(result, skipped=skipped or [],
                               source=f"registry {model}/{stage}/v{pulled.version}, {program.path.name} "
                                      f"on {program.device}")


def predict_file(path: str, *, source: str | None = None, random: bool = False, top_k: int = 3,
                 mask_path: str | None = None, shape: tuple[int, int, int] | None = None,
                 trust_torchscript: bool = False, outputs_path: str | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: threading.Event | None = None) -> Prediction:
    """Run a local model file or pulled bundle folder here (a .pt2 program, a TorchScript file
    when trusted, a v1 file or vtm checkpoint); shape (C, H, W) for one that does not say."""
    from vtm_tui.core.standard.loader import load_program

    program = load_program(path, trust_torchscript=trust_torchscript, input_shape=shape)
    result = predict_program(program, source, random=random, top_k=top_k, mask_path=mask_path,
                             outputs_path=outputs_path, progress=progress, cancel=cancel)
    return dataclasses.replace(result, source=f"file {path}, on {program.device}")


def predict_target(settings: Settings, target: str | Target, *, source: str | None = None, random: bool = False,
                   native: bool = False, top_k: int = 3, mask_path: str | None = None, registry: str | None = None,
                   shape: tuple[int, int, int] | None = None, task_type: str | None = None,
                   progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
                   interactive: bool | None = None, outputs_path: str | None = None,
                   predict_progress: Callable[[int, int], None] | None = None,
                   trust_torchscript: bool = False) -> Prediction:
    """One prediction for a target (a string in the grammar of targets.py, or a parsed Target):

    - ServerTarget: that server's /invocations (shape, task_type as for predict_via_url);
    - ModelTarget: predict_model (a running native server for models:/NAME@STAGE, started first
      with `native`, else the registry bundle: registry URL, progress, cancel, interactive);
    - PinnedTarget: only a running server for exactly that URI, else UserError (serve it first);
    - FileTarget: predict_file (shape, trust_torchscript; a ModelTarget's bundle takes both too).

    source: an input (image, folder of images, .npy, .pt; inputs.py), or None with random=True for
    random data of the model's input shape; mask_path: where a segmentation mask PNG goes (a
    folder for a batch); outputs_path: a .npy for the raw outputs; predict_progress(samples
    done, total) follows a local batch."""
    from vtm_tui.core.serving import native as servers

    target = parse_target(target) if isinstance(target, str) else target
    common = dict(random=random, top_k=top_k, mask_path=mask_path, outputs_path=outputs_path)
    if isinstance(target, FileTarget):
        return predict_file(target.path, source=source, shape=shape, trust_torchscript=trust_torchscript,
                            progress=predict_progress, cancel=cancel, **common)
    if isinstance(target, ServerTarget):
        return predict_via_url(settings, target.url, source, shape=shape, task_type=task_type, **common)
    if isinstance(target, PinnedTarget):
        for record in servers.list_servers(settings):
            if record.model_uri == target.uri and record.status == "up":
                return predict_via_url(settings, record.url, source, shape=shape, task_type=task_type,
                                       model_uri=target.uri, **common)
        raise UserError(f"{target.uri} is not being served: serve it first (`vtm serve native {target.uri}`, or "
                        "ctrl+s in the Serving tab), or predict with an alias (models:/NAME@ALIAS), which falls "
                        "back to the registry")
    assert isinstance(target, ModelTarget)
    return predict_model(settings, target.name, stage=target.stage, version=target.version, native=native,
                         source=source, registry=registry, progress=progress, cancel=cancel,
                         interactive=interactive, predict_progress=predict_progress,
                         trust_torchscript=trust_torchscript, shape=shape, **common)
