"""Pilot tests of the TUI flows, on real run stores, real supervisors and the fake training
script of tests/data/catalog.yaml (no MLflow needed: the offline env's tracking URI is a file)."""
from __future__ import annotations

import asyncio
import shutil

import pytest
from fixtures.tui import wait_for, wait_for_text
from fixtures.vtm import DATA, make_vtm_env
from textual.widgets import DataTable, Input, OptionList

from vtm_tui.core.runs.lifecycle import cancel
from vtm_tui.ui.app import VtmApp
from vtm_tui.ui.screens.confirm import ConfirmScreen
from vtm_tui.ui.screens.log_view import LogScreen
from vtm_tui.ui.tabs.launcher.pane import LauncherPane
from vtm_tui.ui.tabs.runs.pane import RunsPane
from vtm_tui.ui.widgets.log_tail import LogTail, SearchLog


@pytest.fixture
def env(offline_env, monkeypatch):
    # Runs launched from the app (in this process) get their supervisor's environment from
    # here: a short cancel grace, as vtm_env gives the CLI's runs.
    monkeypatch.setenv("VTM_CANCEL_GRACE", "2")
    yield offline_env
    for run in offline_env.store.active():  # never leave a fake run behind
        cancel(offline_env.settings, run.id)
    for run in offline_env.store.active():
        offline_env.wait_finished(run.id, timeout=30)


def tasks_shown(app) -> list[str]:
    return [option.id for option in app.query_one("#task-list", OptionList).options]


async def fill(pilot, name: str, text: str) -> None:
    """Type into a form field the way a user does: focus it, clear it, type."""
    field = pilot.app.query_one(f"#field-{name}", Input)
    field.focus()
    await pilot.pause()
    field.value = ""
    await pilot.press(*text)


def runs_row(app, run_id: int) -> list[str]:
    table = app.query_one("#runs-table", DataTable)
    return [str(cell) for cell in table.get_row(str(run_id))]


async def open_app(pilot) -> VtmApp:
    """Wait until the catalog is in and the highlighted task's form is built."""
    app = pilot.app
    form = app.query_one(LauncherPane).form
    await wait_for(pilot, lambda: tasks_shown(app) and form.shown_task and form.rows,
                   what="the catalog's tasks and form")
    await pilot.pause()
    return app


async def test_invalid_values_block_launch_with_inline_messages(env):
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_app(pilot)
        assert "fake" in tasks_shown(app) and "hidden" not in tasks_shown(app)  # disabled: not shown
        await fill(pilot, "epochs", "-1")
        await fill(pilot, "sleep", "fast")
        await pilot.press("ctrl+l")
        await wait_for_text(pilot, "must be >= 1 (got -1)", "must be a number (got 'fast')")
        assert app.tabs.active == "launcher"
        assert any("Not launched" in str(n.message) for n in app._notifications)
        await fill(pilot, "epochs", "2x")
        await pilot.press("f5")
        await wait_for_text(pilot, "must be an integer (got '2x')")
        await pilot.pause(0.5)
    assert env.store.list() == []  # nothing started


async def test_cancel_from_runs_tab(env):
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_app(pilot)
        await fill(pilot, "epochs", "200")
        await fill(pilot, "sleep", "0.3")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.tabs.active == "runs", what="the Runs tab")
        run_id = (await wait_for(pilot, lambda: env.store.list(), what="the run record"))[0].id
        runs = app.query_one(RunsPane)
        await wait_for(pilot, lambda: runs.selected_id == run_id and "running" in runs_row(app, run_id)
                       and app.focused is app.query_one("#runs-table"),
                       timeout=30, what="the new run selected, running, and the table focused")
        assert env.store.get(run_id).field_values["epochs"] == 200
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await wait_for_text(pilot, "Cancel run")
        await pilot.press("y")
        await wait_for(pilot, lambda: "cancelled" in runs_row(app, run_id), timeout=30,
                       what="the run shown cancelled")
    assert env.store.get(run_id).status == "cancelled"


async def test_declining_the_confirmation_keeps_the_run(env):
    run = env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.3")
    app = VtmApp(env.settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.query_one(RunsPane).selected_id == run.id
                       and app.focused is app.query_one("#runs-table"), what="the run")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        await pilot.press("n")
        await pilot.pause(1.5)
        assert env.store.get(run.id).active and not env.store.get(run.id).cancel_requested


async def test_run_launched_from_cli_appears_and_progresses(env):
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_app(pilot)
        await pilot.press("2")
        await wait_for_text(pilot, "No runs yet")
        result = await asyncio.to_thread(env.run, "launch", "fake", "--set", "epochs=6",
                                         "--set", "sleep=0.4", "--set", "tag=from-cli")
        assert result.returncode == 0, result.stderr
        run_id = env.store.list()[0].id
        seen = set()

        def progressed():
            row = runs_row(app, run_id) if run_id in app.query_one(RunsPane).run_ids else []
            if row:
                seen.add(row[4])  # the epoch column
            return row and row[1] == "succeeded" and row[3] == "100%"

        await wait_for(pilot, progressed, timeout=60, what="the CLI run to finish in the table")
        assert len(seen - {"-"}) >= 2, f"no live progress seen, only {seen}"
        assert "6/6" in seen
        log = app.query_one("#run-log", LogTail)
        await wait_for(pilot, lambda: any("from-cli epoch 6 done" in line for line in log.lines),
                       what="the log tail")


