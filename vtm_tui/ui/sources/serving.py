"""What the Serving tab reads and does outside the UI, as plain blocking functions: the models it
can serve and predict with (MLflow aliases, registry entries), and vtm's model servers.

The tab calls these from worker threads only. They are gathered in one `ServingSources` (a field
of `Sources`) so the snapshot test and the screenshot script can pin them (see
`vtm_tui/ui/demo/pinned_serving.py`): a picture must not depend on a tracking server, a registry
or a model server being there.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vtm_tui.settings import Settings

if TYPE_CHECKING:
    from vtm_tui.core.serving.native import ServerRecord
    from vtm_tui.core.serving.predict_io import Prediction

TOP_K = 5  # classification rows the predict card shows; the example models have five classes


@dataclass(frozen=True)
class ModelChoice:
    """One servable MLflow model: `models:/NAME@ALIAS`, or `models:/NAME/VERSION` for a
    registered model that has no alias yet."""
    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        return f"{self.uri}  v{self.version}" if self.alias else self.uri


@dataclass
class Catalogue:
    """What can be served and predicted with: MLflow aliases, registry `NAME@STAGE` entries,
    and why either list could not be read (None: it was)."""
    models: list[ModelChoice]
    registry: list[str]
    tracking_uri: str | None = None
    models_error: str | None = None
    registry_error: str | None = None


def list_models(settings: Settings) -> tuple[str, list[ModelChoice]]:
    """(tracking URI, every registered model's aliases), sorted by name then alias. Opening the
    tab never starts vtm's embedded server (serving a model does, like launching a run)."""
    from vtm_tui.core.tracking.uri import open_tracking

    tracking = open_tracking(settings, start=False)
    found, token = [], None
    while True:
        with tracking.calling("list registered models"):
            page = tracking.client.search_registered_models(max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            break
    choices = []
    for model in sorted(found, key=lambda m: m.name):
        aliases = dict(model.aliases or {})
        if aliases:
            choices += [ModelChoice(model.name, str(version), alias) for alias, version in sorted(aliases.items())]
        else:
            versions = [int(v.version) for v in model.latest_versions or [] if str(v.version).isdigit()]
            if versions:
                choices.append(ModelChoice(model.name, str(max(versions))))
    return tracking.display_uri, choices


def list_registry(settings: Settings) -> list[str]:
    """`NAME@STAGE` for every stage of every registry model that has a committed version."""
    from vtm_tui.core.registry import open_registry

    entries = []
    # Never prompt for an FTP password here: the terminal belongs to the TUI.
    with open_registry(settings, interactive=False) as reg:
        for model in reg.list_models():
            entries += [f"{model}@{stage}" for stage in reg.list_stages(model)
                        if reg.latest(model, stage) is not None]
    return entries


def read_catalogue(settings: Settings) -> Catalogue:
    from vtm_tui.errors import error_text

    catalogue = Catalogue([], [])
    try:
        catalogue.tracking_uri, catalogue.models = list_models(settings)
    except Exception as exc:
        catalogue.models_error = error_text(exc)
    try:
        catalogue.registry = list_registry(settings)
    except Exception as exc:
        catalogue.registry_error = error_text(exc)
    return catalogue


def list_servers(settings: Settings) -> list[ServerRecord]:
    from vtm_tui.core.serving.native import list_servers as listed

    return listed(settings)


def start_server(settings: Settings, model_uri: str, port: int | None) -> ServerRecord:
    from vtm_tui.core.serving.native import start_native

    return start_native(settings, model_uri, port)


def stop_server(settings: Settings, server_id: int) -> ServerRecord:
    from vtm_tui.core.serving.native import stop_server as stop

    return stop(settings, server_id)


def predict(settings: Settings, target: str, *, source: str | None, native: bool,
            mask_path: str | None = None, progress: Callable[[int, int], None] | None = None,
            cancel: threading.Event | None = None) -> Prediction:
    """One prediction for the predict card's target, in core's target grammar (the one
    `vtm predict TARGET` takes, core/serving/targets.py); no input file: random data. Never
    prompts for an FTP password: the terminal belongs to the TUI."""
    from vtm_tui.core.serving.fallback import predict_target

    return predict_target(settings, target, source=source, random=source is None, native=native, top_k=TOP_K,
                          mask_path=mask_path, progress=progress, cancel=cancel, interactive=False)


@dataclass(frozen=True)
class ServingSources:
    catalogue: Callable[[Settings], Catalogue] = read_catalogue
    servers: Callable[[Settings], list] = list_servers
    start: Callable[[Settings, str, int | None], object] = start_server
    stop: Callable[[Settings, int], object] = stop_server
    predict: Callable[..., Prediction] = predict
