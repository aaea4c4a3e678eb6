"""The predict-target grammar (core/serving/targets.py) and the typed Prediction, without a server."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from fixtures.vtm import VTM_BIN

from vtm_tui.core.serving.predict_io import Prediction, summarize
from vtm_tui.core.serving.targets import FileTarget, ModelTarget, PinnedTarget, ServerTarget, parse_target
from vtm_tui.errors import UserError


@pytest.mark.parametrize("text, expected", [
    ("http://127.0.0.1:5002", ServerTarget("http://127.0.0.1:5002")),
    ("  https://models.example.org/  ", ServerTarget("https://models.example.org/")),
    ("models:/clf@release", ModelTarget("clf", "release")),
    ("models:/clf@champion", ModelTarget("clf", "champion")),
    ("models:/clf", ModelTarget("clf", "release")),
    ("models:/clf/3", PinnedTarget("models:/clf/3")),
    ("runs:/0123abcd/model", PinnedTarget("runs:/0123abcd/model")),
    ("runs:/0123abcd/checkpoints/model", PinnedTarget("runs:/0123abcd/checkpoints/model")),
    ("clf", ModelTarget("clf", "release", "latest")),
    ("clf@dev", ModelTarget("clf", "dev", "latest")),
    ("clf@release:4", ModelTarget("clf", "release", "4")),
    ("clf@dev:latest", ModelTarget("clf", "dev", "latest")),
    ("a/b", FileTarget("a/b")),
    ("./model-standard.pt2", FileTarget("./model-standard.pt2")),
    ("downloads/clf/release/3", FileTarget("downloads/clf/release/3")),
    ("scripted.pt", FileTarget("scripted.pt")),
    ("best.ckpt", FileTarget("best.ckpt")),
    ("~/models/x.pt2", FileTarget("~/models/x.pt2")),
])
def test_good_targets_parse_to_typed_targets(text, expected):
    assert parse_target(text) == expected


def test_an_alias_target_names_the_uri_a_native_server_serves():
    assert parse_target("clf@dev").model_uri == "models:/clf@dev" == parse_target("models:/clf@dev").model_uri


@pytest.mark.parametrize("text, why", [
    ("", "give a predict target"),
    ("   ", "give a predict target"),
    ("http://", "names no host"),
    ("http://host:port", "not a server URL"),
    ("ftp://host/model", "unknown scheme 'ftp'"),
    ("models:/", "no model name"),
    ("models:/@release", "needs a name and an alias"),
    ("models:/clf@", "needs a name and an alias"),
    ("models:/clf/", "needs a name and a version"),
    ("models:/clf/3/extra", "needs a name and a version"),
    ("runs:/", "needs a run id and an artifact path"),
    ("runs:/0123abcd", "needs a run id and an artifact path"),
    ("@release", "NAME@STAGE[:VERSION]"),
    ("clf@", "no stage after '@'"),
    ("clf@dev:", "VERSION is a number or latest"),
    ("clf@dev:0", "VERSION is a number or latest"),
    ("clf@dev:v2", "VERSION is a number or latest"),
    ("clf:3", "NAME@STAGE[:VERSION]"),
    ("my model", "no spaces"),
])
def test_bad_targets_are_one_line_usage_errors(text, why):
    with pytest.raises(UserError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert why in message and "\n" not in message and caught.value.exit_code == 2
    assert "models:/NAME@ALIAS" in message  # says what is expected


def test_a_bad_target_on_the_command_line_exits_2_in_one_line(tmp_path):
    result = subprocess.run([VTM_BIN, "predict", "models:/clf@", "--random"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("vtm: error: predict target 'models:/clf@'")
    assert len(result.stderr.strip().splitlines()) == 1
    both = subprocess.run([VTM_BIN, "predict", "clf@dev", "--version", "2", "--random"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "--stage and --version go with --model" in both.stderr


def test_prediction_json_and_lines_keep_their_shape(tmp_path):
    logits = np.array([[0.1, 2.0, -1.0]])
    classification = summarize("classification", logits, ["cat", "dog", "eel"], top_k=2)
    assert isinstance(classification, Prediction) and classification.served_by == ""
    data = {**classification.to_json(), "served_by": "native", "source": "http://x", "skipped": []}
    assert list(data) == ["task_type", "top", "scores", "served_by", "source", "skipped"]
    assert [row["class"] for row in data["top"]] == ["dog", "cat"] and data["scores"] == [0.1, 2.0, -1.0]
    assert list(data["top"][0]) == ["class", "index", "probability"]
    assert json.loads(json.dumps(classification.to_json())) == classification.to_json()
    assert classification["task_type"] == "classification" and classification.get("shares", []) == []

    mask = tmp_path / "mask.png"
    segmentation = summarize("segmentation", np.zeros((1, 3, 8, 8)), None, mask_path=mask)
    keys = list(segmentation.to_json())
    assert keys == ["task_type", "shares", "preview", "mask_path", "served_by", "source", "skipped"]
    assert segmentation.get("mask_path") == str(mask) and mask.is_file()
    assert segmentation.lines()[1:] == ["  class 0              100.0% of pixels",
                                        "  class 1              0.0% of pixels",
                                        "  class 2              0.0% of pixels", f"  mask: {mask}"]
    assert "mask_path" not in summarize("segmentation", np.zeros((1, 2, 4, 4))).to_json()
