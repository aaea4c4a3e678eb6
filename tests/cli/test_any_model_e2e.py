"""Acceptance of "any model": the user's own ResNet and dict-output UNet (tests/user_project), trained
for one epoch by the user's own train.py launched through the catalog's targetEnvVar, published with
--convert-standard --arch as (a) a plain state dict, (b) a real Lightning .ckpt, (c) a DataParallel
`module.` state dict, and (d) from the run's MLflow pt2 model by publish-best; then pulled and
predicted by a process whose sys.path lacks the user project, matching native `mlflow models serve`
of the same weights within 1e-5.

Native serving cannot serve a dict output (MLflow answers HTTP 400), so for the UNet the user's
train.py also logs "model_out", a view of the same net returning its "out" tensor: that is what
the native server runs, while the checkpoints and the "model" publish-best ships keep the dict.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest
from fixtures.user_project import MODELS, TRAIN
from fixtures.vtm import VTM_BIN, free_port, make_vtm_env

from vtm_tui.core.serving import native

SIZE, WIDTH, CLASSES = 16, 4, 3
ARCHS = {
    "resnet": dict(env="CLASSIFICATION_SCRIPT_PATH", cls="ResNetClassifier", metric="val_accuracy",
                   names=["red", "green", "blue"], served="model"),
    "unet": dict(env="SEGMENTATION_SCRIPT_PATH", cls="UNetSegmenter", metric="val_miou",
                 names=["background", "disc", "square"], served="model_out"),
}
FORMATS = ("plain", "lightning", "dataparallel")
CATALOG = """\
tasks:
  - taskType: user-{arch}
    title: The user's own {arch}
    runner:
      startMethod: python_script
      target: not-here/train.py          # {env} points it at the user's train.py
      targetEnvVar: {env}
      env: {{MLFLOW_EXPERIMENT_NAME: "{experiment}", OMP_NUM_THREADS: "1"}}
    extraFields:
      - {{name: arch, valueType: str, default: {arch}}}
      - {{name: epochs, valueType: int, default: 1}}
      - {{name: samples, valueType: int, default: 24}}
      - {{name: batch_size, valueType: int, default: 8}}
      - {{name: image_size, valueType: int, default: {size}}}
      - {{name: width, valueType: int, default: {width}}}
      - {{name: num_classes, valueType: int, default: {classes}}}
      - {{name: checkpoint_format, valueType: str, default: plain}}
      - {{name: limit_batches, valueType: int}}
      - {{name: output_dir, valueType: str, default: outputs}}
    mlflow: {{metric: {metric}, mode: max, modelName: user-{arch}, artifactPath: model}}
    model:
      classNames: {names}
"""


def _launch_all(vtm, arch: str) -> dict[str, dict]:
    """Train once per checkpoint format, the three runs side by side; format -> run record."""
    ids = {}
    for fmt in FORMATS:
        extra = ["--set", "limit_batches=2"] if fmt == "lightning" else []
        result = vtm.run("launch", f"user-{arch}", "--set", f"checkpoint_format={fmt}", "--set",
                         f"output_dir=out-{fmt}", *extra, "--json", check=True)
        ids[fmt] = json.loads(result.stdout)["id"]
    runs = {fmt: vtm.wait_finished(run_id, timeout=600) for fmt, run_id in ids.items()}
    for fmt, run in runs.items():
        assert run.status == "succeeded" and run.mlflow_run_id, (fmt, open(run.log_path).read()[-3000:])
        assert run.argv[2] == str(TRAIN)  # the catalog's targetEnvVar picked the user's script
    return {fmt: {"mlflow_run_id": run.mlflow_run_id, "progress": run.progress} for fmt, run in runs.items()}


def _parallel(vtm, commands: list[list[str]], timeout: float = 600) -> list[str]:
    procs = [subprocess.Popen([VTM_BIN, *argv], cwd=vtm.cwd, env=vtm.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in commands]
    outputs = []
    for argv, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"vtm {' '.join(argv)} -> {proc.returncode}\n{out}\n{err}"
        outputs.append(out)
    return outputs


PREDICT_WITHOUT_USER_CODE = textwrap.dedent("""\
    import sys
    assert not any("user_project" in entry for entry in sys.path), sys.path
    from vtm_tui.cli import main
    code = main(sys.argv[1:])
    leaked = [m for m in sys.modules if m.startswith(("vtm_user_arch_", "vtm_test_user")) or m == "models"]
    assert not leaked, leaked
    sys.exit(code)
