"""TensorBoard -> MLflow import (`vtm import-tb`, `python -m vtm_tui.tb_import`, core API)
against the session's real MLflow tracking server. Every test uses its own experiment."""
from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from fixtures.vtm import REPO, VTM_BIN, base_env, free_port

from vtm_tui.core.tensorboard import FILE_TAG, SLOT_TAG, find_event_dirs, format_report, import_tensorboard
from vtm_tui.core.tensorboard.events import EventDecoder, mlflow_key, tensor_scalar
from vtm_tui.core.tensorboard.tfrecord import encode_record, masked_crc, read_records
from vtm_tui.errors import UserError
from vtm_tui.script.import_steps import step_import_tb

WALL0 = 1_700_000_000.0


# ---------------------------------------------------------------- writing logs

def scalar_event(tag: str, step: int, wall: float, value: float) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])).SerializeToString()


def v2_event(tag: str, step: int, wall: float, value: float, encoding: str, metadata: bool) -> bytes:
    """A tf.summary.scalar-style event: a 0-d tensor under the 'scalars' plugin."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

    tensor = {
        "float_val": lambda: tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value]),
        "double_val": lambda: tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value]),
        "float_content": lambda: tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                                                        tensor_content=struct.pack("<f", value)),
        "double_content": lambda: tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE,
                                                         tensor_content=struct.pack("<d", value)),
    }[encoding]()
    summary_value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if metadata:  # writers keep the metadata on the first value of a tag only
        summary_value.metadata.plugin_data.plugin_name = "scalars"
    return event_pb2.Event(wall_time=wall, step=step,
                           summary=summary_pb2.Summary(value=[summary_value])).SerializeToString()


def file_version_event(wall: float = WALL0) -> bytes:
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=wall, file_version="brain.Event:2").SerializeToString()


def write_records(path: Path, records: list[bytes], append: bool = False) -> list[int]:
    """Write records; returns the offset of each."""
    offsets = []
    with open(path, "ab" if append else "wb") as handle:
        for data in records:
            offsets.append(handle.tell())
            handle.write(encode_record(data))
    return offsets


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def write_torch_scalars(log_dir: Path, tags: list[str], steps: range, wall0: float = WALL0,
                        hparams: dict | None = None) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for step in steps:
            for n, tag in enumerate(tags):
                writer.add_scalar(tag, (step * 7 + n) / 13.0, step, walltime=wall0 + step + n / 100)
        if hparams:
            writer.add_hparams(hparams, {"hparam/final": 0.875}, run_name=".")


def write_v2_file(path: Path, tags: list[str], steps: range, encodings: list[str],
                  wall0: float = WALL0 + 10_000) -> None:
    records = [file_version_event(wall0)]
    for step in steps:
        for n, tag in enumerate(tags):
            records.append(v2_event(tag, step, wall0 + step + n / 100, (step * 3 + n) / 7.0 + 0.001,
                                    encodings[n % len(encodings)], metadata=step == steps[0]))
    write_records(path, records)


def big_log(path: Path, tags: int, steps: int) -> set:
    """A one-file log written fast; returns its expected (key, step, value, timestamp) points."""
    records = [file_version_event()]
    expected = set()
    for step in range(steps):
        for n in range(tags):
            wall = WALL0 + step * 0.5 + n * 0.001
            value = ((step * 31 + n) % 977) / 9.0
            records.append(scalar_event(f"group/m{n}", step, wall, value))
            expected.add((f"group/m{n}", step, f32(value), int(wall * 1000)))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, records)
    return expected


# ---------------------------------------------------------------- reading them back

def tb_points(run_dir: Path) -> set:
    """Every scalar point, by TensorBoard's own reader (no sampling, no purging)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util

    acc = pea.EventAccumulator(str(run_dir), size_guidance={pea.TENSORS: 0},
                               purge_orphaned_data=False)
    acc.Reload()
    points = set()
    for tag in acc.PluginTagToContent("scalars"):
        for event in acc.Tensors(tag):
            value = float(tensor_util.make_ndarray(event.tensor_proto))
            points.add((tag, event.step, value, int(event.wall_time * 1000)))
    return points


