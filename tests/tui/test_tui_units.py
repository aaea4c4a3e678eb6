"""Unit tests of the UI's pure helpers: log following, formatting, the GPU picker's choices."""
from __future__ import annotations

from vtm_tui.core.formatting import display_path, format_duration, format_epoch, redact_url
from vtm_tui.ui.demo.pinned_host import demo_host_state
from vtm_tui.ui.tabs.launcher.gpu_choices import gpu_options, launch_gpus
from vtm_tui.ui.tailer import LogFollower


def test_follower_reads_only_new_complete_lines(tmp_path):
    log = tmp_path / "output.log"
    follower = LogFollower(str(log))
    assert follower.read_new() == ([], 0)  # no file yet
    log.write_bytes(b"one\ntwo\nthr")
    assert follower.read_new() == (["one", "two"], 0)
    assert follower.read_new() == ([], 0)
    with log.open("ab") as handle:
        handle.write(b"ee\r\nprogress 10%\rprogress 90%\nfour\n")
    assert follower.read_new() == (["three", "progress 90%", "four"], 0)


def test_follower_starts_near_the_end_and_skips_what_it_cannot_keep_up_with(tmp_path):
    log = tmp_path / "output.log"
    log.write_bytes(b"".join(b"line %05d\n" % n for n in range(10_000)))  # 110 kB
    follower = LogFollower(str(log), start_bytes=1000, max_chunk=5000)
    lines, skipped = follower.read_new()
    assert skipped == 0 and lines[-1] == "line 09999" and 90 <= len(lines) <= 100
    assert all(line.startswith("line ") and len(line) == 10 for line in lines)  # no cut line
    with log.open("ab") as handle:
        handle.write(b"".join(b"more %05d\n" % n for n in range(2000)))  # 22 kB at once
    lines, skipped = follower.read_new()
    assert skipped == 22_000 - 5000 and lines[-1] == "more 01999" and len(lines) == 5000 // 11


def test_follower_starts_over_when_the_file_is_truncated(tmp_path):
    log = tmp_path / "output.log"
    log.write_bytes(b"a\nb\n")
    follower = LogFollower(str(log))
    assert follower.read_new()[0] == ["a", "b"]
    log.write_bytes(b"c\n")
    assert follower.read_new()[0] == ["c"]


def test_formatting(tmp_path):
    assert display_path(tmp_path / "catalog.yaml", tmp_path) == "catalog.yaml"
    assert display_path("/elsewhere/x.yaml", tmp_path) == "/elsewhere/x.yaml"
    assert redact_url("ftp://user:secret@host:21/models") == "ftp://user:***@host:21/models"
    assert redact_url("/srv/registry") == "/srv/registry"
    assert [format_duration(s) for s in (None, 5, 65, 3725)] == ["-", "0:05", "1:05", "1:02:05"]
    assert format_epoch({"epoch": 3, "total_epochs": 10}) == "3/10"
    assert format_epoch({}) == "-"


def test_gpu_picker_shows_each_device_free_or_busy():
    state = demo_host_state(0, now=1_767_225_600.0)  # GPU 0 held by run 4, GPU 1 used by a notebook
    assert gpu_options(state) == [
        ("Any 1 GPU (0 of 2 free; vtm picks, queued until free)", "any:1"),
        ("Any 2 GPUs (0 of 2 free; vtm picks, queued until free)", "any:2"),
        ("GPU 0: NVIDIA H100 80GB HBM3 (busy: held by run 4 (classification))", "0"),
        ("GPU 1: NVIDIA H100 80GB HBM3 (busy: 12.3 GB used by other processes)", "1"),
        ("All GPUs (0,1)", "0,1"), ("CPU", "cpu")]
    assert gpu_options(None) == [("CPU", "cpu")]
    assert [launch_gpus(value) for value in ("any:2", "0,1", "cpu", None)] == [
        (None, 2), ("0,1", None), ("cpu", None), (None, None)]


def test_system_charts_take_the_runs_own_share_with_short_labels():
    from vtm_tui.ui.tabs.runs.metric_chart import system_label, system_series

    samples = [{"time": 1.0, "system/process_cpu_utilization_percentage": 99.0,
                "system/cpu_utilization_percentage": 20.0, "system/process_memory_rss_megabytes": 310.0,
                "system/gpu_1_utilization_percentage": 80.0,
                "system/gpu_1_memory_usage_percentage": 5.0},
               {"time": 2.0, "system/process_cpu_utilization_percentage": 98.0,
                "system/process_memory_rss_megabytes": 320.0}]
    series = system_series(samples)
    assert series == {"system/process_cpu_utilization_percentage": [99.0, 98.0],
                      "system/process_memory_rss_megabytes": [310.0, 320.0],
                      "system/gpu_1_utilization_percentage": [80.0]}
    assert [system_label(key) for key in series] == ["cpu %", "rss MB", "gpu1 util %"]
    assert system_label("system/gpu_0_memory_usage_megabytes") == "gpu0 mem MB"