""")


def _predict_here(vtm, *argv: str) -> dict:
    """`vtm predict ...` in a fresh interpreter that has no copy of the user's code on sys.path and
    never imports it."""
    env = {k: v for k, v in vtm.env.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", PREDICT_WITHOUT_USER_CODE, "predict", *argv, "--json"],
                            cwd=vtm.cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("arch", ["resnet", "unet"])
def test_the_user_s_model_publishes_pulls_and_predicts_like_native_serving(arch, embedded_server, tmp_path):
    spec = ARCHS[arch]
    experiment = f"user-{arch}-{uuid.uuid4().hex[:8]}"
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.format(arch=arch, env=spec["env"], experiment=experiment, size=SIZE, width=WIDTH,
                                      classes=CLASSES, metric=spec["metric"], names=json.dumps(spec["names"])))
    vtm = make_vtm_env(tmp_path, MLFLOW_TRACKING_URI=embedded_server.uri, TRAINING_CATALOG_PATH=str(catalog),
                       **{spec["env"]: str(TRAIN)})
    runs = _launch_all(vtm, arch)

    # (a) plain, (b) Lightning, (c) DataParallel checkpoints, converted with the user's architecture
    checkpoints = {"plain": "out-plain/checkpoint.pth", "lightning": "out-lightning/best.ckpt",
                   "dataparallel": "out-dataparallel/checkpoint.pth"}
    convert = ["--convert-standard", "--arch", f"{MODELS}:{spec['cls']}",
               "--arch-kwargs", json.dumps({"num_classes": CLASSES, "width": WIDTH}),
               "--input-shape", f"3,{SIZE},{SIZE}", "--class-names", ",".join(spec["names"])]
    _parallel(vtm, [["registry", "publish", checkpoints[fmt], "--model", f"user-{arch}", "--stage", "dev",
                     "--version", str(number), *convert] for number, fmt in enumerate(FORMATS, 1)])
    # (d) publish-best: the best of the DataParallel runs ships its MLflow pt2 model as the standard program
    best = json.loads(vtm.run("registry", "publish-best", "--task", f"user-{arch}", "--experiment-name", experiment,
                              "--filter", "params.checkpoint_format = 'dataparallel'", "--json",
                              check=True, timeout=600).stdout)
    assert best["version"] == 4 and best["best_run"]["run_id"] == runs["dataparallel"]["mlflow_run_id"]
    assert best["best_run"]["logged_model"] == "model"

    manifests = [json.loads(vtm.run("registry", "show", f"user-{arch}", "dev", str(v), "--json",
                                    check=True).stdout) for v in (1, 2, 3, 4)]
    for version, manifest in enumerate(manifests, 1):
        conversion, model_spec = manifest["conversion"], manifest["spec"]
        assert conversion["max_abs_diff"] < 1e-5 and conversion["tolerance"] == 1e-5, (version, conversion)
        assert model_spec["class_names"] == spec["names"] and model_spec["input_shape"] == [3, SIZE, SIZE]
        assert model_spec["output_key"] == ("out" if arch == "unet" else None)
        assert model_spec["task_type"] == ("segmentation" if arch == "unet" else "classification")
        assert {f["name"] for f in manifest["files"]} >= {"model-standard.pt2", "bundle.json"}
    assert [m["conversion"]["source"] for m in manifests] == ["checkpoint", "lightning", "checkpoint", "mlflow-pt2"]
    assert "stripped the key prefix 'module.'" in manifests[2]["conversion"]["notes"]
    assert "stripped the key prefix 'model.'" in manifests[1]["conversion"]["notes"]
    assert manifests[3]["source"]["run_id"] == runs["dataparallel"]["mlflow_run_id"]

    # native servers of the same weights: the runs' logged models (the UNet's servable "out" view)
    ports = {fmt: free_port() for fmt in FORMATS}
    servers = _parallel(vtm, [["serve", "native", f"runs:/{runs[fmt]['mlflow_run_id']}/{spec['served']}",
                               "--port", str(ports[fmt]), "--json"] for fmt in FORMATS], timeout=400)
    urls = {fmt: json.loads(out)["url"] for fmt, out in zip(FORMATS, servers, strict=True)}
    try:
        inputs = np.random.default_rng(5).random((4, 3, SIZE, SIZE), dtype=np.float32)
        np.save(tmp_path / "x.npy", inputs)
        served = {}
        for fmt, url in urls.items():
            answer = _predict_here(vtm, url, "--input", "x.npy", "--shape", f"3,{SIZE},{SIZE}",
                                   "--save-outputs", f"native-{fmt}.npy")
            assert answer["served_by"] == "native"
            served[fmt] = np.load(tmp_path / f"native-{fmt}.npy")
        for version, fmt in ((1, "plain"), (2, "lightning"), (3, "dataparallel"), (4, "dataparallel")):
            local = _predict_here(vtm, f"user-{arch}@dev:{version}", "--input", "x.npy",
                                  "--save-outputs", f"local-{version}.npy", "--mask", f"masks-{version}")
            assert local["served_by"] == "local" and local["program"]["file"] == "model-standard.pt2"
            assert local["program"]["format"] == "vtm-standard-v2" and len(local["samples"]) == 4
            outputs = np.load(tmp_path / f"local-{version}.npy")
            shape = (4, CLASSES) if arch == "resnet" else (4, CLASSES, SIZE, SIZE)
            assert outputs.shape == served[fmt].shape == shape
            assert np.abs(outputs - served[fmt]).max() < 1e-5, (version, fmt, np.abs(outputs - served[fmt]).max())
            if arch == "resnet":
                assert np.allclose(local["scores"], served[fmt][0], atol=1e-5)
                assert [row["class"] for row in local["top"]][0] == spec["names"][int(served[fmt][0].argmax())]
            else:
                assert np.array_equal(outputs.argmax(1), served[fmt].argmax(1))  # the same masks
                assert sorted(p.name for p in (tmp_path / f"masks-{version}").iterdir()) == \
                    [f"x.npy[{i}].png" for i in range(4)]
    finally:
        stopped = vtm.run("serve", "stop", "--all", timeout=120)
    assert stopped.returncode == 0 and stopped.stdout.count(" stopped (") == 3, stopped.stdout + stopped.stderr
    deadline = time.monotonic() + 30
    while any(native.ping(url, timeout=0.5) for url in urls.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(native.ping(url, timeout=0.5) for url in urls.values())
    assert native.list_servers(vtm.settings) == []
