"""`vtm registry ...`, `vtm ftp serve`, publish-best against a real MLflow server, script steps.

The commands run in a subprocess through `vtm_tui.cli.main`; until cli.py lists the registry
and ftp command groups, the subprocess adds them itself (SHIM), so these tests hold either way.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fixtures.ftp import PASSWORD, SilentServer, write_checkpoint
from fixtures.vtm import base_env

from vtm_tui.settings import Settings

SHIM = ("import sys, vtm_tui.cli as cli\n"
        "from vtm_tui.commands import ftp, registry\n"
        "if registry not in cli.COMMAND_GROUPS:\n"
        "    cli.COMMAND_GROUPS = (*cli.COMMAND_GROUPS, registry, ftp)\n"
        "sys.exit(cli.main())\n")


def vtm(*args: str, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHIM, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cli_env(tmp_path: Path, **extra: str) -> dict:
    return base_env(VTM_HOME=str(tmp_path / ".vtm"), **extra)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_round_trip_with_json(target, tmp_path):
    env = cli_env(tmp_path, VTM_REGISTRY_URL=target.url, VTM_FTP_PASSWORD=PASSWORD)
    ckpt = write_checkpoint(tmp_path / "best.pth", num_classes=3)
    r = vtm("registry", "publish", str(ckpt), "--model", "clf", "--stage", "dev", "--set-latest",
            "--convert-standard", "--task", "classification", "--num-classes", "3", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    published = json.loads(r.stdout)
    assert published["version"] == 1 and published["created"] and published["latest"] == 1

    r = vtm("registry", "ls", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["models"] == [
        {"model": "clf", "stages": {"dev": {"versions": [1], "latest": 1, "latest_pointer": 1}}}]
    r = vtm("registry", "ls", "clf", "dev", "--json", cwd=tmp_path, env=env)
    listing = json.loads(r.stdout)
    assert listing["latest"] == 1 and listing["versions"][0]["bundle_sha256"] == published["manifest"]["bundle_sha256"]
    assert listing["versions"][0]["latest"] is True
    r = vtm("registry", "ls", "clf", "dev", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "1 *" in r.stdout and "file best.pth" in r.stdout

    r = vtm("registry", "promote", "clf", "latest", "--from", "dev", "--to", "release", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["manifest"]["bundle_sha256"] == published["manifest"]["bundle_sha256"]

    r = vtm("registry", "pull", "clf", "--dest", "dl", cwd=tmp_path, env=env)  # default: release, latest
    assert r.returncode == 0, r.stderr
    assert "pulled clf/release/1" in r.stdout and "verified" in r.stdout
    assert sha(tmp_path / "dl" / "clf" / "release" / "1" / "checkpoint.pth") == sha(ckpt)

    r = vtm("registry", "show", "clf", "release", "1", "--json", cwd=tmp_path, env=env)
    assert json.loads(r.stdout)["source"]["type"] == "promotion"
    assert PASSWORD not in r.stdout + r.stderr


def test_cli_default_registry_is_a_folder_in_vtm_home(tmp_path):
    env = cli_env(tmp_path)
    r = vtm("registry", "publish", str(write_checkpoint(tmp_path / "a.pth")), "--model", "m", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".vtm" / "registry" / "m" / "dev" / "1" / "manifest.json").is_file()
    r = vtm("registry", "ls", cwd=tmp_path, env=env)
    assert "m " in r.stdout and "dev" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["registry", "publish", "x.pth"], "--model"),
    (["registry", "pull", "m", "--stage", "prod"], "invalid choice"),
    (["registry", "publish", "x.pth", "--model", "m", "--version", "0"], "positive integer"),
    (["registry", "publish", "{ckpt}", "--model", "a/b"], "invalid model name"),
    (["registry", "publish", "{ckpt}", "--model", "..", "--registry", "ftp://vtm@127.0.0.1:1/r"], "invalid model name"),
    (["registry", "pull", "m", "--version", "../1"], "invalid version"),
    (["registry", "ls", "--registry", "gopher://host/x"], "unsupported registry URL"),
    (["registry", "ls", "--registry", "ftp://vtm:pw@127.0.0.1:21/x"], "no password in the registry URL"),
    (["registry", "publish", "missing.pth", "--model", "m"], "no such file"),
    (["registry", "promote", "m", "1", "--from", "dev", "--to", "dev"], "different stages"),
    (["registry", "pull", "nothing-here"], "no committed version"),
    (["ftp", "serve", "--port", "0"], "VTM_FTP_PASSWORD"),
])
def test_cli_usage_errors_exit_2_in_one_line(args, message, tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    r = vtm(*[a.replace("{ckpt}", str(ckpt)) for a in args], cwd=tmp_path, env=cli_env(tmp_path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    if "usage:" not in r.stderr:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_network_failures_exit_1_in_one_line(tmp_path):
    silent = SilentServer()
    try:
        env = cli_env(tmp_path, VTM_FTP_TIMEOUT="1", VTM_FTP_PASSWORD=PASSWORD)
        started = time.monotonic()
        r = vtm("registry", "ls", "--registry", f"ftp://vtm@127.0.0.1:{silent.port}/r", cwd=tmp_path, env=env)
        assert time.monotonic() - started < 15
    finally:
        silent.close()
    assert r.returncode == 1 and "no answer from the server within 1 s" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_wrong_password_is_not_printed(ftp_target, tmp_path):
    wrong = "Wr0ng-cli-pa55word"
    env = cli_env(tmp_path, VTM_FTP_PASSWORD=wrong, VTM_REGISTRY_URL=ftp_target.url)
    r = vtm("registry", "publish", str(write_checkpoint(tmp_path / "a.pth")), "--model", "m", cwd=tmp_path, env=env)
    assert r.returncode == 1 and "login refused" in r.stderr
    assert wrong not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_ftp_serve_serves_the_registry(tmp_path):
    env = cli_env(tmp_path, VTM_FTP_PASSWORD=PASSWORD, VTM_FTP_RO_PASSWORD="ro-pw")
    proc = subprocess.Popen([sys.executable, "-c", SHIM, "ftp", "serve", "--port", "0", "--read-only-user", "guest"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving "), line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert url.startswith("ftp://vtm@127.0.0.1:")
        ckpt = write_checkpoint(tmp_path / "a.pth")
        r = vtm("registry", "publish", str(ckpt), "--model", "m", "--set-latest", "--registry", url,
                cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        # it serves <VTM_HOME>/registry, the default registry: the same version is there
        assert (tmp_path / ".vtm" / "registry" / "m" / "dev" / "1" / "manifest.json").is_file()
        guest = f"ftp://guest@127.0.0.1:{port}/"
        r = vtm("registry", "publish", str(ckpt), "--model", "other", "--registry", guest, cwd=tmp_path,
                env={**env, "VTM_FTP_PASSWORD": "ro-pw"})
        assert r.returncode == 1 and "refused" in r.stderr
        r = vtm("registry", "pull", "m", "--stage", "dev", "--registry", guest, "--dest", "dl", cwd=tmp_path,
                env={**env, "VTM_FTP_PASSWORD": "ro-pw"})
        assert r.returncode == 0, r.stderr
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "stopped" in out, err
    assert PASSWORD not in out + err


# ---------------------------------------------------------------------------
# publish-best against the real tracking server
# ---------------------------------------------------------------------------

def _runs_with_checkpoints(embedded_server, tmp_path, values) -> tuple[str, dict[str, Path]]:
    """An experiment with one finished run per metric value, each with a checkpoint artifact."""
    from mlflow import MlflowClient

    client = MlflowClient(embedded_server.uri)
    name = f"registry-best-{os.getpid()}-{time.time_ns()}"
    exp = client.create_experiment(name)
    files = {}
    for seed, value in enumerate(values):
        run = client.create_run(exp)
        run_id = run.info.run_id
        if value is not None:
            client.log_metric(run_id, "val_accuracy", value)
        ckpt = write_checkpoint(tmp_path / run_id / "best_checkpoint.pth", seed=seed, metric=value or 0.0)
        client.log_artifact(run_id, str(ckpt), "checkpoints")
        client.set_terminated(run_id)
        files[run_id] = ckpt
    return name, files


@pytest.fixture(scope="module")
def best_runs(embedded_server, tmp_path_factory):
    """Four runs, shared by the backends: val_accuracy 0.3, 0.9, none, 0.6."""
    return _runs_with_checkpoints(embedded_server, tmp_path_factory.mktemp("runs"), [0.3, 0.9, None, 0.6])


def test_publish_best_takes_the_best_run(target, embedded_server, best_runs, tmp_path):
    from vtm_tui.core.registry.publish_best import publish_best

    experiment, files = best_runs
    best_id = list(files)[1]
    settings = Settings.load(cwd=tmp_path, environ=base_env(
        VTM_HOME=str(tmp_path / ".vtm"), MLFLOW_TRACKING_URI=embedded_server.uri))
    with target.open() as reg:
        result = publish_best(reg, settings, task="classification", experiment=experiment, stage="dev",
                              set_latest=True, convert_standard=True)
        m = result.manifest
        assert result.created and result.model == "classification-best-model"  # the catalog's modelName
        assert m.source["type"] == "mlflow_run" and m.source["run_id"] == best_id
        assert m.source["artifact"] == "checkpoints/best_checkpoint.pth"
        assert m.metric == {"name": "val_accuracy", "value": 0.9, "mode": "max"}
        assert m.file("checkpoint.pth").sha256 == sha(files[best_id]) and m.has_standard
        assert result.extra["best_run"]["considered"] == 4 and result.extra["best_run"]["eligible"] == 3
        again = publish_best(reg, settings, task="classification", experiment=experiment, convert_standard=True)
        assert not again.created and again.version == result.version  # same run, same bytes: no-op
        low = publish_best(reg, settings, experiment=experiment, metric="val_accuracy", mode="min", model="worst")
        assert low.manifest.source["run_id"] == list(files)[0] and low.manifest.metric["value"] == 0.3


def test_publish_best_cli_with_runs_of_the_example_script(embedded_server, tmp_path):
    """Two real runs of the classification example; the CLI publishes the better one."""
    from mlflow import MlflowClient

    experiment = f"registry-example-{time.time_ns()}"
    env = cli_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri)
    procs = [subprocess.Popen([sys.executable, "-m", "vtm_tui.train.classification", "--epochs", "1",
                               "--samples", "64", "--seed", str(seed), "--experiment_name", experiment,
                               "--output_dir", str(tmp_path / f"out{seed}")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for seed in (1, 2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    client = MlflowClient(embedded_server.uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    best = max(runs, key=lambda r: (r.data.metrics["val_accuracy"], r.info.start_time))
    r = vtm("registry", "publish-best", "--task", "classification", "--experiment-name", experiment,
            "--set-latest", "--json", cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["manifest"]["source"]["run_id"] == best.info.run_id
    assert result["manifest"]["metric"]["value"] == pytest.approx(best.data.metrics["val_accuracy"])
    assert result["manifest"]["task_type"] == "classification" and result["manifest"]["num_classes"] == 5
    ckpt = next(tmp_path.glob(f"out*/checkpoints/{best.info.run_id}/best_checkpoint.pth"))
    assert result["manifest"]["files"][0]["sha256"] == sha(ckpt)
    r = vtm("registry", "publish-best", "--experiment-name", experiment, "--metric", "nope", "--mode", "max",
            "--model", "x", cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 2 and "has a metric 'nope'" in r.stderr


# ---------------------------------------------------------------------------
# --script steps
# ---------------------------------------------------------------------------

def test_script_steps(target, tmp_path, monkeypatch):
    from vtm_tui.script import runner as script
    from vtm_tui.script.registry_steps import STEPS

    monkeypatch.setattr(script, "STEPS", {**script.STEPS, **STEPS})
    write_checkpoint(tmp_path / "best.pth", num_classes=5)
    (tmp_path / "steps.yaml").write_text(
        "steps:\n"
        "  - registry_publish: {file: best.pth, modelName: clf, stage: dev, setLatest: true,\n"
        "                       convertToTorchStandard: true, torchTaskType: classification, torchNumClasses: 5}\n"
        "  - registry_promote: {model: clf, version: latest, from: dev, to: release}\n"
        "  - registry_pull: {model: clf, stage: release, dest: downloads}\n")
    settings = Settings.load(cwd=tmp_path, environ=base_env(
        VTM_HOME=str(tmp_path / ".vtm"), VTM_REGISTRY_URL=target.url, VTM_FTP_PASSWORD=PASSWORD))
    lines = []
    assert script.run_script(settings, tmp_path / "steps.yaml", log=lines.append) == 0, lines
    assert (tmp_path / "downloads" / "clf" / "release" / "1" / "model-standard.pt2").is_file()
    assert any("published clf/dev/1" in line for line in lines)

    (tmp_path / "bad.yaml").write_text("steps:\n  - registry_pull: {model: clf, stage: prod}\n")
    assert script.run_script(settings, tmp_path / "bad.yaml", log=lines.append) == 2
    (tmp_path / "bad2.yaml").write_text("steps:\n  - registry_publish: {file: best.pth, modelName: clf, colour: red}\n")
    assert script.run_script(settings, tmp_path / "bad2.yaml", log=lines.append) == 2


def test_publish_takes_the_spec_options_not_given_from_the_catalog_s_model_block(tmp_path):
    """`vtm registry publish --convert-standard` of the user's DataParallel UNet with no spec
    option: the architecture (a file next to the catalog, not the working folder), its kwargs,
    input shape and class names come from the catalog task that publishes to that model, as
    publish-best and the Registry tab take them; an option given wins over the block."""
    import shutil

    import torch
    from fixtures.user_project import MODELS, user_models

    project = tmp_path / "team"
    project.mkdir()
    shutil.copy(MODELS, project / "models.py")
    (project / "catalog.yaml").write_text(textwrap.dedent("""\
        tasks:
          - taskType: user-unet
            baseTaskType: segmentation
            title: The user's UNet
            runner: {startMethod: python_script, target: train.py}
            mlflow: {metric: val_miou, mode: max, modelName: unet-seg}
            model:
              arch: ./models.py:UNetSegmenter
              archKwargs: {num_classes: 3, width: 4}
              inputShape: [3, 16, 16]
              classNames: [background, lane, car]
        """))
    torch.manual_seed(0)
    net = user_models().build_model("unet", num_classes=3, width=4).eval()
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, work / "unet_dp.pth")
    env = cli_env(tmp_path, VTM_REGISTRY_URL=str(tmp_path / "reg"),
                  TRAINING_CATALOG_PATH=str(project / "catalog.yaml"))

    r = vtm("registry", "publish", "unet_dp.pth", "--model", "unet-seg", "--convert-standard",
            "--class-names", "sky,road,car", "--json", cwd=work, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    manifest = json.loads(r.stdout)["manifest"]
    assert manifest["spec"]["architecture"] == "./models.py:UNetSegmenter"
    assert manifest["spec"]["input_shape"] == [3, 16, 16] and manifest["task_type"] == "segmentation"
    assert manifest["spec"]["class_names"] == ["sky", "road", "car"]  # the option wins over the block
    assert manifest["conversion"]["max_abs_diff"] < 1e-5

    r = vtm("registry", "publish", "unet_dp.pth", "--model", "other", "--convert-standard", cwd=work, env=env,
            timeout=300)  # no block publishes to 'other': nothing to take, and the conversion says what it lacks
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
