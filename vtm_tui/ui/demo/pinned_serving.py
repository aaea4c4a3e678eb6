"""The Serving tab's part of the pinned demo world (see `world.py`).

`make_serving_demo(root)` is `make_demo(root)` plus pinned serving sources: MLflow models with
aliases, registry entries (the models of the default catalog, as in `pinned_registry.py`), two
model servers that are "up" (no process behind them), and a prediction that answers at once
with a fixed segmentation result, as the registry fallback would (a download, then the local
loader). Nothing is started and nothing is contacted.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vtm_tui.core.serving.native import ServerRecord
from vtm_tui.errors import UserError
from vtm_tui.settings import Settings
from vtm_tui.ui.demo.world import NOW, TRACKING_URI, make_demo, until
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.sources.serving import Catalogue, ModelChoice, ServingSources

BUNDLE_SIZE = 2_314_752  # bytes of the demo's registry bundle
CLS, SEG = "classification-best-model", "segmentation-best-model"  # the default catalog's models
CLASSES = ["background", "road", "vegetation", "building"]

MODELS = [ModelChoice(SEG, "2", "dev"), ModelChoice(CLS, "6", "dev"), ModelChoice(CLS, "5", "release"),
          ModelChoice(SEG, "1", "staging")]
REGISTRY = [f"{CLS}@dev", f"{CLS}@release", f"{SEG}@dev"]


def _server(server_id: int, model_uri: str, port: int, pid: int, up_for: float) -> ServerRecord:
    return ServerRecord(id=server_id, model_uri=model_uri, port=port, pid=pid, status="up",
                        created_at=NOW - up_for, log_path=f".vtm/serving/{server_id}.log",
                        tracking_uri=TRACKING_URI, input_shape="3,32,32", message=None)


SERVERS = [_server(2, f"models:/{CLS}@dev", 5003, 48213, 754),
           _server(1, f"models:/{CLS}@release", 5002, 47990, 5325)]


def demo_mask_grid(rows: int = 12, columns: int = 24) -> list[list[int]]:
    """A road (class 1) across the lower half, a tree (class 2) on the right and a house
    (class 3) on the left, as the terminal preview of a 64x64 mask."""
    grid = []
    for row in range(rows):
        y = (row + 0.5) / rows
        line = []
        for column in range(columns):
            x = (column + 0.5) / columns
            if ((x - 0.72) / 0.16) ** 2 + ((y - 0.32) / 0.26) ** 2 <= 1:
                line.append(2)
            elif 0.08 < x < 0.3 and 0.2 < y < 0.5:
                line.append(3)
            elif y > 0.55 and abs(x - 0.35 - (y - 0.55) * 0.5) < 0.12 + (y - 0.55) * 0.45:
                line.append(1)
            else:
                line.append(0)
        grid.append(line)
    return grid


def demo_result(target: str, mask_path: str | None) -> dict:
    grid = demo_mask_grid()
    cells = [value for row in grid for value in row]
    model, _, stage = target.removeprefix("models:/").partition("@")
    stage = stage or "release"
    result = {
        "task_type": "segmentation",
        "shares": [{"class": name, "index": index, "share": cells.count(index) / len(cells)}
                   for index, name in enumerate(CLASSES)],
        "preview": grid,
        "served_by": "local",
        "source": f"registry {model}/{stage}/v1, TinyUNet on cpu",
        "skipped": [(f"native: no running model server for models:/{model}@{stage} "
                     "(start one with `vtm serve native` or pass --native)")],
    }
    if mask_path:
        result["mask_path"] = mask_path
    return result


def _predict(settings: Settings, target: str, *, source=None, native=False, mask_path=None, progress=None,
             cancel=None) -> dict:
    if progress is not None:
        for done in (BUNDLE_SIZE // 3, BUNDLE_SIZE):
            progress(done, BUNDLE_SIZE)
    return demo_result(target, mask_path)


def _refuse(*_args, **_kwargs):
    raise UserError("the demo starts and stops no model servers")


def demo_serving_sources() -> ServingSources:
    return ServingSources(
        catalogue=lambda _settings: Catalogue(list(MODELS), list(REGISTRY), TRACKING_URI),
        servers=lambda _settings: list(SERVERS),
        start=_refuse,
        stop=_refuse,
        predict=_predict,
    )


def with_serving(sources: Sources) -> Sources:
    """`sources` with the pinned serving ones (whatever else it pins stays pinned)."""
    return replace(sources, serving=demo_serving_sources())


def make_serving_demo(root: Path) -> tuple[Settings, Sources]:
    settings, sources = make_demo(root)
    return settings, with_serving(sources)


async def show_serving(pilot) -> None:
    """Open the Serving tab on the pinned sources and predict with the default target (the
    first model alias): the segmentation result, its preview and the fallback's lines."""
    from vtm_tui.ui.tabs.serving.mask_preview import MaskPreview
    from vtm_tui.ui.tabs.serving.pane import ServingPane

    await pilot.press("5")
    pane = pilot.app.query_one(ServingPane)
    await until(pilot, lambda: pane.ready and pane.servers, "the Serving demo's models and servers")
    await pilot.press("ctrl+g")
    await until(pilot, lambda: pane.result.rows and pilot.app.query_one(MaskPreview).grid,
                "the Serving demo's prediction")
    await pilot.pause(0.2)
