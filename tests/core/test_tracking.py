"""MLflow Ops core and CLI: runs, search, best run, registration, against vtm's embedded tracking
server (the session's `embedded_server`) and a database URI."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.vtm import VTM_BIN, base_env, free_port

from vtm_tui.core.formatting import redact_url
from vtm_tui.core.tracking import (
    INTERACTIVE_HTTP_ENV,
    RunInfo,
    Tracking,
    TrackingUnavailable,
    interactive_http_limits,
)
from vtm_tui.core.tracking.best import (
    NoEligibleRun,
    UnknownMetric,
    best_run,
    resolve_query,
    select_best,
)
from vtm_tui.core.tracking.register import find_logged_model, register_run, validate_alias
from vtm_tui.errors import UserError
from vtm_tui.settings import PACKAGED_CATALOG, Settings

REPO = Path(__file__).resolve().parents[2]
NAN = float("nan")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def vtm(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    # Not the checkout: a developer's .env there must not redirect the tests.
    return subprocess.run([VTM_BIN, *args], env=env or base_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())


@pytest.fixture(scope="module")
def tracking(embedded_server) -> Tracking:
    return Tracking(embedded_server.uri)


@pytest.fixture(scope="module")
def client(embedded_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=embedded_server.uri)


@dataclass
class Spec:
    """What the test logged for one run: the ground truth the answers are checked against."""
    run_id: str
    value: float | None  # None: the metric was never logged
    start: int
    end: int | None
    group: str


def log_runs(client, experiment_id: str, rows: list[tuple], threads: int = 4) -> list[Spec]:
    """rows: (value or None, start_ms, end_ms or None, group). Creates the runs concurrently."""
    from mlflow.entities import Metric, Param

    def one(row):
        value, start, end, group = row
        run = client.create_run(experiment_id, start_time=start, run_name=f"r-{group}")
        metrics = [Metric("score", value, start, 0)] if value is not None else []
        metrics.append(Metric("other", 1.0, start, 0))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param("group", group)])
        if end is not None:
            client.set_terminated(run.info.run_id, "FINISHED", end_time=end)
        return Spec(run.info.run_id, value, start, end, group)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, rows))


def brute_force(specs: list[Spec], mode: str, group: str | None = None) -> tuple[Spec | None, int, int, int]:
    """Straight from the rules: (winner, considered, missing, nan)."""
    considered = [s for s in specs if group is None or s.group == group]
    missing = sum(s.value is None for s in considered)
    nan = sum(s.value is not None and math.isnan(s.value) for s in considered)
    usable = [s for s in considered if s.value is not None and not math.isnan(s.value)]
    if not usable:
        return None, len(considered), missing, nan
    target = max(s.value for s in usable) if mode == "max" else min(s.value for s in usable)
    tied = [s for s in usable if s.value == target]
    winner = max(tied, key=lambda s: (s.start, -1 if s.end is None else s.end, s.run_id))
    return winner, len(considered), missing, nan


@pytest.fixture(scope="module")
def ties(client):
    """Six runs: three tied at the top (told apart by start, then end time), NaN, missing, a low one."""
    name = unique("vtm-ties")
    eid = client.create_experiment(name)
    base = 1_700_000_000_000
    rows = [(0.9, base + 1000, base + 5000, "x"),   # oldest of the tied
            (0.9, base + 2000, base + 3000, "x"),   # later start
            (0.9, base + 2000, base + 4000, "y"),   # same start, later end: the max winner
            (NAN, base + 9000, base + 9500, "x"),   # NaN: never chosen, even though newest
            (None, base + 9000, base + 9600, "y"),  # no metric at all
            (0.1, base + 500, None, "x")]           # the min winner, still running
    specs = log_runs(client, eid, rows, threads=1)
    return name, specs


@pytest.fixture(scope="module")
def population(client):
    """200 runs: few distinct values (many ties), 10% NaN, 10% missing, shared start times."""
    rng = random.Random(20240607)
    name = unique("vtm-best200")
    eid = client.create_experiment(name)
    base = 1_700_000_000_000
    rows = []
    for _ in range(200):
        roll = rng.random()
        value = None if roll < 0.1 else NAN if roll < 0.2 else rng.choice([0.25, 0.5, 0.75, 1.0, -1.5])
        start = base + rng.randrange(60) * 1000  # ~60 distinct start times: ties on start too
        end = None if rng.random() < 0.15 else start + rng.randrange(5) * 1000
        rows.append((value, start, end, rng.choice("ab")))
    started = time.perf_counter()
    specs = log_runs(client, eid, rows)
    print(f"logged 200 runs in {time.perf_counter() - started:.1f}s")
    return name, specs


@pytest.fixture(scope="module")
def trained(embedded_server, tmp_path_factory):
    """One real run of the classification example (epochs=1): metrics, checkpoint and a logged model."""
    out = tmp_path_factory.mktemp("trained")
    experiment = unique("vtm-trained")
    env = base_env(MLFLOW_TRACKING_URI=embedded_server.uri, PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "vtm_tui.train.classification", "--epochs", "1", "--samples", "64",
         "--output_dir", str(out), "--experiment_name", experiment],
        cwd=out, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = Tracking(embedded_server.uri).search_runs(experiment)
    assert len(runs) == 1
    return experiment, runs[0]


# ---------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------


def _run(run_id, value, start, end=None, metric="m") -> RunInfo:
    metrics = {} if value is None else {metric: value}
    return RunInfo(run_id, run_id, "FINISHED", start, end, metrics=metrics)


def test_select_best_rules_without_a_server():
    runs = [_run("a", 0.5, 1, 2), _run("b", NAN, 9, 9), _run("c", None, 9, 9), _run("d", 0.5, 3, 4),
            _run("e", 0.5, 3, None), _run("f", -2.0, 0, 1)]
    chosen = select_best(runs, "m", "max")
    assert (chosen.run.run_id, chosen.value, chosen.considered, chosen.missing, chosen.nan) == ("d", 0.5, 6, 1, 1)
    assert select_best(runs, "m", "min").run.run_id == "f"
    assert select_best([_run("x", NAN, 1)], "m", "max").run is None
    with pytest.raises(UserError):
        select_best(runs, "m", "largest")


def test_redact_validate_and_query_defaults(tmp_path):
    assert redact_url("postgresql+psycopg2://vtm:s3cret@127.0.0.1:55433/mlflow") == \
        "postgresql+psycopg2://vtm:***@127.0.0.1:55433/mlflow"
    assert redact_url("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
    for good in ("dev", "release", "champion_2", "a-b"):
        assert validate_alias(good) == good
    for bad in ("latest", "v3", "V12", "has space", "", "a/b"):
        with pytest.raises(UserError):
            validate_alias(bad)
    settings = Settings.load(cwd=tmp_path, environ=base_env(VTM_HOME=str(tmp_path / ".vtm")))
    assert settings.catalog_path == PACKAGED_CATALOG
    query = resolve_query(settings, task="classification")
    assert (query.experiment, query.metric, query.mode, query.model_name, query.artifact_path) == \
        ("void-train-manager", "val_accuracy", "max", "classification-best-model", "model")
    query = resolve_query(settings, task="classification", metric="val_loss", mode="min", experiment="e")
    assert (query.experiment, query.metric, query.mode) == ("e", "val_loss", "min")
    with pytest.raises(UserError, match="--mode"):
        resolve_query(settings, metric="val_loss")
    with pytest.raises(UserError, match="--task"):
        resolve_query(settings)


def test_interactive_http_limits_are_scoped_and_user_values_win(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    with interactive_http_limits():
        with interactive_http_limits():
            retries = INTERACTIVE_HTTP_ENV["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
            assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == retries
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in os.environ
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # training runs started later keep MLflow's defaults
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"


def test_children_started_during_an_interactive_call_keep_mlflow_defaults(monkeypatch, tmp_path):
    """A training run (or model server) that the TUI starts while the MLflow Ops tab is in a call
    must not inherit the short timeouts; the user's own settings still pass through."""
    from vtm_tui.core import procs

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    log = tmp_path / "env.log"
    with interactive_http_limits():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"  # this process: short limits
        child_env = procs.child_environ({"EXTRA": "1"})
        pid = procs.spawn_detached([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                                   log_path=log)
    deadline = time.monotonic() + 30
    while procs.is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = json.loads(log.read_text())
    for env in (child_env, seen):
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in env and "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR" not in env
        assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
    assert child_env["EXTRA"] == "1"


# ---------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------


def test_experiments_runs_history_and_search(tracking, client):
    name = unique("vtm-read")
    eid = client.create_experiment(name, tags={"team": "vision"})
    run = client.create_run(eid, run_name="reader", tags={"purpose": "test"})
    rid = run.info.run_id
    from mlflow.entities import Metric, Param

    client.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(5)],
                     params=[Param("lr", "0.01")])
    client.set_terminated(rid, "FINISHED")
    other = client.create_run(eid, run_name="other")
    client.log_batch(other.info.run_id, metrics=[Metric("loss", 0.05, 1000, 0)], params=[Param("lr", "0.1")])

    assert name in [e.name for e in tracking.experiments()]
    exp = tracking.experiment(name)
    assert exp.experiment_id == eid and exp.tags["team"] == "vision"
    assert tracking.experiment(eid).name == name  # by id too
    with pytest.raises(UserError, match="no experiment 'no-such-experiment'"):
        tracking.experiment("no-such-experiment")

    info = tracking.run(rid)
    assert (info.name, info.status, info.experiment_id, info.params) == ("reader", "FINISHED", eid, {"lr": "0.01"})
    assert info.metrics == {"loss": pytest.approx(0.2)}  # the latest value
    assert info.user_tags == {"purpose": "test"} and info.start_time <= info.end_time
    json.dumps(info.to_json(), allow_nan=False)
    with pytest.raises(UserError, match="no MLflow run"):
        tracking.run("0" * 32)

    history = tracking.metric_history(rid, "loss")
    assert [p.step for p in history] == [0, 1, 2, 3, 4]
    assert history[0].value == pytest.approx(1.0) and history[-1].value == pytest.approx(0.2)

    assert [r.run_id for r in tracking.search_runs(name, "params.lr = '0.01'")] == [rid]
    ordered = tracking.search_runs(name, order_by=["metrics.loss ASC"])
    assert [r.run_id for r in ordered] == [other.info.run_id, rid]
    assert len(tracking.search_runs(name, max_results=1)) == 1
    with pytest.raises(UserError, match="filter"):
        tracking.search_runs(name, "params.lr === 'x'")


