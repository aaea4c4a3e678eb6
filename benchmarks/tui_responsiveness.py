"""How responsive is the TUI? Two figures, both taken on the real `vtm` binary in a
pseudo-terminal, the way a user over SSH sees it.

(a) Start-up: time from spawning `vtm` to its first frame (the five tab titles drawn),
    against spawning `python -c pass` in the same run. Target: under 1 s.
(b) Under load: with a run printing 10,000 log lines a second (its log tailed live in the
    Runs tab), the time from a key press (down/up: select another run) to the changed text
    arriving back on the terminal; p50/p95/max. Target: p95 under 100 ms. Also the TUI
    process's CPU use over that window (CPU seconds / wall seconds; 1.0 = one core).
    Target: below one core.

    python benchmarks/tui_responsiveness.py [--runs 5] [--presses 40]

Everything runs in a temporary VTM_HOME with a file-based MLflow store; nothing else is touched.
"""
from __future__ import annotations

import argparse
import codecs
import os
import select
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parents[1]
VTM = str(Path(sys.executable).with_name("vtm"))
COLS, ROWS = 120, 40
TITLES = ("Launcher", "Runs", "MLflow Ops", "Registry", "Serving")

# A training stand-in that prints `rate` lines a second (64 bytes each) for `seconds`,
# with a progress line every 1000 lines.
NOISY = textwrap.dedent("""
    import argparse, json, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    rate, total = args.rate, int(args.rate * args.seconds)
    batch, start, n = max(1, int(rate / 100)), time.monotonic(), 0
    while n < total:
        block = []
        for _ in range(batch):
            n += 1
            block.append(f"step {n:>9} loss 0.{n % 997:03d} lr 0.001 samples/s 1234.5 ok".ljust(63, "."))
            if n % 1000 == 0:
                progress = {"epoch": n // 1000, "total_epochs": total // 1000}
                block.append("VTM_PROGRESS::" + json.dumps(progress))
        sys.stdout.write("\\n".join(block) + "\\n")
        sys.stdout.flush()
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
""")

CATALOG = """
tasks:
  - taskType: noisy
    title: Noisy run
    description: prints many lines a second
    runner:
      startMethod: python_script
      target: noisy.py
    extraFields:
      - {name: rate, valueType: float, default: 10000}
      - {name: seconds, valueType: float, default: 60}
"""


def make_env(folder: Path) -> dict[str, str]:
    (folder / "noisy.py").write_text(NOISY)
    (folder / "catalog.yaml").write_text(CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTM_", "MLFLOW_"))}
    env.update(VTM_HOME=str(folder / ".vtm"), TRAINING_CATALOG_PATH=str(folder / "catalog.yaml"),
               MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}", TERM="xterm-256color",
               VTM_CANCEL_GRACE="2")
    return env


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> pexpect.spawn:
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd), dimensions=(ROWS, COLS),
                          encoding="utf-8", codec_errors="replace", timeout=30)
    child.delaybeforesend = None  # pexpect sleeps 50 ms before each send by default
    return child


