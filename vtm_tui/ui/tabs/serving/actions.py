"""The Serving tab's predict targets: what a target the predict card names means, and the one
prediction it asks for. Blocking: the predict card calls `predict` from a worker thread (as
`Sources.serving.predict` when that is not pinned). The target grammar is moving into core.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from vtm_tui.errors import UserError
from vtm_tui.settings import Settings
from vtm_tui.ui.sources.serving import list_servers

TOP_K = 5  # classification rows shown; the example models have five classes


def predict(settings: Settings, target: str, *, source: str | None, native: bool,
            mask_path: str | None = None, progress: Callable[[int, int], None] | None = None,
            cancel: threading.Event | None = None) -> dict:
    """One prediction for the predict card's target:

    - `http://HOST:PORT`: that model server's /invocations;
    - `models:/NAME@ALIAS`, `NAME@STAGE` or `NAME` (stage release): a running native server
      for models:/NAME@ALIAS, else (native: after starting one) the registry bundle of NAME in
      that stage, downloaded and run here;
    - `models:/NAME/VERSION`: only a running server for exactly that URI.
    """
    from vtm_tui.core.serving import fallback

    target = target.strip()
    random = source is None
    if target.startswith(("http://", "https://")):
        return fallback.predict_via_url(settings, target, source, random=random, top_k=TOP_K,
                                        mask_path=mask_path)
    name = target.removeprefix("models:/")
    if "@" not in name and "/" in name and target.startswith("models:/"):
        for record in list_servers(settings):
            if record.model_uri == target and record.status == "up":
                return fallback.predict_via_url(settings, record.url, source, random=random, top_k=TOP_K,
                                                mask_path=mask_path, model_uri=target)
        raise UserError(f"{target} is not being served: serve it first (ctrl+s), or predict with an "
                        "alias (models:/NAME@ALIAS), which falls back to the registry")
    model, _, stage = name.partition("@")
    if not model:
        raise UserError(f"target {target!r}: give a URL, models:/NAME@ALIAS or a registry NAME@STAGE")
    return fallback.predict_model(settings, model, stage=stage or "release", native=native, source=source,
                                  random=random, top_k=TOP_K, mask_path=mask_path, progress=progress,
                                  cancel=cancel, interactive=False)  # never prompt on the TUI's terminal
