"""A pinned demo world for screenshots and snapshot tests.

`make_demo(root)` fills a fresh working directory with the default catalog and a run store
holding a few runs (one of them mid-training, with chart points and a log), and returns the
Settings and Sources to open the app on it. Everything a picture shows is fixed: the clock,
the tracking server's answer, the GPU list, run ids and MLflow ids; paths are shown relative
to `root`, so the pictures are the same on every machine. `until` lets a picture's set-up wait
for what it shows.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from vtm_tui.core.runs.progress import format_meta, format_progress
from vtm_tui.core.runs.store import RunStore
from vtm_tui.core.tracking.server import ServerStatus
from vtm_tui.settings import PACKAGED_CATALOG, Settings
from vtm_tui.ui.demo.pinned_host import demo_host_state
from vtm_tui.ui.sources import Sources

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: "now" in every picture
TRACKING_URI = "http://127.0.0.1:5001"


def _curve(epoch: int, start: float, end: float, rate: float = 0.45) -> float:
    return round(end + (start - end) * math.exp(-rate * (epoch - 1)), 4)


def _classification_point(epoch: int, total: int) -> dict:
    return {"epoch": epoch, "total_epochs": total,
            "train_loss": _curve(epoch, 1.58, 0.21), "val_loss": _curve(epoch, 1.49, 0.34, 0.35),
            "val_accuracy": _curve(epoch, 0.31, 0.93, 0.4)}


def _segmentation_point(epoch: int, total: int) -> dict:
    return {"epoch": epoch, "total_epochs": total,
            "train_loss": _curve(epoch, 1.05, 0.30), "val_loss": _curve(epoch, 1.01, 0.41),
            "val_miou": _curve(epoch, 0.22, 0.71)}


_RUNS = [
    # task, status, epochs done, total, started (s before NOW), ran for (s), exit, mlflow id, message
    ("classification", "succeeded", 5, 5, 5400, 192, 0, "3f9c2a71d05b4e8e9a1c6b7d2e4f8a10", None),
    ("segmentation", "failed", 2, 6, 3000, 95, 1, "b81e47c2a9d34f0c8e5a2d6f1c7b9e03", "exit code 1"),
    ("segmentation", "cancelled", 3, 20, 1500, 260, -2, "5d2a9e8c1b7f4a3e9c0d6b2a8f1e4c77", None),
    ("classification", "running", 7, 12, 108, None, None, "a47c1e9b3d5f4e2a8b6c0d9e7f1a2b35", None),
]


def _write_log(path: Path, task: str, points: list[dict], mlflow_id: str, status: str) -> None:
    lines = [f"device=cpu train=409 val=103 run=demo-{task} tensorboard=outputs/tensorboard/demo-{task}",
             format_meta({"mlflow_run_id": mlflow_id, "run_name": f"demo-{task}"})]
    for point in points:
        for step in (10, 20, 30):
            loss = point["train_loss"] + 0.01 * step / 30
            lines.append(f"epoch {point['epoch']} step {step}/32 loss {loss:.4f}")
        lines.append(format_progress(point))
    if status == "failed":
        lines += ["Traceback (most recent call last):",
                  '  File "vtm_tui/train/segmentation.py", line 88, in main',
                  "RuntimeError: CUDA out of memory (demo)"]
    elif status == "cancelled":
        lines.append("training interrupted (SIGINT)")
    elif status == "succeeded":
        lines.append("best val_accuracy=0.9300 checkpoint=outputs/checkpoints/best.pt")
    path.write_text("\n".join(lines) + "\n")


def make_demo(root: Path) -> tuple[Settings, Sources]:
    root = Path(root)
    shutil.copy(PACKAGED_CATALOG, root / "catalog.yaml")
    settings = Settings.load(cwd=root, environ={"VTM_HOME": ".vtm"})
    store = RunStore(settings.runs_db)
    for task, status, done, total, started_ago, ran_for, exit_code, mlflow_id, message in _RUNS:
        make_point = _classification_point if task == "classification" else _segmentation_point
        points = [make_point(epoch, total) for epoch in range(1, done + 1)]
        values = {"epochs": total, "batch_size": 32, "learning_rate": 0.001}
        run = store.create(task=task, argv=["python", "-u", "-m", f"vtm_tui.train.{task}"], env={},
                           field_values=values, cwd=str(root), runs_dir=settings.runs_dir, gpus="cpu")
        started = NOW - started_ago
        store.update(run.id, status=status, created_at=started - 1, started_at=started,
                     ended_at=None if ran_for is None else started + ran_for, exit_code=exit_code,
                     mlflow_run_id=mlflow_id, message=message)
        store.save_progress(run.id, points[-1], {float(p["epoch"]): p for p in points})
        _write_log(Path(run.log_path), task, points, mlflow_id, status)
    return settings, demo_sources(settings)


def demo_sources(settings: Settings) -> Sources:
    store = RunStore(settings.runs_db)
    return Sources(
        clock=lambda: NOW,
        server_status=lambda _settings: ServerStatus("up", TRACKING_URI, pid=4242, port=5001, managed=True),
        # The store as it is: the demo's "running" run has no supervisor, and the real
        # list_runs would (rightly) mark it lost.
        list_runs=lambda _settings: store.list(),
        host=lambda _settings: demo_host_state(0, NOW),  # show_host() ticks it
    )


async def until(pilot, predicate, what: str, timeout: float = 10.0) -> None:
    """Let the app run until predicate() holds (AssertionError naming `what` after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