def mlflow_points(client, run_id: str) -> set:
    run = client.get_run(run_id)
    points = set()
    for key in run.data.metrics:
        for metric in client.get_metric_history(run_id, key):
            points.add((metric.key, metric.step, metric.value, metric.timestamp))
    return points


def point_count(client, run_id: str) -> int:
    run = client.get_run(run_id)
    return sum(len(client.get_metric_history(run_id, key)) for key in run.data.metrics)


def runs_of(client, experiment_name: str) -> dict:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    return {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}


@pytest.fixture
def client(embedded_server):
    from mlflow import MlflowClient

    return MlflowClient(embedded_server.uri)


@pytest.fixture
def experiment() -> str:
    return f"tb-{uuid.uuid4().hex[:10]}"


def cli(*args: str, cwd: Path, env_extra: dict | None = None, entry=None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    env = base_env(VTM_HOME=str(cwd / ".vtm"), PYTHONPATH=str(REPO), **(env_extra or {}))
    argv = entry or [sys.executable, "-m", "vtm_tui.tb_import"]
    return subprocess.run([*argv, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- acceptance: the exact set

def test_import_is_exact_nested_with_params_and_a_second_import_adds_nothing(tmp_path, embedded_server,
                                                                            client, experiment):
    root = tmp_path / "tb"
    # run a: torch scalars + hparams (add_hparams writes a second event file in the same dir)
    write_torch_scalars(root / "a", ["train/loss", "train/acc"], range(60),
                        hparams={"lr": 0.01, "batch_size": 32, "optimizer": "adam"})
    # run b: v2 tensor scalars in every encoding
    (root / "b").mkdir(parents=True)
    write_v2_file(root / "b" / "events.out.tfevents.1700000000.host.1.0", ["val/loss", "val/acc", "lr"],
                  range(40), ["float_val", "double_val", "float_content", "double_content"])
    # run c/deep: torch scalars then a later v2 file: several files merged
    write_torch_scalars(root / "c" / "deep", ["loss"], range(0, 30))
    write_v2_file(root / "c" / "deep" / "events.out.tfevents.9999999999.host.2.0", ["loss", "eval/f1"],
                  range(30, 50), ["float_val"])

    expected = {rel: tb_points(root / rel) for rel in ("a", "b", "c/deep")}
    assert all(expected.values())
    assert ("train/loss", 5, f32(35 / 13.0), int((WALL0 + 5) * 1000)) in expected["a"]
    assert any(key == "val/acc" and value == (3 * 3 + 1) / 7.0 + 0.001 for key, _, value, _ in expected["b"])

    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                                run_name="parent-run")
    assert report.ok, report.problems
    assert report.points_imported == sum(map(len, expected.values()))
    assert report.runs_created == 3 and report.runs_reused == 0
    assert report.params_logged == 3

    runs = runs_of(client, experiment)
    assert set(runs) == {"parent-run", "a", "b", "c/deep"}
    parent_id = runs["parent-run"].info.run_id
    assert report.parent_run_id == parent_id
    for rel in ("a", "b", "c/deep"):
        run = runs[rel]
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.status == "FINISHED"
        assert mlflow_points(client, run.info.run_id) == expected[rel], rel
    assert runs["a"].data.params == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert runs["parent-run"].info.status == "FINISHED"

    again = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                               run_name="parent-run")
    assert again.ok and again.points_imported == 0 and again.params_logged == 0
    assert again.runs_created == 0 and again.runs_reused == 3
    assert set(runs_of(client, experiment)) == {"parent-run", "a", "b", "c/deep"}
    for rel in ("a", "b", "c/deep"):
        assert mlflow_points(client, runs[rel].info.run_id) == expected[rel]


def test_single_directory_run_names(tmp_path, embedded_server, client, experiment):
    root = tmp_path / "only"
    big_log(root / "events.out.tfevents.1.h.1.0", tags=2, steps=5)
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                                run_name="named")
    assert report.ok and report.parent_run_id is None
    assert set(runs_of(client, experiment)) == {"named"}
    assert "mlflow.parentRunId" not in runs_of(client, experiment)["named"].data.tags

    nested = tmp_path / "outer"
    big_log(nested / "inner" / "events.out.tfevents.1.h.1.0", tags=1, steps=3)
    other = experiment + "-2"
    import_tensorboard(nested, tracking_uri=embedded_server.uri, experiment_name=other)
    assert set(runs_of(client, other)) == {"inner"}  # relative path when no name is given
    third = experiment + "-3"
    import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=third)
    assert set(runs_of(client, third)) == {"only"}  # the directory's own name