def test_dead_server_fails_fast_with_the_uri():


    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable, match=uri.replace(".", r"\.")):
        Tracking(uri).experiments()
    # Past the probe (probe=False): MLflow's own call, with the interactive retry limits.
    with pytest.raises(TrackingUnavailable, match="cannot reach"):
        Tracking(uri, probe=False).run("0" * 32)
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------------------
# Best run
# ---------------------------------------------------------------------------


def test_best_ignores_missing_and_nan_and_breaks_ties_by_recency(tracking, ties):
    name, specs = ties
    best = best_run(tracking, name, "score", "max")
    assert best.run.run_id == specs[2].run_id and best.value == 0.9
    assert (best.considered, best.eligible, best.missing, best.nan) == (6, 4, 1, 1)
    low = best_run(tracking, name, "score", "min")
    assert low.run.run_id == specs[5].run_id and low.value == pytest.approx(0.1)
    only_x = best_run(tracking, name, "score", "max", filter="params.group = 'x'")
    assert only_x.run.run_id == specs[1].run_id and only_x.considered == 4  # later start beats older
    assert "considered" in best.summary() and json.dumps(best.to_json(), allow_nan=False)


def test_best_matches_brute_force_over_200_runs(tracking, population):
    name, specs = population
    for mode in ("max", "min"):
        for group in (None, "a", "b"):
            expected, considered, missing, nan = brute_force(specs, mode, group)
            flt = None if group is None else f"params.group = '{group}'"
            for page_size in (1000, 37):  # 37: several pages, the same answer
                best = best_run(tracking, name, "score", mode, filter=flt, page_size=page_size)
                assert best.run.run_id == expected.run_id, (mode, group, page_size)
                assert best.value == expected.value
                assert (best.considered, best.missing, best.nan) == (considered, missing, nan)


