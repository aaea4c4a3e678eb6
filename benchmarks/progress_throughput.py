"""Supervisor overhead: a script printing N progress lines as fast as it can, run under vtm's
supervisor vs. the same script with its output sent straight to a file.

Targets (issue 1/6): supervisor wall time <= 1.5x direct; supervisor memory flat in line count.
Usage: python benchmarks/progress_throughput.py [--lines 200000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from vtm_tui.core.runs.store import RunStore

SCRIPT = """
import json, sys
lines = int(sys.argv[1])
for i in range(lines):
    print("VTM_PROGRESS::" + json.dumps({"epoch": i // 1000 + 1, "total_epochs": lines // 1000,
          "step": i % 1000, "total_steps": 1000, "loss": 1.0 / (i + 1)}), flush=True)
"""


def peak_rss_kib(pid: int, stop: threading.Event, result: list[int]) -> None:
    """Poll VmRSS of one process (not its children) until it exits."""
    peak = 0
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)
    result.append(peak)


def run_direct(script: Path, lines: int, out: Path) -> float:
    start = time.perf_counter()
    with open(out, "wb") as handle:
        subprocess.run([sys.executable, "-u", str(script), str(lines)], stdout=handle, check=True)
    return time.perf_counter() - start


def run_supervised(script: Path, lines: int, home: Path) -> tuple[float, int]:
    store = RunStore(home / "runs.db")
    run = store.create(task="bench", argv=[sys.executable, "-u", str(script), str(lines)], env={},
                       field_values={}, cwd=str(home), runs_dir=home / "runs")
    start = time.perf_counter()
    supervisor = subprocess.Popen([sys.executable, "-m", "vtm_tui.core.runs.supervisor", str(store.path), str(run.id)])
    stop, peak = threading.Event(), []
    watcher = threading.Thread(target=peak_rss_kib, args=(supervisor.pid, stop, peak))
    watcher.start()
    supervisor.wait()
    elapsed = time.perf_counter() - start
    stop.set()
    watcher.join()
    record = store.get(run.id)
    assert record.status == "succeeded", record
    assert record.progress["step"] == 999, record.progress
    assert Path(record.log_path).stat().st_size > lines * 50
    return elapsed, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "chatty.py"
        script.write_text(SCRIPT)
        direct, supervised, peaks = [], [], {}
        for attempt in range(args.repeat):
            direct.append(run_direct(script, args.lines, tmp / f"direct{attempt}.log"))
            elapsed, peak = run_supervised(script, args.lines, tmp / f"home{attempt}")
            supervised.append(elapsed)
            peaks.setdefault(args.lines, []).append(peak)
        small = args.lines // 10
        peaks[small] = [run_supervised(script, small, tmp / f"small{i}")[1] for i in range(args.repeat)]
    best_direct, best_supervised = min(direct), min(supervised)
    print(f"lines: {args.lines}")
    print(f"direct to file:   {best_direct:.2f} s (best of {args.repeat})")
    print(f"under supervisor: {best_supervised:.2f} s (best of {args.repeat})")
    print(f"wall-time ratio supervisor/direct: {best_supervised / best_direct:.2f}x (target <= 1.5x)")
    big, little = max(peaks[args.lines]), max(peaks[small])
    print(f"supervisor peak RSS: {little / 1024:.1f} MiB at {small} lines, {big / 1024:.1f} MiB at "
          f"{args.lines} lines; ratio {big / little:.2f}x (flat means ~1.0x)")


if __name__ == "__main__":
    main()
