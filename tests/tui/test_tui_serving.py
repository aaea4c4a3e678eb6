"""The Serving tab: a real model (trained by the example script, registered with an alias and
published to the folder registry) served, predicted on and stopped from the tab; the registry
fallback with its download; and a snapshot on the pinned demo world (no server at all)."""
from __future__ import annotations

import threading

import pytest
from fixtures.tui import screen_text, type_into, wait_for
from fixtures.vtm import free_port, make_vtm_env, train_registered_model
from textual.widgets import Input, ProgressBar, Select, Switch

from vtm_tui.core import procs
from vtm_tui.core.registry import Cancelled
from vtm_tui.core.serving import native as serving
from vtm_tui.errors import UserError
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.demo.pinned_serving import make_serving_demo, show_serving
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.sources import Sources
from vtm_tui.ui.sources.serving import Catalogue, ModelChoice, ServingSources
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.serving.mask_preview import preview_text
from vtm_tui.ui.tabs.serving.pane import ServingPane
from vtm_tui.ui.tabs.serving.predict_card import input_path

START_TIMEOUT = 240  # `mlflow models serve` takes 20-60 s to answer, more on a busy machine


@pytest.fixture(scope="module")
def trained(embedded_server, tmp_path_factory):
    vtm, name, _ = train_registered_model(embedded_server.uri, tmp_path_factory.mktemp("tui-serving"), "tui-serve")
    yield vtm, name
    for record in serving.list_servers(vtm.settings):  # never leave a model server behind
        serving.stop_server(vtm.settings, record.id)


async def open_serving(pilot) -> ServingPane:
    # Start-up first (the catalog in the Launcher form): a key pressed before the app's first
    # focus lands can lose its tab to that focus.
    form = pilot.app.query_one(LauncherPane).form
    await wait_for(pilot, lambda: form.shown_task and form.rows, timeout=30, what="the app started")
    await pilot.press("5")
    await wait_for(pilot, lambda: pilot.app.tabs.active == "serving", what="the Serving tab")
    pane = pilot.app.query_one(ServingPane)
    await wait_for(pilot, lambda: pane.ready and pane.catalogue is not None, timeout=60,
                   what="the models and the registry read")
    return pane


def result_text(app) -> str:
    return str(app.query_one("#predict-notes").render())


async def test_serve_predict_natively_and_stop_from_the_tab(trained):
    vtm, name = trained
    uri = f"models:/{name}@release"
    app = VtmApp(vtm.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await open_serving(pilot)
        assert pane.catalogue.models_error is None, pane.catalogue.models_error
        select = app.query_one("#serve-model", Select)
        assert uri in [value for _, value in select._options]
        select.value = uri
        await wait_for(pilot, lambda: app.query_one("#predict-target", Input).value == uri,
                       what="the predict target following the model")
        port = free_port()
        await type_into(pilot, "#serve-port", str(port))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: [r for r in pane.servers.values() if r.port == port],
                       timeout=30, what="the new server listed")
        record = await wait_for(
            pilot, lambda: next((r for r in pane.servers.values() if r.port == port and r.status == "up"), None),
            timeout=START_TIMEOUT, what="the model server up")
        assert record.model_uri == uri and serving.ping(record.url)
        assert "up" in screen_text(app) and record.url in screen_text(app)

        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: pane.result.rows, timeout=60, what="the prediction")
        rows = pane.result.rows
        assert len(rows) == 5 and rows[0][0] == "1"
        probabilities = [float(row[2]) for row in rows]
        assert probabilities == sorted(probabilities, reverse=True) and 0.99 < sum(probabilities) < 1.01
        notes = result_text(app)
        assert "served by native" in notes and record.url in notes and "skipped" not in notes
        assert "served by native" in screen_text(app)

        app.query_one("#servers-table").focus()
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert f"Stop model server {record.id}?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: record.id not in pane.servers, timeout=60,
                       what="the server gone from the table")
    assert not procs.is_running(record.pid, "mlflow")
    assert not serving.ping(record.url)


async def test_predict_falls_back_to_the_registry_and_says_why(trained, embedded_server, tmp_path):
    vtm, name = trained
    # A fresh VTM_HOME knows no model server; the registry is the folder the fixture published to.
    fresh = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri,
                         VTM_REGISTRY_URL=str(vtm.settings.home / "registry"))
    app = VtmApp(fresh.settings)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_serving(pilot)
        assert f"{name}@release" in pane.catalogue.registry
        assert not app.query_one("#predict-native", Switch).value  # no server is started by default
        await type_into(pilot, "#predict-target", f"{name}@release")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: pane.result.rows, timeout=120, what="the prediction")
        notes = result_text(app)
        assert "served by local" in notes and f"registry {name}/release/v1" in notes
        assert f"skipped native: no running model server for models:/{name}@release" in notes
        assert len(pane.result.rows) == 5
        bar = app.query_one("#predict-bar", ProgressBar)
        assert bar.display and bar.total and bar.progress == bar.total  # the bundle's download, done
        # which program ran, with the spec that preprocessed the input (the bundle's model-standard.pt2)
        spec = "classification 3x32x32 float32 RGB -> logits (5 classes)"
        assert f"program model-standard.pt2 (vtm-standard-v2): {spec}" in notes
        text = screen_text(app)  # all of it in sight at 80x24
        assert "served by local" in text and "skipped native" in text
        assert "program model-standard.pt2 (vtm-standard-v2)" in text and "logits (5 classes)" in text
        await type_into(pilot, "#predict-input", "no-such-file.npy")
        await pilot.press("ctrl+g")
        status = app.query_one("#predict-status")
        await wait_for(pilot, lambda: "Prediction failed" in status.text.plain, timeout=60,
                       what="the error shown")
        assert "no-such-file.npy: no such file" in status.text.plain
        assert any("no-such-file.npy: no such file" in str(n.message) for n in app._notifications)
        assert pane.result.rows == [] and "served by" not in result_text(app)  # no stale answer
    assert serving.list_servers(fresh.settings) == []


