"""A TensorBoard import changes nothing silently: logs written by other programs (torch's
SummaryWriter, TensorBoard's own summary Writer) with tags that collide, infinities, long
hparams, images and histograms, folders without scalars; each change is counted per tag in the
report (summary lines, --json) and nothing is ever merged."""
from __future__ import annotations

import json
import math
import uuid

import pytest
from test_tb_import import WALL0, cli, mlflow_points, runs_of

from vtm_tui.core.tensorboard import Change, format_report, import_tensorboard
from vtm_tui.core.tensorboard.keys import assign_keys, keys_tags, recorded_keys

LARGEST = 1.7976931348623157e308


@pytest.fixture
def client(embedded_server):
    from mlflow import MlflowClient

    return MlflowClient(embedded_server.uri)


@pytest.fixture
def experiment() -> str:
    return f"tbc-{uuid.uuid4().hex[:10]}"


def torch_writer(log_dir):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


def series(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """key -> [(step, value), ...] sorted: what MLflow holds."""
    found: dict[str, list] = {}
    for key, step, value, _ in mlflow_points(client, run_id):
        found.setdefault(key, []).append((step, value))
    return {key: sorted(points) for key, points in found.items()}


def changes_of(report) -> set[tuple]:
    return {(c.subject, c.what, c.became, c.points) for c in report.changes}


# ---------------------------------------------------------------- colliding tags


def test_flatten_tags_never_merges_val_slash_loss_into_val_loss(tmp_path, embedded_server, client, experiment):
    """The issue's input: one run holds `val/loss` and `val_loss` (a grouped chart and a
    checkpoint-monitor key); with --flatten-tags both landed in `val_loss`, two values per
    step, exit 0, no word of it."""
    root = tmp_path / "run"
    with torch_writer(root) as writer:
        for step in range(5):
            writer.add_scalar("val/loss", 1.0 + step, step, walltime=WALL0 + step)
            writer.add_scalar("val_loss", 0.5 + step, step, walltime=WALL0 + step)
            writer.add_scalar("train/acc", step / 10, step, walltime=WALL0 + step)
    args = ["--tensorboard-dir", str(root), "--tracking-uri", embedded_server.uri, "--experiment-name", experiment,
            "--flatten-tags"]
    result = cli(*args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    run_id = report["runs"][0]["run_id"]
    assert series(client, run_id) == {
        "val_loss": [(s, 0.5 + s) for s in range(5)],  # its own name: kept
        "val/loss": [(s, 1.0 + s) for s in range(5)],  # would have been val_loss: made distinct
        "train_acc": [(s, pytest.approx(s / 10)) for s in range(5)],
    }
    assert {(c["subject"], c["what"], c["became"], c["points"], c["instead_of"]) for c in report["changes"]} == {
        ("val/loss", "made distinct", "val/loss", 5, "val_loss"),
        ("train/acc", "flattened", "train_acc", 5, ""),
    }
    summary = cli(*args, cwd=tmp_path).stdout  # the second import: nothing new, nothing changed
    assert "imported 0 points" in summary and "made distinct" not in summary
    # the log grows: new points of both tags keep their keys
    with torch_writer(root) as writer:
        writer.add_scalar("val/loss", 99.0, 5, walltime=WALL0 + 50)
        writer.add_scalar("val_loss", 98.0, 5, walltime=WALL0 + 50)
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0 and "imported 2 points" in result.stdout, result.stdout
    assert "tag 'val/loss' made distinct as 'val/loss' (1 point): 'val_loss' is another tag's key" in result.stdout
    held = series(client, run_id)
    assert held["val/loss"][-1] == (5, 99.0) and held["val_loss"][-1] == (5, 98.0)
    assert len(held["val/loss"]) == len(held["val_loss"]) == 6


def test_renamed_characters_that_collide_are_made_distinct_whatever_the_order(tmp_path, embedded_server, client,
                                                                               experiment):
    """`val/AR@100` becomes `val/AR_100` (MLflow refuses `@`), which another tag already is:
    written by TensorBoard's own summary Writer, in both orders."""
    from tensorboard.summary import Writer

    keys = []
    for order in (["val/AR@100", "val/AR_100"], ["val/AR_100", "val/AR@100"]):
        root = tmp_path / "-".join(t.replace("/", "").replace("@", "at") for t in order)
        writer = Writer(str(root))
        for step in range(3):
            for n, tag in enumerate(order):
                writer.add_scalar(tag, 10 * (tag == "val/AR@100") + step, step, wall_time=WALL0 + step + n / 10)
        writer.close()
        report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=f"{experiment}-{len(keys)}")
        assert report.ok, report.problems
        held = series(client, report.runs[0].run_id)
        assert held["val/AR_100"] == [(s, float(s)) for s in range(3)]  # the tag that is its own key
        [distinct] = [key for key in held if key != "val/AR_100"]
        assert held[distinct] == [(s, 10.0 + s) for s in range(3)]
        assert changes_of(report) == {("val/AR@100", "made distinct", distinct, 3)}
        assert any("made distinct" in line and "'val/AR_100' is another tag's key" in line
                   for line in format_report(report))
        keys.append(distinct)
    assert keys[0] == keys[1] and keys[0].startswith("val/AR_100-")


def test_keys_are_assigned_from_the_whole_tag_set_and_records_keep_them():
    assert assign_keys(["b@", "b_", "a/x"], flatten=True) == {"b_": "b_", "b@": "b_-" + _sha("b@")[:8], "a/x": "a_x"}
    assert assign_keys(["val/loss", "val_loss"], True) == {"val_loss": "val_loss", "val/loss": "val/loss"}
    # two changed tags that want one key: neither takes it
    both = assign_keys(["m#1", "m@1"], False)
    assert len(set(both.values())) == 2 and "m_1" not in both.values()
    # a recorded key stays, even when a newcomer is that key's own name
    assert assign_keys(["val/loss", "val_loss"], True, {"val/loss": "val_loss"})["val_loss"] == "val_loss-" + _sha(
        "val_loss")[:8]
    many = {f"group/metric-{n}": f"group_metric-{n}" for n in range(600)}
    tags = keys_tags(many)
    assert len(tags) > 1 and all(len(value) <= 8000 for value in tags.values())
    assert recorded_keys({**tags, "other": "x"}) == many


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


# ---------------------------------------------------------------- values MLflow changes, things left out


def test_infinities_long_params_and_non_scalars_are_counted_per_tag(tmp_path, embedded_server, client, experiment):
    """The issue's input: a diverged run logs `inf` loss; MLflow's SQL store keeps
    1.7976931348623157e+308 and the import said nothing."""
    import numpy as np

    root = tmp_path / "diverged"
    notes = "x" * 7000
    with torch_writer(root) as writer:
        for step, loss in enumerate([0.5, math.inf, -math.inf, math.inf]):
            writer.add_scalar("train/loss", loss, step, walltime=WALL0 + step)
        writer.add_histogram("weights", np.arange(10.0), 0, walltime=WALL0)
        writer.add_histogram("weights", np.arange(12.0), 1, walltime=WALL0 + 1)
        writer.add_image("samples", np.zeros((3, 4, 4), dtype=np.uint8), 0, walltime=WALL0)
        writer.add_text("notes", "diverged at step 1", 0, walltime=WALL0)
        writer.add_hparams({"lr": 10.0, "notes": notes}, {"hparam/final": 0.0}, run_name=".")
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert report.ok, report.problems
    run = client.get_run(report.runs[0].run_id)
    assert series(client, run.info.run_id)["train/loss"] == [(0, 0.5), (1, LARGEST), (2, -LARGEST), (3, LARGEST)]
    assert run.data.params["notes"] == notes[:6000] and run.data.params["lr"] == "10"
    changes = changes_of(report)
    assert ("train/loss", "infinity", _infinity_note(report), 3) in changes
    assert {("weights", "not a scalar", "histograms", 2), ("samples", "not a scalar", "images", 1),
            ("notes/text_summary", "not a scalar", "text", 1)} <= changes
    assert ("notes", "param cut", "cut to the 6000 characters MLflow keeps (it had 7000)", 1) in changes
    lines = "\n".join(format_report(report))
    assert "tag 'train/loss': 3 points were infinite" in lines and "1.7976931348623157e+308" in lines
    assert "tag 'weights' left out: 2 points of histograms, not scalars" in lines
    assert "param 'notes' cut to the 6000 characters MLflow keeps (it had 7000)" in lines


def _infinity_note(report) -> str:
    return next(c.became for c in report.changes if c.what == "infinity")


def test_a_folder_without_scalars_gets_no_empty_run(tmp_path, embedded_server, client, experiment):
    import numpy as np

    root = tmp_path / "logs"
    with torch_writer(root / "train") as writer:
        writer.add_scalar("loss", 1.0, 0, walltime=WALL0)
    with torch_writer(root / "pictures") as writer:
        writer.add_image("samples", np.zeros((3, 2, 2), dtype=np.uint8), 0, walltime=WALL0)
        writer.add_image("samples", np.ones((3, 2, 2), dtype=np.uint8), 1, walltime=WALL0 + 1)
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                                run_name="named")
    assert report.ok, report.problems
    assert set(runs_of(client, experiment)) == {"named"}  # one folder to import: no parent, no run for pictures
    assert report.changes == [Change("pictures", "pictures", "no scalars", "images: 2 values of 'samples'", 2)]
    assert "folder 'pictures': no scalars (images: 2 values of 'samples'): no MLflow run made for it" in format_report(
        report)[-1]
