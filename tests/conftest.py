"""Shared fixtures: one real MLflow tracking server per test session (vtm's embedded server,
started through vtm's own code on a free port), and an isolated vtm environment per test."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vtm_tui.core.runs.store import RunRecord, RunStore
from vtm_tui.core.tracking import server as mlflow_server
from vtm_tui.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
VTM_BIN = str(Path(sys.executable).with_name("vtm"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VTM_", "MLFLOW_")) and k != "TRAINING_CATALOG_PATH"}
    env.update(extra)
    return env


@dataclass
class EmbeddedServer:
    home: Path
    port: int
    settings: Settings

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory) -> EmbeddedServer:
    """vtm's own embedded tracking server (SQLite backend in VTM_HOME), shared by the session."""
    home = tmp_path_factory.mktemp("embedded") / ".vtm"
    port = free_port()
    settings = Settings.load(cwd=home.parent, environ=base_env(VTM_HOME=str(home), VTM_MLFLOW_PORT=str(port)))
    mlflow_server.up(settings)
    yield EmbeddedServer(home, port, settings)
    mlflow_server.down(settings)


@dataclass
class VtmEnv:
    """An isolated vtm: its own working directory, VTM_HOME and catalog; the shared server."""
    cwd: Path
    env: dict[str, str]
    settings: Settings
    procs: list = field(default_factory=list)

    def run(self, *args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([VTM_BIN, *args], cwd=self.cwd, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"vtm {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen([VTM_BIN, *args], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, **kwargs)
        self.procs.append(proc)
        return proc

    @property
    def store(self) -> RunStore:
        return RunStore(self.settings.runs_db)

    def launch_json(self, *args: str) -> RunRecord:
        result = self.run("launch", *args, "--json", check=True)
        return self.store.get(json.loads(result.stdout)["id"])

    def wait_for(self, run_id: int, predicate, timeout: float = 120) -> RunRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.store.get(run_id)
            if predicate(run):
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} never matched; last record: {self.store.get(run_id)}")

    def wait_finished(self, run_id: int, timeout: float = 180) -> RunRecord:
        return self.wait_for(run_id, lambda run: not run.active, timeout)


def make_vtm_env(cwd: Path, **extra: str) -> VtmEnv:
    env = base_env(VTM_HOME=str(cwd / ".vtm"), VTM_CANCEL_GRACE="2", **extra)
    return VtmEnv(cwd, env, Settings.load(cwd=cwd, environ=env))


def train_registered_model(server_uri: str, cwd: Path, prefix: str) -> tuple[VtmEnv, str, str]:
    """One run of the shipped classification script (1 epoch, 64 samples: its checkpoint and its
    logged model hold the same weights), registered in MLflow as NAME@release and published,
    converted to the standard format, to the folder registry as NAME/release.
    Returns (vtm, NAME, MLflow run id)."""
    vtm = make_vtm_env(cwd, MLFLOW_TRACKING_URI=server_uri, TRAINING_CATALOG_PATH=str(REPO / "catalog.yaml"))
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run = json.loads(vtm.run("launch", "classification", "--set", "epochs=1", "--set", "samples=64",
                             "--set", f"experiment_name={name}", "--wait", "--json", check=True).stdout)
    vtm.run("mlflow", "register", run["mlflow_run_id"], "--model", name, "--alias", "release", check=True)
    checkpoint = next((cwd / "outputs" / "checkpoints").glob("*/best_checkpoint.pth"))
    vtm.run("registry", "publish", str(checkpoint), "--model", name, "--stage", "release",
            "--set-latest", "--convert-standard", "--task", "classification", "--num-classes", "5",
            check=True)
    return vtm, name, run["mlflow_run_id"]


@pytest.fixture
def vtm_env(tmp_path, embedded_server) -> VtmEnv:
    """vtm with the fake-script test catalog, logging to the shared tracking server."""
    env = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri,
                       TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
    yield env
    for proc in env.procs:
        if proc.poll() is None:
            proc.kill()
    for run in env.store.active():  # never leave a run behind, even when a test failed
        subprocess.run([VTM_BIN, "runs", "cancel", str(run.id), "--wait"], cwd=env.cwd, env=env.env,
                       capture_output=True, timeout=60)


@pytest.fixture
def offline_env(tmp_path) -> VtmEnv:
    """vtm pointed at an MLflow store that needs no server (file-free SQLite), for tests that
    do not look at MLflow."""
    return make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                        TRAINING_CATALOG_PATH=str(DATA / "catalog.yaml"))