async def test_unreachable_mlflow_and_missing_choices_are_said_not_raised(tmp_path):
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    app = VtmApp(env.settings)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_serving(pilot)
        assert "cannot reach" in pane.catalogue.models_error
        assert "MLflow: cannot reach" in app.query_one("#serve-status").text.plain
        await pilot.press("ctrl+s")
        await pilot.press("ctrl+g")
        await pilot.pause(0.2)
        messages = [str(n.message) for n in app._notifications]
        assert any("Pick a model" in m for m in messages) and any("Give a target" in m for m in messages)
        assert not pane.starting and not pane.predicting


async def test_port_is_checked_before_a_server_starts(offline_env):
    started = []
    serving_sources = ServingSources(
        catalogue=lambda _settings: Catalogue([ModelChoice("m", "3", "dev")], []),
        servers=lambda _settings: [],
        start=lambda settings, uri, port: started.append((uri, port)) or _never_up())
    app = VtmApp(offline_env.settings, Sources(serving=serving_sources))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_serving(pilot)
        await type_into(pilot, "#serve-port", "99999")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert started == [] and any("Port must be" in str(n.message) for n in app._notifications)
        await type_into(pilot, "#serve-port", "")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("Serve failed" in str(n.title) for n in app._notifications),
                       what="the start's error")
        assert started == [("models:/m@dev", None)]  # blank: the default port


def _never_up():
    raise UserError("port 5002 on 127.0.0.1 is already in use; choose another with --port")


async def test_download_progress_shows_and_esc_cancels(offline_env):
    cancelled = threading.Event()

    def predict(settings, target, *, source, native, mask_path=None, progress=None, cancel=None):
        for done in range(0, 100_001, 500):  # a chatty download: 200 callbacks at once
            progress(done // 2, 100_000)
        if not cancel.wait(30):
            raise AssertionError("never cancelled")
        cancelled.set()
        raise Cancelled("download cancelled")

    serving_sources = ServingSources(catalogue=lambda _settings: Catalogue([], ["m@dev"]),
                                     servers=lambda _settings: [], predict=predict)
    app = VtmApp(offline_env.settings, Sources(serving=serving_sources))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_serving(pilot)
        await type_into(pilot, "#predict-target", "m@dev")
        await pilot.press("ctrl+g")
        bar = app.query_one("#predict-bar", ProgressBar)
        await wait_for(pilot, lambda: bar.display and bar.progress == 50_000, what="the download's progress")
        assert bar.total == 100_000 and "Downloading the registry bundle" in screen_text(app)
        assert "Cancel predict" in screen_text(app)  # esc is in the footer while it runs
        await pilot.press("escape")
        await wait_for(pilot, cancelled.is_set, what="the cancel reaching the download")
        await pilot.pause(0.2)
        assert "Prediction cancelled" in app.query_one("#predict-status").text.plain
        assert not pane.predicting and "Cancel predict" not in screen_text(app)
        assert not any("failed" in str(n.title or "").lower() for n in app._notifications)


def test_preview_and_input_helpers(tmp_path):
    grid = [[0, 1], [2, 0], [1, 1]]
    full = preview_text(grid, height=3)
    assert full.plain == "██\n██\n██"
    half = preview_text(grid, height=2)  # two mask rows per character
    assert half.plain == "▀▀\n▀▀"
    assert input_path("random", tmp_path) is None and input_path("  ", tmp_path) is None
    assert input_path("x.npy", tmp_path) == str(tmp_path / "x.npy")
    assert input_path("/data/x.png", tmp_path) == "/data/x.png"


def test_serving_tab_snapshot_120x40(snap_compare, tmp_path):
    settings, sources = make_serving_demo(tmp_path)

    async def run_before(pilot) -> None:
        form = pilot.app.query_one(LauncherPane).form
        await wait_for(pilot, lambda: form.shown_task and form.rows, what="the app started")
        await show_serving(pilot)

    assert snap_compare(VtmApp(settings, sources), terminal_size=(120, 40), run_before=run_before)
