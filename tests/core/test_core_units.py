"""Unit tests of the small core pieces: progress protocol, settings, run store, log tail."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from vtm_tui.core.formatting import format_age, format_megabytes, format_rate, format_size, format_used
from vtm_tui.core.runs.lifecycle import normalize_gpus, parse_assignments, tail_lines
from vtm_tui.core.runs.progress import MetaLine, ProgressLine, fraction_done, numeric_metrics, parse_line
from vtm_tui.core.runs.store import RunStore
from vtm_tui.core.tracking import server as mlflow_server
from vtm_tui.errors import UserError
from vtm_tui.settings import PACKAGED_CATALOG, Settings


@pytest.mark.parametrize("line, expected", [
    ('VTM_PROGRESS::{"epoch": 1, "total_epochs": 2}', ProgressLine({"epoch": 1, "total_epochs": 2})),
    ('  VTM_RUN_META::{"mlflow_run_id": "abc"}\n', MetaLine({"mlflow_run_id": "abc"})),
    (b'VTM_PROGRESS::{"epoch": 2}', ProgressLine({"epoch": 2})),
    ('VTM_PROGRESS::{"epoch": ', None),
    ("VTM_PROGRESS::[1, 2]", None),
    ('VTM_PROGRESS::{"a": 1}VTM_PROGRESS::{"a": 2}', None),
    ("VTM_RUN_META::", None),
    (b"VTM_PROGRESS::\xff\xfe", None),
    ("VTM_PROGRESS::" + "[" * 100000, None),
    ("plain text", None),
])
def test_parse_line(line, expected):
    assert parse_line(line) == expected


def test_progress_helpers():
    data = {"epoch": 2, "total_epochs": 4, "val_accuracy": 0.5, "flag": True, "bad": float("nan"), "name": "x"}
    assert numeric_metrics(data) == {"val_accuracy": 0.5}
    assert fraction_done(data) == 0.5
    assert fraction_done({"epoch": 2, "total_epochs": 4, "step": 5, "total_steps": 10}) == 0.375
    assert fraction_done({"epoch": 9, "total_epochs": 4}) == 1.0
    assert fraction_done({"epoch": 1}) is None
    assert fraction_done({"epoch": "1", "total_epochs": 2}) is None


def test_settings_precedence_env_over_dotenv_over_defaults(tmp_path):
    (tmp_path / ".env").write_text(
        "# comment\nexport VTM_HOME=from-dotenv\nTRAINING_CATALOG_PATH='cat.yaml'\n"
        'MLFLOW_TRACKING_URI="http://dotenv:1"\nVTM_MLFLOW_PORT=6001\n')
    settings = Settings.load(cwd=tmp_path, environ={"MLFLOW_TRACKING_URI": "http://env:2"})
    assert settings.home == tmp_path / "from-dotenv"
    assert settings.catalog_path == tmp_path / "cat.yaml"
    assert settings.tracking_uri == "http://env:2"
    assert settings.mlflow_port == 6001


def test_settings_defaults(tmp_path):
    settings = Settings.load(cwd=tmp_path, environ={})
    assert settings.home == tmp_path / ".vtm"
    assert settings.catalog_path == PACKAGED_CATALOG  # no ./catalog.yaml here: the shipped one
    assert settings.embedded_tracking and settings.effective_tracking_uri == "http://127.0.0.1:5001"
    (tmp_path / "catalog.yaml").write_text("tasks: []\n")
    assert Settings.load(cwd=tmp_path, environ={}).catalog_path == tmp_path / "catalog.yaml"
    with pytest.raises(UserError, match="VTM_MLFLOW_PORT"):
        Settings.load(cwd=tmp_path, environ={"VTM_MLFLOW_PORT": "http"})
    assert settings.mlflow_workers == 2
    assert Settings.load(cwd=tmp_path, environ={"VTM_MLFLOW_WORKERS": "5"}).mlflow_workers == 5
    for bad in ("0", "many", "-1", "33"):
        with pytest.raises(UserError, match="VTM_MLFLOW_WORKERS must be a number of worker processes"):
            Settings.load(cwd=tmp_path, environ={"VTM_MLFLOW_WORKERS": bad})


def test_settings_type_every_vtm_variable_and_resolve_paths(tmp_path):
    (tmp_path / ".env").write_text("VTM_CANCEL_GRACE=3\nVTM_FTP_CA_FILE=certs/ca.pem\n")
    env = {"VTM_FTP_TIMEOUT": "2.5", "VTM_REGISTRY_GZIP_LEVEL": "6", "VTM_FTP_PASSWORD": "s3cret",
           "VTM_TB_IMPORT_BATCH_DELAY": "0.5", "VTM_TB_IMPORT_EXIT_AFTER": "4", "VTM_RUN_ID": "7"}
    settings = Settings.load(cwd=tmp_path, environ=env)
    assert settings.cancel_grace == 3.0 and settings.ftp_timeout == 2.5 and settings.registry_gzip_level == 6
    assert settings.ftp_ca_file == tmp_path / "certs" / "ca.pem" and settings.ftp_password == "s3cret"
    assert (settings.tb_import_batch_delay, settings.tb_import_exit_after, settings.run_id) == (0.5, 4, "7")
    assert "s3cret" not in repr(settings)
    child = Settings.from_environ(env, cwd=tmp_path)  # a process vtm started: no .env
    assert child.cancel_grace == 10.0 and child.ftp_ca_file is None and child.ftp_timeout == 2.5
    defaults = Settings.from_environ({}, cwd=tmp_path)
    assert (defaults.ftp_timeout, defaults.registry_gzip_level, defaults.tb_import_exit_after) == (30.0, 0, 0)


@pytest.mark.parametrize("name, value, expects", [
    ("VTM_CANCEL_GRACE", "soon", "a number of seconds (0 or more)"),
    ("VTM_CANCEL_GRACE", "-1", "a number of seconds (0 or more)"),
    ("VTM_FTP_TIMEOUT", "0", "a positive number of seconds"),
    ("VTM_REGISTRY_GZIP_LEVEL", "10", "0-9"),
    ("VTM_TB_IMPORT_BATCH_DELAY", "nan", "a number of seconds (0 or more)"),
    ("VTM_TB_IMPORT_EXIT_AFTER", "1.5", "a number of batches (0 or more)"),
])
def test_a_bad_variable_is_one_line_naming_it_and_what_it_expects(tmp_path, name, value, expects):
    settings = Settings.from_environ({name: value}, cwd=tmp_path)  # loads: checked on first use
    attribute = {"VTM_CANCEL_GRACE": "cancel_grace", "VTM_FTP_TIMEOUT": "ftp_timeout",
                 "VTM_REGISTRY_GZIP_LEVEL": "registry_gzip_level", "VTM_TB_IMPORT_BATCH_DELAY":
                 "tb_import_batch_delay", "VTM_TB_IMPORT_EXIT_AFTER": "tb_import_exit_after"}[name]
    with pytest.raises(UserError) as caught:
        getattr(settings, attribute)
    assert str(caught.value) == f"{name} must be {expects}, got {value!r}" and caught.value.exit_code == 2


def test_sizes_rates_and_ages_have_one_spelling():
    assert [format_size(n) for n in (None, 0, 999, 1000, 48_213_000, 3_100_000_000, 12e12)] == \
        ["-", "0 B", "999 B", "1.0 KB", "48.2 MB", "3.1 GB", "12000.0 GB"]
    assert format_megabytes(90_000_000) == "90.0 MB" and format_megabytes(90e6, 200e6) == "90.0/200.0 MB"
    assert [format_used(u, t) for u, t in ((19e9, 81.559e9), (512e6, 999e6), (None, 81.6e9), (5, None), (5, 10))] == \
        ["19.0/81.6 GB", "512.0/999.0 MB", "?/81.6 GB", "-", "5/10 B"]
    assert format_rate(310_400_000) == "310.4 MB/s" and format_rate(310_400_000, digits=0) == "310 MB/s"
    assert [format_age(s) for s in (None, -5, 59, 60, 7200, 3 * 86400)] == \
        ["-", "just now", "just now", "1 min ago", "2 h ago", "3 d ago"]
    assert [format_age(s, compact=True) for s in (30, 300, 7200, 86400)] == ["just now", "5m ago", "2h ago", "1d ago"]


def test_store_finish_is_first_writer_wins_and_concurrent_creates(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    ids = []

    def create():
        for _ in range(20):
            ids.append(store.create(task="t", argv=["x"], env={}, field_values={}, cwd=".",
                                    runs_dir=tmp_path / "runs").id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == list(range(1, 81))
    assert store.finish(1, "succeeded", exit_code=0)
    assert not store.finish(1, "lost")
    assert store.get(1).status == "succeeded"
    store.save_progress(2, {"epoch": 2}, {1.0: {"epoch": 1, "a": 1}, 2.0: {"epoch": 2, "a": 2}})
    store.save_progress(2, {"epoch": 2, "a": 3}, {2.0: {"epoch": 2, "a": 3}})
    assert store.points(2) == [{"epoch": 1, "a": 1}, {"epoch": 2, "a": 3}]
    assert [run.id for run in store.list(3)] == [80, 79, 78]


def test_tail_lines_reads_only_the_end(tmp_path):
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100000)))
    assert tail_lines(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert len(tail_lines(log, 0, max_bytes=1000)) < 200
    assert tail_lines(tmp_path / "missing") == []


def test_assignments_and_gpus():
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(UserError):
        parse_assignments(["novalue"])
    assert normalize_gpus(" 0, 1 ") == "0,1"
    assert normalize_gpus("cpu") == ""
    assert normalize_gpus(None) is None
    with pytest.raises(UserError):
        normalize_gpus("gpu0")


def test_port_taken_by_a_stranger_is_an_error_naming_the_port_and_is_left_alone(tmp_path):
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        settings = Settings.load(cwd=tmp_path, environ={"VTM_HOME": str(tmp_path / "h"),
                                                        "VTM_MLFLOW_PORT": str(port)})
        with pytest.raises(mlflow_server.PortInUse, match=f"port {port} .* not vtm's MLflow server"):
            mlflow_server.up(settings)
        state = mlflow_server.status(settings)
        assert state.state == "down" and "another program" in state.message
        assert not mlflow_server.down(settings).stopped
        stranger.settimeout(2)
        client = socket.create_connection(("127.0.0.1", port))  # still listening, untouched
        client.close()


def test_embedded_server_is_reused_not_restarted(embedded_server):
    before = mlflow_server.status(embedded_server.settings)
    assert before.state == "up" and before.managed
    again = mlflow_server.up(embedded_server.settings)
    assert again.pid == before.pid
    assert mlflow_server.healthy(embedded_server.uri)


def _session_cmdlines(leader: int) -> list[str]:
    """Command lines of every process in the session that `leader` started."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if entry.isdigit() and int(fields[3]) == leader:
                found.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_embedded_server_runs_its_workers_and_no_job_runner(embedded_server):
    """VTM_MLFLOW_WORKERS request workers (2 by default), and none of MLflow's job-runner
    processes unless the user asks for them."""
    cmdlines = _session_cmdlines(mlflow_server.status(embedded_server.settings).pid)
    assert any("--workers 2" in line for line in cmdlines), cmdlines
    assert sum("multiprocessing" in line and "spawn_main" in line for line in cmdlines) >= 2, cmdlines
    assert not any("huey" in line for line in cmdlines), cmdlines
    settings = Settings.load(cwd=embedded_server.home.parent,
                             environ={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
    assert mlflow_server.server_environment(settings)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