def test_flatten_tags_and_keys_mlflow_rejects(tmp_path, embedded_server, client, experiment):
    root = tmp_path / "odd"
    root.mkdir()
    tags = ["train/loss", "acc@1 (top)", "/lead/slash/", "a/../b", "ok.name-x:y z"]
    write_records(root / "events.out.tfevents.1.h.1.0",
                  [file_version_event()] + [scalar_event(tag, step, WALL0 + step, step + 0.5)
                                            for step in range(3) for tag in tags])
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                                flatten_tags=True)
    assert report.ok, report.problems
    run_id = report.runs[0].run_id
    keys = {key for key, *_ in mlflow_points(client, run_id)}
    assert keys == {"train_loss", "acc_1 _top_", "_lead_slash_", "a_.._b", "ok.name-x:y z"}
    assert report.renamed == {"acc@1 (top)": "acc_1 _top_"}  # plain flattening is not a rename

    unflat = experiment + "-raw"
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=unflat)
    assert report.ok, report.problems
    keys = {key for key, *_ in mlflow_points(client, report.runs[0].run_id)}
    assert keys == {"train/loss", "acc_1 _top_", "_/lead/slash/_", "a/__/b", "ok.name-x:y z"}
    assert report.renamed == {"acc@1 (top)": "acc_1 _top_", "/lead/slash/": "_/lead/slash/_",
                              "a/../b": "a/__/b"}
    assert any("tag 'acc@1 (top)' renamed to 'acc_1 _top_' (3 points)" in line for line in format_report(report))

    # a run keeps its key scheme: new points of a flattened run stay flattened
    write_records(root / "events.out.tfevents.2.h.1.0",
                  [file_version_event(WALL0 + 50)] + [scalar_event("train/loss", 9, WALL0 + 60, 1.0)])
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert report.ok and report.points_imported == 1
    assert "with --flatten-tags" in report.notes[0]
    assert ("train_loss", 9, 1.0, int((WALL0 + 60) * 1000)) in mlflow_points(client, report.runs[0].run_id)


# ---------------------------------------------------------------- acceptance: incremental

def test_grown_file_imports_only_the_new_points(tmp_path, embedded_server, client, experiment):
    root = tmp_path / "grow"
    root.mkdir()
    path = root / "events.out.tfevents.1.h.1.0"
    first = [scalar_event("loss", step, WALL0 + step, step / 3) for step in range(2500)]
    write_records(path, [file_version_event()] + first)
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert report.ok and report.points_imported == 2500

    more = [scalar_event("loss", step, WALL0 + step, step / 3) for step in range(2500, 2600)]
    more += [v2_event("new/tag", step, WALL0 + step, 1.5, "float_val", metadata=step == 0) for step in range(10)]
    write_records(path, more, append=True)
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert report.ok
    assert report.points_imported == 110 and report.points_skipped == 0
    assert mlflow_points(client, report.runs[0].run_id) == tb_points(root)

    # a new event file in the same directory (a restarted writer) is picked up too
    write_records(root / "events.out.tfevents.2.h.1.0", [file_version_event(WALL0 + 9e4)] +
                  [scalar_event("loss", step, WALL0 + 9e4 + step, 0.25) for step in range(2600, 2605)])
    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert report.ok and report.points_imported == 5 and report.runs_reused == 1
    assert mlflow_points(client, report.runs[0].run_id) == tb_points(root)


