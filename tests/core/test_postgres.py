"""`vtm mlflow up --backend-store-uri postgresql+psycopg2://...` on a real PostgreSQL server.

The fixture runs Debian's PostgreSQL binaries (initdb + pg_ctl) as an unprivileged user on a free
port, with its data and socket in a throwaway directory, and stops it by its postmaster PID. The
binaries are required, not optional: .ci/run installs them (apt-get install postgresql).
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.vtm import VTM_BIN, base_env, free_port

from vtm_tui.settings import PACKAGED_CATALOG

DB_USER, DB_PASSWORD, DB_NAME = "vtm", "vtm-secret-pw", "mlflow"
PG_USER = "postgres"  # initdb refuses to run as root; Debian's package creates this user


def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                "apt-get install -y postgresql (.ci/run installs it)")


@dataclass
class Postgres:
    port: int
    pid: int
    base: Path

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    def connect(self, dbname: str = DB_NAME):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=DB_USER, password=DB_PASSWORD,
                                dbname=dbname, connect_timeout=10)


def _as_postgres_user(base: Path) -> list[str]:
    """The command prefix that runs PostgreSQL tools unprivileged; chowns `base` to that user."""
    if os.geteuid() != 0:
        return []
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True)
        entry = pwd.getpwnam(PG_USER)
    for path in [base, *base.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return ["runuser", "-u", PG_USER, "--"]


def _run(argv: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop(prefix: list[str], bindir: Path, data: Path, base: Path) -> None:
    pid = _postmaster_pid(data)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                   cwd=base, capture_output=True, timeout=90)
    if pid is None:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown of our own postmaster, by its PID
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def postgres():
    bindir = pg_bindir()
    # Not pytest's tmp_path: that is private to root, and the server runs as another user.
    base = Path(tempfile.mkdtemp(prefix="vtm-pg-"))
    data = base / "data"
    pwfile = base / "pwfile"
    pwfile.write_text(DB_PASSWORD + "\n")
    prefix = _as_postgres_user(base)
    _run([*prefix, bindir / "initdb", "-D", data, "-U", DB_USER, f"--pwfile={pwfile}",
          "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale"], cwd=base)
    server = None
    try:
        for _attempt in range(3):  # a free port can be taken between choosing and binding it
            port = free_port()
            options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
            started = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"),
                                      "-o", options, "-w", "-t", "60", "start"],
                                     cwd=base, capture_output=True, text=True, timeout=90)
            pid = _postmaster_pid(data)
            if started.returncode == 0 and pid:
                server = Postgres(port, pid, base)
                break
        assert server, f"PostgreSQL did not start:\n{(base / 'pg.log').read_text(errors='replace')}"
        conn = server.connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME}")
        conn.close()
        yield server
    finally:
        _stop(prefix, bindir, data, base)
        shutil.rmtree(base, ignore_errors=True)


def vtm(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # Not the checkout: a developer's .env there must not redirect the test.
    return subprocess.run([VTM_BIN, *args], env=env, cwd=tempfile.gettempdir(), capture_output=True,
                          text=True, timeout=timeout)


def test_tracking_server_on_postgresql(postgres, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from vtm_tui.core.tracking.best import best_run
    from vtm_tui.core.tracking.client import Tracking

    port = free_port()
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_MLFLOW_PORT=str(port),
                   TRAINING_CATALOG_PATH=str(PACKAGED_CATALOG))
    server = f"http://127.0.0.1:{port}"
    experiment = f"vtm-pg-{uuid.uuid4().hex[:6]}"
    try:
        up = vtm(env, "mlflow", "up", "--backend-store-uri", postgres.uri, timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr
        assert server in up.stdout and DB_PASSWORD not in up.stdout and "vtm:***@127.0.0.1" in up.stdout
        status = vtm(env, "mlflow", "status", "--json")
        state = json.loads(status.stdout)
        assert status.returncode == 0 and state["state"] == "up" and state["managed"]
        assert state["backend_store_uri"].startswith("postgresql+psycopg2://vtm:***@")

        # Log through the server: a training run of the example script (metrics, checkpoint,
        # logged model) and a few hand-made runs.
        train = subprocess.run(
            [sys.executable, "-m", "vtm_tui.train.classification", "--epochs", "1", "--samples", "64",
             "--output_dir", str(tmp_path / "out"), "--experiment_name", experiment],
            cwd=tmp_path, env={**env, "MLFLOW_TRACKING_URI": server}, capture_output=True, text=True,
            timeout=400)
        assert train.returncode == 0, train.stdout + train.stderr
        client = MlflowClient(tracking_uri=server)
        eid = client.get_experiment_by_name(experiment).experiment_id
        for accuracy in (-1.0, -2.0):  # worse than any real accuracy
            run = client.create_run(eid)
            client.log_batch(run.info.run_id, metrics=[Metric("val_accuracy", accuracy, 1, 0)],
                             params=[Param("hand_made", "yes")])
            client.set_terminated(run.info.run_id)

        tracking = Tracking(server)
        runs = tracking.search_runs(experiment)
        assert len(runs) == 3
        trained = next(r for r in runs if "hand_made" not in r.params)
        assert trained.status == "FINISHED" and trained.params["epochs"] == "1"
        assert [p.step for p in tracking.metric_history(trained.run_id, "val_accuracy")] == [1]
        best = best_run(tracking, experiment, "val_accuracy", "max")
        assert best.run.run_id == trained.run_id and best.considered == 3
        assert best_run(tracking, experiment, "val_accuracy", "min").value == -2.0

        # The database URI itself works too, and it really is PostgreSQL that holds the runs.
        direct = Tracking(postgres.uri)
        assert {r.run_id for r in direct.search_runs(experiment)} == {r.run_id for r in runs}

        conn = postgres.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'val_accuracy'",
                        (trained.run_id,))
            assert cur.fetchone()[0] == pytest.approx(trained.metrics["val_accuracy"])
            cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(eid),))
            assert cur.fetchone()[0] == 3
        conn.close()

        # No --tracking-uri: the running embedded server (on PostgreSQL) is used; the registry too.
        out = vtm(env, "mlflow", "best", "--task", "classification", "--experiment", experiment,
                  "--model", f"{experiment}-model", "--alias", "dev", "--json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["run_id"] == trained.run_id and data["registered"]["alias"] == "dev"
        registry = MlflowClient(tracking_uri=server, registry_uri=server)
        assert registry.get_model_version_by_alias(f"{experiment}-model", "dev").run_id == trained.run_id
    finally:
        down = vtm(env, "mlflow", "down")
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert vtm(env, "mlflow", "status").returncode == 1


def test_up_fails_fast_when_the_database_is_unreachable(tmp_path):
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_MLFLOW_PORT=str(free_port()))
    dead = f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{free_port()}/{DB_NAME}"
    started = time.monotonic()
    out = vtm(env, "mlflow", "up", "--backend-store-uri", dead, timeout=120)
    assert out.returncode == 2 and "cannot reach the database" in out.stderr
    assert DB_PASSWORD not in out.stderr and time.monotonic() - started < 30