def test_best_errors(tracking, ties, client):
    name, _ = ties
    with pytest.raises(UnknownMetric, match="other, score"):
        best_run(tracking, name, "scroe", "max")
    with pytest.raises(UserError, match="no experiment"):
        best_run(tracking, unique("missing"), "score", "max")
    with pytest.raises(NoEligibleRun, match="0 runs considered"):
        best_run(tracking, name, "score", "max", filter="params.group = 'nobody'")
    with pytest.raises(NoEligibleRun) as caught:  # the filter leaves only the NaN and the missing run
        best_run(tracking, name, "score", "max", filter="attributes.start_time >= 1700000009000")
    assert (caught.value.considered, caught.value.missing, caught.value.nan) == (2, 1, 1)
    assert "2 runs considered" in str(caught.value)


def _bulk_runs(db: Path, experiment: str, values: list[float | None]) -> list[str]:
    """Insert runs straight into a SQLite tracking store: 1000+ runs in a second, not minutes."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlRun
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db}", (db.parent / "artifacts").as_uri())
    eid = store.create_experiment(experiment)
    ids, rows = [], []
    for i, value in enumerate(values):
        run_id = uuid.uuid4().hex
        ids.append(run_id)
        rows.append(SqlRun(run_uuid=run_id, name=f"bulk-{i}", experiment_id=int(eid), status="FINISHED",
                           start_time=1_000_000 + i, end_time=1_000_500 + i, lifecycle_stage="active",
                           source_type="LOCAL", source_name="", entry_point_name="", user_id="test",
                           source_version="", artifact_uri=f"{db.parent.as_uri()}/{run_id}"))
        if value is not None:
            rows.append(SqlLatestMetric(key="score", value=0.0 if math.isnan(value) else value,
                                        is_nan=math.isnan(value), timestamp=1, step=0, run_uuid=run_id))
    with store.ManagedSessionMaker(read_only=False) as session:
        session.add_all(rows)
    return ids


def test_best_over_more_than_1000_runs_via_a_database_uri(tmp_path):
    values = [0.5] * 1100
    values[10], values[20] = None, NAN
    values[1050] = 0.9  # on the second page
    values[1099] = 0.9 - 1e-9
    ids = _bulk_runs(tmp_path / "big.db", "bulk", values)
    tracking = Tracking(f"sqlite:///{tmp_path / 'big.db'}")
    best = best_run(tracking, "bulk", "score", "max")
    assert (best.run.run_id, best.considered, best.missing, best.nan) == (ids[1050], 1100, 1, 1)
    assert len(tracking.search_runs("bulk")) == 1100
    assert best_run(tracking, "bulk", "score", "min").run.run_id == ids[1098]  # latest of the 0.5 ties


# ---------------------------------------------------------------------------
# Registering
# ---------------------------------------------------------------------------


def test_register_sets_alias_and_models_uri_loads_that_run(tracking, trained, embedded_server, monkeypatch):
    experiment, run = trained
    from mlflow import MlflowClient

    ref = find_logged_model(tracking, run.run_id, "model")
    assert ref.model_id and ref.model_id.startswith("m-") and ref.source == f"models:/{ref.model_id}"
    name = unique("vtm-cls")
    first = register_run(tracking, run.run_id, name, "model", alias="dev")
    assert first.created and first.alias_uri == f"models:/{name}@dev"
    registry = MlflowClient(tracking_uri=embedded_server.uri, registry_uri=embedded_server.uri)
    assert registry.get_model_version_by_alias(name, "dev").run_id == run.run_id

    again = register_run(tracking, run.run_id, name, "model", alias="release")  # same model: same version
    assert (again.created, again.version) == (False, first.version)
    assert registry.get_model_version_by_alias(name, "release").version == first.version

    import mlflow
    import numpy as np

    monkeypatch.setenv("MLFLOW_TRACKING_URI", embedded_server.uri)
    mlflow.set_tracking_uri(embedded_server.uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@release")
        assert model.metadata.run_id == run.run_id
        out = model.predict(np.random.rand(2, 3, 32, 32).astype("float32"))
        assert np.asarray(out).shape == (2, 5)
    finally:
        mlflow.set_tracking_uri(None)


def test_register_refuses_runs_without_a_model_and_bad_aliases(tracking, trained, ties):
    _, run = trained
    _, specs = ties
    with pytest.raises(UserError, match="no logged model at artifact path 'model'.*logged no model"):
        register_run(tracking, specs[0].run_id, unique("vtm-none"), "model")
    with pytest.raises(UserError, match="its logged models: model"):
        register_run(tracking, run.run_id, unique("vtm-none"), "checkpoints")
    name = unique("vtm-none")
    with pytest.raises(UserError, match="reserved"):
        register_run(tracking, run.run_id, name, "model", alias="latest")
    from mlflow import MlflowClient

    assert not MlflowClient(tracking_uri=tracking.uri).search_registered_models(f"name = '{name}'")


def test_script_steps_best_and_register(embedded_server, trained, ties, tmp_path):
    from vtm_tui.script.context import ScriptContext, StepFailed
    from vtm_tui.script.tracking_steps import step_best, step_register

    experiment, run = trained
    settings = Settings.load(cwd=tmp_path, environ=base_env(
        VTM_HOME=str(tmp_path / ".vtm"), MLFLOW_TRACKING_URI=embedded_server.uri))
    lines: list[str] = []
    ctx = ScriptContext(settings, log=lines.append)
    name = unique("vtm-step")
    step_best(ctx, {"task": "classification", "experimentName": experiment, "modelName": name,
                    "register": True, "alias": "dev", "as": "champ"})
    assert run.run_id in lines[0] and f"models:/{name}@dev" in lines[1]
    step_register(ctx, {"run": "champ", "model": name, "alias": "release"})
    from mlflow import MlflowClient

    registry = MlflowClient(tracking_uri=embedded_server.uri, registry_uri=embedded_server.uri)
    assert registry.get_model_version_by_alias(name, "release").run_id == run.run_id
    with pytest.raises(StepFailed) as failed:
        step_best(ctx, {"experiment": ties[0], "metric": "score", "mode": "max",
                        "filter": "params.group = 'nobody'"})
    assert failed.value.exit_code == 1
    with pytest.raises(StepFailed) as failed:
        step_best(ctx, {"task": "classification", "bogus": 1})
    assert failed.value.exit_code == 2


def test_steps_run_inside_a_script(embedded_server, trained, ties, tmp_path, monkeypatch):
    from vtm_tui.script import runner as script
    from vtm_tui.script.tracking_steps import step_best, step_register

    monkeypatch.setitem(script.STEPS, "best", step_best)
    monkeypatch.setitem(script.STEPS, "register", step_register)
    experiment, run = trained
    settings = Settings.load(cwd=tmp_path, environ=base_env(
        VTM_HOME=str(tmp_path / ".vtm"), MLFLOW_TRACKING_URI=embedded_server.uri))
    name = unique("vtm-script")
    path = tmp_path / "steps.yaml"
    path.write_text(f"steps:\n  - best: {{task: classification, experiment: {experiment}}}\n"
                    f"  - register: {{model: {name}, alias: dev}}\n")
    lines: list[str] = []
    assert script.run_script(settings, path, log=lines.append) == 0, lines
    assert any(f"models:/{name}@dev" in line for line in lines)
    path.write_text(f"steps:\n  - best: {{experiment: {ties[0]}, metric: score, mode: max, "
                    f"filter: \"params.group = 'nobody'\"}}\n")
    assert script.run_script(settings, path, log=lines.append) == 1
    assert "0 runs considered" in lines[-1]
    path.write_text("steps:\n  - register: {model: m, alias: latest, run: 00000000000000000000000000000000}\n")
    assert script.run_script(settings, path, log=lines.append) == 2


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(embedded_server, tmp_path):
    return base_env(VTM_HOME=str(tmp_path / ".vtm"), MLFLOW_TRACKING_URI=embedded_server.uri,
                    TRAINING_CATALOG_PATH=str(PACKAGED_CATALOG))


def test_cli_best_json_filter_and_exit_codes(cli_env, ties, population):
    name, specs = ties
    out = vtm("mlflow", "best", "--json", "--experiment", name, "--metric", "score", "--mode", "max", env=cli_env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["run_id"], data["value"], data["considered"], data["eligible"], data["excluded"]) == \
        (specs[2].run_id, 0.9, 6, 4, 2)
    assert data["run"]["params"] == {"group": "y"}

    out = vtm("mlflow", "best", "-e", name, "-m", "score", "--mode", "max", "--filter", "params.group = 'x'",
              env=cli_env)
    assert out.returncode == 0 and specs[1].run_id in out.stdout and "4 runs considered" in out.stdout

    out = vtm("mlflow", "best", "--json", "-e", name, "-m", "score", "--mode", "min",
              "--filter", "attributes.start_time >= 1700000009000", env=cli_env)
    assert out.returncode == 1 and "2 runs considered" in out.stderr
    assert json.loads(out.stdout)["run_id"] is None

    out = vtm("mlflow", "best", "-e", unique("nope"), "-m", "score", "--mode", "max", env=cli_env)
    assert out.returncode == 2 and "no experiment" in out.stderr and "Traceback" not in out.stderr
    out = vtm("mlflow", "best", "-e", name, "-m", "scroe", "--mode", "max", env=cli_env)
    assert out.returncode == 2 and "metrics logged: other, score" in out.stderr
    out = vtm("mlflow", "best", "-e", name, "-m", "score", env=cli_env)
    assert out.returncode == 2 and "--mode" in out.stderr


def test_cli_register_and_best_register(cli_env, trained, embedded_server):
    experiment, run = trained
    name = unique("vtm-cli")
    out = vtm("mlflow", "register", run.run_id, "--model", name, "--alias", "dev", "--json", env=cli_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["alias_uri"] == f"models:/{name}@dev"
    out = vtm("mlflow", "best", "--task", "classification", "--experiment", experiment, "--model", name,
              "--register", "--alias", "release", "--json", env=cli_env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["run_id"] == run.run_id and data["metric"] == "val_accuracy"
    assert data["registered"]["alias"] == "release" and data["registered"]["created"] is False
    from mlflow import MlflowClient

    registry = MlflowClient(tracking_uri=embedded_server.uri, registry_uri=embedded_server.uri)
    assert registry.get_model_version_by_alias(name, "release").run_id == run.run_id
    out = vtm("mlflow", "register", run.run_id, "--model", name, "--artifact-path", "nothing-here", env=cli_env)
    assert out.returncode == 2 and "no logged model at artifact path 'nothing-here'" in out.stderr


def test_cli_read_commands_and_dead_server(cli_env, trained):
    experiment, run = trained
    out = vtm("mlflow", "runs", "-e", experiment, "--json", env=cli_env)
    assert out.returncode == 0 and [r["run_id"] for r in json.loads(out.stdout)] == [run.run_id]
    out = vtm("mlflow", "history", run.run_id, "val_accuracy", env=cli_env)
    assert out.returncode == 0 and out.stdout.split()[0] == "1"


    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = vtm("mlflow", "experiments", "--tracking-uri", dead, env=cli_env, timeout=60)
    assert out.returncode == 2 and dead in out.stderr and "cannot reach" in out.stderr
    assert time.monotonic() - started < 30
