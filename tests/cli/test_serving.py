"""Serving: a real `mlflow models serve` for a model trained by the example script, the predict
client, and the fallback to the registry bundle + local loader."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from fixtures.vtm import REPO, free_port, make_vtm_env, train_registered_model

from vtm_tui.core import procs
from vtm_tui.core.serving import native as serving


@pytest.fixture(scope="module")
def trained(embedded_server, tmp_path_factory):
    return train_registered_model(embedded_server.uri, tmp_path_factory.mktemp("serving"), "serve")


@pytest.fixture(scope="module")
def server(trained):
    vtm, name, _ = trained
    record = json.loads(vtm.run("serve", "native", f"models:/{name}@release", "--port", str(free_port()),
                                "--json", check=True).stdout)
    yield record
    vtm.run("serve", "stop", str(record["id"]))


def test_native_server_answers_ping_and_predict_url(trained, server):
    vtm, name, _ = trained
    assert serving.ping(server["url"])
    listed = json.loads(vtm.run("serve", "ls", "--json", check=True).stdout)
    assert [(s["id"], s["status"], s["model_uri"]) for s in listed] == [(server["id"], "up", f"models:/{name}@release")]
    result = json.loads(vtm.run("predict", "--url", server["url"], "--random", "--json", check=True).stdout)
    assert result["served_by"] == "native" and result["task_type"] == "classification"
    assert len(result["top"]) == 3 and len(result["scores"]) == 5
    probabilities = [row["probability"] for row in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9
    text = vtm.run("predict", "--url", server["url"], "--random", check=True).stdout
    assert "served by: native" in text


def test_native_and_local_loader_give_the_same_scores(trained, server, tmp_path):
    vtm, name, _ = trained
    sample = tmp_path / "x.npy"
    np.save(sample, np.random.default_rng(7).random((1, 3, 32, 32), dtype=np.float32))
    native = json.loads(vtm.run("predict", "--url", server["url"], "--input", str(sample), "--json",
                                check=True).stdout)
    local = json.loads(vtm.run("predict", "--model", name, "--version", "1", "--input", str(sample),
                               "--json", check=True).stdout)
    assert local["served_by"] == "local" and "registry" in local["source"]
    assert np.allclose(native["scores"], local["scores"], atol=1e-5, rtol=0)
    assert [r["index"] for r in native["top"]] == [r["index"] for r in local["top"]]


def test_running_native_server_is_preferred_for_the_model(trained, server):
    vtm, name, _ = trained
    result = json.loads(vtm.run("predict", "--model", name, "--random", "--json", check=True).stdout)
    assert result["served_by"] == "native" and result["source"] == server["url"]


def test_fallback_to_registry_when_tracking_is_down(trained, tmp_path):
    vtm, name, _ = trained
    # A fresh VTM_HOME knows no running model server; the registry is the same folder.
    dead = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
                        VTM_REGISTRY_URL=str(vtm.settings.home / "registry"))
    result = dead.run("predict", "--model", name, "--native", "--random", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["served_by"] == "local"
    assert any("native" in note and "cannot reach" in note for note in answer["skipped"]), answer["skipped"]
    text = dead.run("predict", "--model", name, "--native", "--random", check=True).stdout
    assert "served by: local" in text and "skipped native" in text


def test_predict_takes_the_targets_of_the_serving_tab(trained, server, tmp_path):
    """`vtm predict TARGET`: a server URL, an MLflow alias and a registry NAME@STAGE all reach the
    running native server; a pinned registry version is the bundle's; an unserved pinned model
    URI says to serve it first."""
    vtm, name, _ = trained
    for target in (f"models:/{name}@release", f"{name}@release", server["url"]):
        result = json.loads(vtm.run("predict", target, "--random", "--json", check=True).stdout)
        assert (result["served_by"], result["source"], result["task_type"]) == \
            ("native", server["url"], "classification"), target
        assert len(result["top"]) == 3 and len(result["scores"]) == 5
    assert "served by: native" in vtm.run("predict", f"models:/{name}@release", "--random", check=True).stdout
    pinned = json.loads(vtm.run("predict", f"{name}@release:1", "--random", "--json", check=True).stdout)
    assert pinned["served_by"] == "local" and f"registry {name}/release/v1" in pinned["source"]
    unserved = vtm.run("predict", f"models:/{name}/1", "--random")
    assert unserved.returncode == 2 and "is not being served: serve it first" in unserved.stderr
    assert len(unserved.stderr.strip().splitlines()) == 1
    # A vtm that knows no running server falls back to the registry for the same target.
    dead = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
                        VTM_REGISTRY_URL=str(vtm.settings.home / "registry"))
    local = json.loads(dead.run("predict", f"{name}@release", "--random", "--json", check=True).stdout)
    assert local["served_by"] == "local" and any("no running model server" in note for note in local["skipped"])


def test_serve_errors_are_clear(trained, server):
    vtm, name, _ = trained
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = vtm.run("serve", "native", f"models:/{name}@release", "--port", str(port))
        assert result.returncode == 2 and f"port {port}" in result.stderr
    result = vtm.run("serve", "native", "models:/no-such-model@release", "--port", str(free_port()))
    assert result.returncode == 2 and "no-such-model" in result.stderr
    assert "Traceback" not in result.stderr
    assert vtm.run("serve", "stop", "999").returncode == 2


def test_stop_ends_the_server_process(trained):
    vtm, name, _ = trained
    record = json.loads(vtm.run("serve", "native", f"models:/{name}@release", "--port", str(free_port()),
                                "--json", check=True).stdout)
    assert procs.is_running(record["pid"], "mlflow")
    assert "stopped" in vtm.run("serve", "stop", str(record["id"]), check=True).stdout
    assert not procs.is_running(record["pid"], "mlflow") and not serving.ping(record["url"])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_code_running_checkpoint_is_refused_and_never_runs(trained, tmp_path):
    vtm, _, _ = trained
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    import torch

    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, evil)
    assert not marker.exists()
    published = vtm.run("registry", "publish", str(evil), "--model", "evil-model", "--stage", "release")
    result = vtm.run("predict", "--model", "evil-model", "--version", "1", "--random")
    assert published.returncode != 0 or result.returncode == 2, (published, result)
    assert "Traceback" not in result.stderr + published.stderr
    assert not marker.exists()
    from vtm_tui.core.standard import UnsafeCheckpoint, load_program

    with pytest.raises(UnsafeCheckpoint):
        load_program(evil, architecture="SmallCNN", num_classes=5)
    assert not marker.exists()


def test_script_steps_serve_predict_stop(trained, tmp_path):
    vtm, name, _ = trained
    script, port = tmp_path / "serve.yaml", free_port()
    script.write_text(
        "steps:\n"
        f"  - serve: {{model_uri: 'models:/{name}@release', port: {port}, as: api}}\n"
        "  - predict: {url: api, random: true, expect_served_by: native}\n"
        f"  - predict: {{model: {name}, version: 1, random: true, expect_served_by: local}}\n"
        "  - stop: api\n")
    result = vtm.run("--script", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "served by: native" in result.stdout and "served by: local" in result.stdout
    assert "stopped" in result.stdout
    assert port not in [s.port for s in serving.list_servers(vtm.settings)]
    assert not serving.ping(f"http://127.0.0.1:{port}")


def test_segmentation_local_predict_writes_mask_and_preview(embedded_server, tmp_path):
    vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri,
                       TRAINING_CATALOG_PATH=str(REPO / "catalog.yaml"))
    vtm.run("launch", "segmentation", "--set", "epochs=1", "--set", "samples=32",
            "--set", "experiment_name=serving-seg", "--wait", check=True)
    checkpoint = next((tmp_path / "outputs" / "checkpoints").glob("*/best_checkpoint.pth"))
    vtm.run("registry", "publish", str(checkpoint), "--model", "seg", "--stage", "dev",
            "--convert-standard", "--task", "segmentation", "--num-classes", "3", check=True)
    mask = tmp_path / "mask.png"
    result = json.loads(vtm.run("predict", "--model", "seg", "--stage", "dev", "--version", "1",
                                "--random", "--mask", str(mask), "--json", check=True).stdout)
    assert result["served_by"] == "local" and result["task_type"] == "segmentation"
    assert len(result["shares"]) == 3 and abs(sum(r["share"] for r in result["shares"]) - 1) < 1e-9
    from PIL import Image

    with Image.open(mask) as image:
        assert image.size == (64, 64) and image.format == "PNG"
    assert len(result["preview"]) == 12 and {len(row) for row in result["preview"]} == {24}
    assert {value for row in result["preview"] for value in row} <= {0, 1, 2}