class Screen:
    """Reads a child's terminal output straight from the pty (no pexpect buffering)."""

    def __init__(self, child: pexpect.spawn):
        self.child = child
        self.buffer = ""
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode

    def _read(self, timeout: float) -> None:
        if select.select([self.child.child_fd], [], [], timeout)[0]:
            try:
                data = os.read(self.child.child_fd, 1 << 20)
            except OSError:  # the child has gone
                data = b""
            self.buffer = (self.buffer + self._decode(data))[-(1 << 20):]

    def drain(self, seconds: float = 0.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._read(0.005)
            if time.monotonic() >= deadline:
                return

    def wait_for(self, *texts: str, timeout: float = 30.0) -> float:
        """The time at which all texts were in the buffer (clear it first to wait for new text)."""
        deadline = time.monotonic() + timeout
        while not all(text in self.buffer for text in texts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"never saw {texts}; last output: {self.buffer[-500:]!r}")
            self._read(0.002)
        return time.monotonic()


def quit_app(child: pexpect.spawn) -> None:
    child.send("\x11")  # ctrl+q
    deadline = time.monotonic() + 15
    while child.isalive() and time.monotonic() < deadline:
        try:
            os.read(child.child_fd, 1 << 20)
        except OSError:
            break
    child.close()


def bench_startup(env: dict[str, str], cwd: Path, runs: int) -> dict:
    python, first_frame, first_frame_cpu = [], [], []
    for _ in range(runs):
        start = time.monotonic()
        child = spawn([sys.executable, "-c", "pass"], env, cwd)
        child.expect(pexpect.EOF)
        python.append(time.monotonic() - start)
        child.close()

        start = time.monotonic()
        child = spawn([VTM], env, cwd)
        screen = Screen(child)
        first_frame.append(screen.wait_for(*TITLES) - start)
        first_frame_cpu.append(cpu_seconds(child.pid))  # what the start-up cost, whatever the load
        quit_app(child)
    return {"python -c pass (s)": statistics.median(python),
            "vtm first frame (s)": statistics.median(first_frame),
            "first frame / python start": statistics.median(first_frame) / statistics.median(python),
            "vtm CPU seconds at first frame": statistics.median(first_frame_cpu)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def bench_latency(env: dict[str, str], cwd: Path, presses: int, rate: float = 10000) -> dict:
    sys.path.insert(0, str(REPO))
    from vtm_tui.core.runs.lifecycle import cancel, launch, wait
    from vtm_tui.settings import Settings

    settings = Settings.load(cwd=cwd, environ=env)
    quiet = launch(settings, "noisy", {"rate": 1000, "seconds": 0.2})
    wait(settings, quiet.id, timeout=60)
    noisy = launch(settings, "noisy", {"rate": rate, "seconds": 600})
    try:
        child = spawn([VTM], env, cwd)
        screen = Screen(child)
        screen.wait_for(*TITLES)
        child.send("2")
        screen.wait_for(f"Run {noisy.id}", "step")
        screen.drain(2.0)  # let the tail reach its steady state
        log = Path(noisy.log_path)
        size0, cpu0, wall0 = log.stat().st_size, cpu_seconds(child.pid), time.monotonic()
        latencies = []
        for index in range(presses):
            key, target = ("\x1b[B", quiet.id) if index % 2 == 0 else ("\x1b[A", noisy.id)
            screen.buffer = ""
            sent = time.monotonic()
            child.send(key)
            latencies.append(screen.wait_for(f"Run {target}") - sent)
            screen.drain(0.15)
        cpu1, wall1, size1 = cpu_seconds(child.pid), time.monotonic(), log.stat().st_size
        quit_app(child)
    finally:
        cancel(settings, noisy.id)
    latencies.sort()
    wall = wall1 - wall0
    line_bytes = 64  # each line of the busy run is 63 characters and a newline
    return {
        "log lines/s during the window": (size1 - size0) / line_bytes / wall,
        "key -> screen p50 (ms)": 1000 * statistics.median(latencies),
        "key -> screen p95 (ms)": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "key -> screen max (ms)": 1000 * latencies[-1],
        "TUI CPU (cores)": (cpu1 - cpu0) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups to time")
    parser.add_argument("--presses", type=int, default=40, help="key presses to time under load")
    parser.add_argument("--rate", type=float, default=10000, help="log lines a second of the busy run")
    parser.add_argument("--skip-startup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = make_env(cwd)
        results = {} if args.skip_startup else bench_startup(env, cwd, args.runs)
        results.update(bench_latency(env, cwd, args.presses, args.rate))
    results["machine load average (1 min)"] = os.getloadavg()[0]
    results["CPU cores"] = os.cpu_count()
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value:10.3f}")
    ok = (results.get("vtm first frame (s)", 0) < 1.0 and results["key -> screen p95 (ms)"] < 100
          and results["TUI CPU (cores)"] < 1.0)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