async def watch_it_run(env, run_id: int) -> None:
    """Open the app, see the run running in the Runs tab and its shown epoch advance, close."""
    app = VtmApp(env.settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        runs = app.query_one(RunsPane)

        def shown_epoch() -> int:
            if run_id not in runs.run_ids or runs_row(app, run_id)[1] != "running":
                return 0
            return int(runs_row(app, run_id)[4].split("/")[0])

        first = await wait_for(pilot, shown_epoch, timeout=30, what="the running run")
        await wait_for(pilot, lambda: shown_epoch() > first, what="its progress")


async def test_running_run_reattaches_after_reopen(env):
    run = env.launch_json("fake", "--set", "epochs=200", "--set", "sleep=0.2")
    await watch_it_run(env, run.id)
    assert env.store.get(run.id).active  # closing the TUI does not stop a run
    await watch_it_run(env, run.id)  # and a new TUI picks it up from the store


async def test_broken_catalog_shows_error_line_then_recovers(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    shutil.copy(DATA / "catalog.yaml", catalog)
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       TRAINING_CATALOG_PATH=str(catalog))
    good = catalog.read_text()
    app = VtmApp(env.settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_app(pilot)
        broken = good.replace("startMethod: python_script", "startMethod: python_scirpt", 1)
        line = broken.splitlines().index("      startMethod: python_scirpt") + 1
        catalog.write_text(broken)
        await pilot.press("ctrl+r")
        launcher = app.query_one(LauncherPane)
        await wait_for(pilot, lambda: launcher.has_class("-broken"), what="the catalog errors")
        await wait_for_text(pilot, f"catalog.yaml:{line}: tasks[0].runner.startMethod: expected one of")
        await pilot.press("ctrl+l")  # nothing to launch: a notice, not a crash
        catalog.write_text(good)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not launcher.has_class("-broken") and "fake" in tasks_shown(app),
                       what="the tasks back")
        assert "hidden" not in tasks_shown(app)
        # A change on disk is picked up without a key press (mtime poll).
        catalog.write_text(good.replace("enabled: false", "enabled: true"))
        await wait_for(pilot, lambda: "hidden" in tasks_shown(app), timeout=5,
                       what="the reloaded catalog")
    assert env.store.list() == []


async def test_clone_rerun_log_search_and_copy(env):
    run = env.launch_json("fake", "--set", "epochs=3", "--set", "sleep=0.05", "--set", "tag=alpha")
    env.wait_finished(run.id)
    app = VtmApp(env.settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_app(pilot)
        await pilot.press("2")
        runs = app.query_one(RunsPane)
        await wait_for(pilot, lambda: runs.selected_id == run.id
                       and app.focused is app.query_one("#runs-table"), what="the run")

        await pilot.press("y")
        assert app.clipboard == str(run.id)

        await pilot.press("e")  # clone into the Launcher form
        await wait_for(pilot, lambda: app.tabs.active == "launcher", what="the Launcher")
        await wait_for(pilot, lambda: app.query_one("#field-tag", Input).value == "alpha",
                       what="the cloned values")
        assert app.query_one("#field-epochs", Input).value == "3"
        await fill(pilot, "tag", "beta")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(env.store.list()) == 2, what="the edited clone launched")
        clone = env.store.list()[0]
        assert (clone.field_values["tag"], clone.field_values["epochs"]) == ("beta", 3)
        await wait_for(pilot, lambda: runs.selected_id == clone.id, what="the clone selected")
        # Keys go where the focus is: wait until it has left the Launcher's form.
        await wait_for(pilot, lambda: app.focused is app.query_one("#runs-table"), what="the table focused")

        await pilot.press("r")  # rerun the clone as it was
        await wait_for(pilot, lambda: len(env.store.list()) == 3, what="the rerun")
        rerun = env.store.list()[0]
        assert rerun.field_values == clone.field_values
        await wait_for(pilot, lambda: runs.selected_id == rerun.id, what="the rerun selected")
        env.wait_finished(rerun.id)

        await pilot.press("l")  # full-screen log with search
        await wait_for(pilot, lambda: isinstance(app.screen, LogScreen), what="the log screen")
        log = app.screen.query_one(SearchLog)
        await wait_for(pilot, lambda: any("finished beta" in line for line in log.lines), what="the log")
        await pilot.press("slash", *"epoch", "enter")
        assert log.current is not None and "epoch" in log.lines[log.current]
        first = log.current
        await pilot.press("n")
        assert log.current != first and "epoch" in log.lines[log.current]
        await pilot.press("N")
        assert log.current == first
        await pilot.press("f")  # only matching lines
        assert log.lines and all("epoch" in line for line in log.lines)
        await wait_for_text(pilot, "only matching lines")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LogScreen), what="the log closed")
        assert app.tabs.active == "runs"


async def test_palette_offers_the_current_tabs_actions(env):
    app = VtmApp(env.settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_app(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"reload")
        await wait_for_text(pilot, "Reload catalog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="the palette closed")
        await pilot.press("2")
        await wait_for(pilot, lambda: app.tabs.active == "runs", what="the Runs tab")
        await pilot.press("ctrl+p")
        await pilot.press(*"cancel")
        text = await wait_for_text(pilot, "Cancel")
        assert "Reload catalog" not in text


def test_every_binding_has_an_id():
    from textual.binding import Binding

    from vtm_tui.ui.screens.confirm import ConfirmScreen as Confirm
    from vtm_tui.ui.screens.log_view import LogScreen as Log

    for owner in (VtmApp, LauncherPane, RunsPane, Confirm, Log):
        for binding in Binding.make_bindings(owner.__dict__["BINDINGS"]):
            assert binding.id, f"{owner.__name__}: {binding.key} -> {binding.action} has no id"


async def test_small_and_large_terminals(env):
    for size in ((80, 24), (200, 60)):
        app = VtmApp(env.settings)
        async with app.run_test(size=size) as pilot:
            await open_app(pilot)
            await wait_for_text(pilot, "Launcher", "Runs", "MLflow Ops", "Registry", "Serving",
                                "Launch", "epochs")