def _wait_stable_count(client, run_id: str) -> int:
    """Points in MLflow once requests the dead importer had sent are all processed."""
    last, stable_since = -1, time.monotonic()
    while True:
        count = point_count(client, run_id)
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > 1.5:
            return count
        time.sleep(0.3)


def _run_id_for(client, experiment: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(client, experiment)
        if runs:
            return next(iter(runs.values())).info.run_id
        time.sleep(0.1)
    raise AssertionError("the import never created its run")


def test_killed_import_resumes_with_exactly_the_same_set(tmp_path, embedded_server, client, experiment):
    """SIGKILL while batches are in flight (slowed down by the test hook), then restart: every
    point lands once, and the restart sends exactly the points that were missing."""
    root = tmp_path / "killed"
    expected = big_log(root / "events.out.tfevents.1.h.1.0", tags=20, steps=1500)  # 30 batches
    args = ["--tensorboard-dir", str(root), "--tracking-uri", embedded_server.uri,
            "--experiment-name", experiment]
    env = base_env(VTM_HOME=str(tmp_path / ".vtm"), VTM_TB_IMPORT_BATCH_DELAY="1.0")
    proc = subprocess.Popen([sys.executable, "-m", "vtm_tui.tb_import", *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = _run_id_for(client, experiment)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once a few batches are committed
            tags = client.get_run(run_id).data.tags
            if sum(key.startswith(SLOT_TAG) for key in tags) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the import finished before it could be killed: make the log bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    present = _wait_stable_count(client, run_id)
    assert 0 < present < len(expected)

    result = cli(*args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["runs_reused"] == 1 and report["runs_created"] == 0
    assert report["points_imported"] == len(expected) - present  # nothing sent twice
    assert mlflow_points(client, run_id) == expected
    assert client.get_run(run_id).info.status == "FINISHED"


def test_crash_right_after_a_committed_batch_resumes_exactly(tmp_path, embedded_server, client, experiment):
    """The worst moment: a batch is committed, its file position is not yet written."""
    root = tmp_path / "crash"
    expected = big_log(root / "events.out.tfevents.1.h.1.0", tags=10, steps=1000)  # 11 batches
    args = ["--tensorboard-dir", str(root), "--tracking-uri", embedded_server.uri,
            "--experiment-name", experiment]
    crashed = cli(*args, env_extra={"VTM_TB_IMPORT_EXIT_AFTER": "4"}, cwd=tmp_path)
    assert crashed.returncode == 75, crashed.stderr
    run_id = _run_id_for(client, experiment)
    present = _wait_stable_count(client, run_id)
    assert 4 * 999 <= present < len(expected)
    tags = client.get_run(run_id).data.tags
    assert not any(key.startswith(FILE_TAG) for key in tags)  # the position never moved

    result = cli(*args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["points_imported"] == len(expected) - present
    assert report["points_skipped"] == present
    assert mlflow_points(client, run_id) == expected


def test_cancel_stops_cleanly_and_a_later_import_completes(tmp_path, embedded_server, client, experiment,
                                                          monkeypatch):
    root = tmp_path / "cancel"
    expected = big_log(root / "events.out.tfevents.1.h.1.0", tags=5, steps=2000)
    monkeypatch.setenv("VTM_TB_IMPORT_BATCH_DELAY", "0.3")
    cancel = threading.Event()
    seen = []

    def on_progress(done, total):
        seen.append((done, total))
        if done > 0:
            cancel.set()

    report = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment,
                                on_progress=on_progress, cancel=cancel)
    assert report.cancelled and not report.ok and not report.problems
    assert 0 < report.points_imported < len(expected)
    assert seen and all(done <= total for done, total in seen)
    run_id = report.runs[0].run_id
    assert client.get_run(run_id).info.status == "KILLED"
    assert point_count(client, run_id) == report.points_imported

    monkeypatch.delenv("VTM_TB_IMPORT_BATCH_DELAY")
    rest = import_tensorboard(root, tracking_uri=embedded_server.uri, experiment_name=experiment)
    assert rest.ok and rest.points_imported == len(expected) - report.points_imported
    assert mlflow_points(client, run_id) == expected
    assert client.get_run(run_id).info.status == "FINISHED"


# ---------------------------------------------------------------- acceptance: damage

def test_truncated_and_corrupt_records_are_reported_not_fatal(tmp_path, embedded_server, client, experiment):
    root = tmp_path / "damaged"
    root.mkdir()
    path = root / "events.out.tfevents.1.h.1.0"
    records = [file_version_event()] + [scalar_event("loss", step, WALL0 + step, step * 1.5)
                                        for step in range(12)]
    offsets = write_records(path, records)
    raw = bytearray(path.read_bytes())
    raw[offsets[4] + 14] ^= 0xFF          # step 3: a byte of the event data -> bad data CRC
    raw[offsets[7] + 1] ^= 0x01           # step 6: a byte of the length -> bad length CRC
    tail = bytes(raw[-5:])
    path.write_bytes(bytes(raw[:-5]))     # step 11: the final record cut short
    args = ["--tensorboard-dir", str(root), "--tracking-uri", embedded_server.uri,
            "--experiment-name", experiment]

    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("import-tb: ")]
    assert len(problems) == 3, result.stderr
    assert f"{path}: offset {offsets[4]}: bad data CRC" in problems[0]
    assert f"{path}: offset {offsets[7]}: bad length CRC" in problems[1]
    assert f"{path}: offset {offsets[12]}: truncated record" in problems[2]
    run_id = _run_id_for(client, experiment)
    good = {("loss", step, step * 1.5, int((WALL0 + step) * 1000)) for step in range(12)
            if step not in (3, 6, 11)}
    assert mlflow_points(client, run_id) == good

    # the writer finishes the last record: the next import takes just that one
    with open(path, "ab") as handle:
        handle.write(tail)
    result = cli(*args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["points_imported"] == 1
    assert mlflow_points(client, run_id) == good | {("loss", 11, 16.5, int((WALL0 + 11) * 1000))}


def test_reader_reports_damage_offsets(tmp_path):
    path = tmp_path / "records"
    datas = [bytes([n]) * (20 + n) for n in range(6)]
    offsets = write_records(path, datas)
    raw = bytearray(path.read_bytes())
    raw[offsets[2] + 12] ^= 0x55                      # data
    raw[offsets[4] + 2] ^= 0x10                       # length
    path.write_bytes(bytes(raw) + b"\x05\x00\x00")    # a header being written
    seen = list(read_records(path, chunk_size=16))    # tiny chunks: every refill path
    assert [(start, data) for start, _, data, damage in seen if damage is None] == \
        [(offsets[n], datas[n]) for n in (0, 1, 3, 5)]
    damages = [damage for *_, damage in seen if damage is not None]
    assert [(d.offset, d.truncated) for d in damages] == [(offsets[2], False), (offsets[4], False),
                                                         (path.stat().st_size - 3, True)]
    assert damages[1].end == offsets[5]
    resumed = list(read_records(path, offsets[3]))
    assert resumed[0][:3] == (offsets[3], offsets[4], datas[3])
    assert masked_crc(b"") == 0xA282EAD8


# ---------------------------------------------------------------- usage errors

ENTRIES = [
    pytest.param([sys.executable, "-m", "vtm_tui.tb_import"], id="python-m"),
    pytest.param([VTM_BIN, "import-tb"], id="vtm"),
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_usage_errors_exit_2_with_one_line(tmp_path, embedded_server, entry):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ["--tensorboard-dir", str(tmp_path / "missing"), "--tracking-uri", embedded_server.uri],
        ["--tensorboard-dir", str(empty), "--tracking-uri", embedded_server.uri],
        ["--tensorboard-dir", str(empty / "..")[:-3] + "nothing-here"],
    ]
    big_log(tmp_path / "logs" / "events.out.tfevents.1.h.1.0", tags=1, steps=1)
    cases.append(["--tensorboard-dir", str(tmp_path / "logs"), "--tracking-uri",
                  f"http://127.0.0.1:{free_port()}"])
    cases.append(["--tensorboard-dir", str(tmp_path / "logs"), "--workers", "0",
                  "--tracking-uri", embedded_server.uri])
    for args in cases:
        result = cli(*args, entry=entry, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in result.stderr, result.stderr
    missing_flag = cli("--tracking-uri", embedded_server.uri, entry=entry, cwd=tmp_path, timeout=60)
    assert missing_flag.returncode == 2 and "--tensorboard-dir" in missing_flag.stderr
    assert "Traceback" not in missing_flag.stderr


def test_api_raises_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        import_tensorboard(tmp_path / "nope", tracking_uri="http://127.0.0.1:1")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        import_tensorboard(tmp_path / "file", tracking_uri="http://127.0.0.1:1")


# ---------------------------------------------------------------- script step, CLI niceties

def test_script_step(tmp_path, embedded_server, client, experiment):
    from vtm_tui.script.context import ScriptContext, StepFailed

    big_log(tmp_path / "logs" / "events.out.tfevents.1.h.1.0", tags=2, steps=10)
    lines = []
    ctx = ScriptContext(embedded_server.settings, log=lines.append)
    step_import_tb(ctx, {"tensorboard_dir": str(tmp_path / "logs"), "tracking_uri": embedded_server.uri,
                         "experiment_name": experiment, "run_name": "from-script", "flatten_tags": True})
    assert lines and "imported 20 points" in lines[0]
    run = runs_of(client, experiment)["from-script"]
    assert set(run.data.metrics) == {"group_m0", "group_m1"}

    # without tracking_uri: the settings' tracking (the embedded server here)
    other = experiment + "-settings"
    step_import_tb(ctx, {"tensorboard_dir": str(tmp_path / "logs"), "experiment_name": other})
    assert runs_of(client, other)

    with pytest.raises(StepFailed) as failed:
        step_import_tb(ctx, {"tensorboard_dir": "x", "bogus": 1})
    assert failed.value.exit_code == 2
    with pytest.raises(StepFailed) as failed:
        step_import_tb(ctx, {"experiment_name": "x"})
    assert failed.value.exit_code == 2

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    write_records(damaged / "events.out.tfevents.1.h.1.0", [file_version_event(), scalar_event("a", 1, WALL0, 1.0)])
    with open(damaged / "events.out.tfevents.1.h.1.0", "ab") as handle:
        handle.write(encode_record(scalar_event("a", 2, WALL0, 2.0))[:-3])
    with pytest.raises(StepFailed) as failed:
        step_import_tb(ctx, {"tensorboard_dir": str(damaged), "tracking_uri": embedded_server.uri,
                             "experiment_name": experiment + "-damaged"})
    assert failed.value.exit_code == 1 and "truncated" in str(failed.value)


def test_help_lists_the_original_flags():
    result = subprocess.run([sys.executable, "-m", "vtm_tui.tb_import", "--help"], capture_output=True,
                            text=True, cwd=REPO)
    for flag in ("--tensorboard-dir", "--tracking-uri", "--experiment-name", "--run-name", "--flatten-tags"):
        assert flag in result.stdout


# ---------------------------------------------------------------- units

def test_event_files_are_ordered_by_the_timestamp_in_their_name(tmp_path):
    for name in ("events.out.tfevents.1000.h.1.0", "events.out.tfevents.999.h.1.0",
                 "events.out.tfevents.999.h.1.1", "events.out.tfevents.nots", "notes.txt"):
        (tmp_path / "run" / "x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / name).write_bytes(b"")
    dirs = find_event_dirs(tmp_path)
    assert list(dirs) == ["run"]
    assert [p.name for p in dirs["run"]] == ["events.out.tfevents.999.h.1.0", "events.out.tfevents.999.h.1.1",
                                             "events.out.tfevents.1000.h.1.0", "events.out.tfevents.nots"]


@pytest.mark.parametrize("tag", ["loss", "a/b/c", "acc@1", "/x", "x/", "a//b", ".", "..", "a/./b", "", "..x/y",
                                 "ü/ñ", "tab\there", "x" * 300, "a:b c-d.e"])
def test_mlflow_key_is_always_valid(tag):
    from mlflow.utils.validation import _validate_metric_name

    for flatten in (False, True):
        key = mlflow_key(tag, flatten)
        _validate_metric_name(key)
        assert len(key) <= 250
        assert key == mlflow_key(tag, flatten)
    assert mlflow_key("a/b", True) == "a_b"
    assert mlflow_key("x" * 300) != mlflow_key("x" * 299 + "y")


def test_fast_decoder_agrees_with_protobuf():
    from tensorboard.compat.proto import event_pb2, summary_pb2

    events = [
        scalar_event("loss", 0, 0.0, 0.0), scalar_event("loss", 5, WALL0, -1.5),
        scalar_event("t" * 120, 2 ** 40, WALL0, 3.0), scalar_event("neg", -7, WALL0, float("inf")),
        scalar_event("ünï", 300, WALL0 + 0.123, float("nan")),
        event_pb2.Event(wall_time=WALL0, step=3, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="a", simple_value=1.0),
            summary_pb2.Summary.Value(tag="b", simple_value=2.0)])).SerializeToString(),
        v2_event("v2", 9, WALL0, 0.5, "float_val", True), v2_event("v2", 10, WALL0, 0.25, "double_content", False),
        file_version_event(),
    ]
    fast, slow = EventDecoder(), EventDecoder()
    for data in events:
        a, b = fast.decode(data), slow._decode_proto(data)
        assert repr(a) == repr(b), data  # repr: NaN == NaN
    assert fast._decode_simple(scalar_event("loss", 5, WALL0, -1.5)) is not None


def test_tensor_scalar_encodings():
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    T = tensor_pb2.TensorProto
    assert tensor_scalar(T(dtype=types_pb2.DT_FLOAT, float_val=[0.5])) == 0.5
    assert tensor_scalar(T(dtype=types_pb2.DT_DOUBLE, double_val=[0.1])) == 0.1
    assert tensor_scalar(T(dtype=types_pb2.DT_HALF, half_val=[0x3C00])) == 1.0
    assert tensor_scalar(T(dtype=types_pb2.DT_INT64, int64_val=[7])) == 7.0
    assert tensor_scalar(T(dtype=types_pb2.DT_DOUBLE, tensor_content=struct.pack("<d", 0.1))) == 0.1
    assert tensor_scalar(T(dtype=types_pb2.DT_STRING, string_val=[b"x"])) is None
    two = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)])
    assert tensor_scalar(T(dtype=types_pb2.DT_FLOAT, float_val=[1, 2], tensor_shape=two)) is None


def test_progress_bar_draws_points_and_rate():
    import io

    from vtm_tui.commands.tensorboard import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar(500, 1000)
    bar(1000, 1000)
    bar.close()
    text = stream.getvalue()
    assert "\r\x1b[2K[#####-----]  50% 500/1,000 points" in text
    assert "[##########] 100% 1,000/1,000 points" in text and "points/s" in text
    assert text.endswith("\n")


def test_reader_never_trusts_a_huge_length(tmp_path):
    import struct as st

    path = tmp_path / "records"
    offsets = write_records(path, [b"a" * 30, b"b" * 30])
    length = st.pack("<Q", 1 << 50)
    with open(path, "ab") as handle:  # an intact header claiming a petabyte
        handle.write(length + st.pack("<I", masked_crc(length)) + b"x" * 10)
    seen = list(read_records(path))
    assert [data for _, _, data, _ in seen[:2]] == [b"a" * 30, b"b" * 30]
    assert seen[2][3].truncated and seen[2][0] == offsets[1] + 46
