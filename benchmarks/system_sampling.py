"""What a run's system metrics cost its supervisor (issue 5/6: sampling at 1 s must stay under 1%
of a core). Each part prints its figure against a baseline measured in the same run.

  tree     finding a run's process tree: /proc/<pid>/task/*/children (vtm) vs psutil's
           children(recursive=True), which reads every process's stat file; with N extra idle
           processes on the machine (a busy GPU box), CPU per call
  sample   one SystemSampler.sample() of a 5-process tree (CPU per call; NVML when present)
  mlflow   sending one sample to MLflow: `import mlflow` in a fresh interpreter (CPU, memory) vs
           one REST log-batch request (MetricsPoster) to a real tracking server started here
  supervisor  the supervisor's own CPU over a 5-process run of --seconds s with sampling at 1 s
           vs sampling off (VTM_SYSTEM_METRICS_INTERVAL=0), alternating, the same script; samples
           go to the run store (a file tracking URI: no MLflow posting, see the mlflow part)

Usage: python benchmarks/system_sampling.py [--parts tree,sample,mlflow,supervisor] [--extra 300] [--seconds 30]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtm_tui.core.gpus import sampling  # noqa: E402
from vtm_tui.core.gpus.sampling import SystemSampler, process_tree  # noqa: E402

TREE = """
import subprocess, sys, time
workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]) for _ in range(4)]
print("ready", flush=True)
time.sleep(3600)
"""


def cpu_per_call(call, calls: int) -> float:
    """Milliseconds of this process's CPU per call (best of 3 rounds)."""
    rounds = []
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            call()
        rounds.append((time.process_time() - start) / calls * 1000)
    return min(rounds)


def start_tree() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait()


def part_tree(extra: int) -> None:
    import psutil

    tree = start_tree()
    idle = [subprocess.Popen(["sleep", "3600"], start_new_session=True) for _ in range(extra)]
    try:
        total = len(psutil.pids())
        assert len(process_tree(tree.pid)) == 5
        ours = cpu_per_call(lambda: process_tree(tree.pid), 200)
        theirs = cpu_per_call(lambda: psutil.Process(tree.pid).children(recursive=True), 50)
    finally:
        stop([tree, *idle])
    print(f"[tree] {total} processes on the machine, a 5-process run tree")
    print(f"  /proc children files: {ours:.3f} ms CPU per call")
    print(f"  psutil children(recursive=True): {theirs:.3f} ms CPU per call ({theirs / ours:.0f}x)")
    print(f"  at one sample a second: {ours / 10:.3f}% vs {theirs / 10:.3f}% of a core")


def part_sample() -> None:
    tree = start_tree()
    try:
        sampler = SystemSampler(lambda: process_tree(tree.pid), gpus=(0,))
        cost = cpu_per_call(sampler.sample, 200)
        without = cpu_per_call(lambda: process_tree(tree.pid), 200)
    finally:
        stop([tree])
    gpus = "with NVML" if sampler.sample().gpus else "no NVML here"
    print(f"[sample] one SystemSampler.sample() of a 5-process tree ({gpus}): {cost:.3f} ms CPU "
          f"({without:.3f} ms of it finding the tree); at 1 s: {cost / 10:.3f}% of a core")


def part_mlflow() -> None:
    probe = ("import resource, time; s = time.process_time(); import mlflow; "
             "print(time.process_time() - s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    base = ("import resource, time; s = time.process_time(); import vtm_tui.core.tracking.metrics_rest; "
            "print(time.process_time() - s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    root = str(Path(__file__).resolve().parents[1])

    def measure(code: str) -> tuple[float, float]:
        runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
                for _ in range(3)]
        values = [tuple(map(float, run.stdout.split())) for run in runs]
        return min(v[0] for v in values), min(v[1] for v in values) / 1024

    mlflow_cpu, mlflow_mb = measure(probe)
    rest_cpu, rest_mb = measure(base)
    print(f"[mlflow] import mlflow: {mlflow_cpu:.2f} s CPU, peak RSS {mlflow_mb:.0f} MB; "
          f"the REST poster's import: {rest_cpu * 1000:.0f} ms CPU, peak RSS {rest_mb:.0f} MB")

    from mlflow import MlflowClient

    from vtm_tui.core.gpus.sampling import SystemSample, TreeUsage
    from vtm_tui.core.tracking import server
    from vtm_tui.core.tracking.metrics_rest import MetricPoint, MetricsPoster
    from vtm_tui.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings = Settings.load(cwd=Path(folder), environ={"VTM_HOME": folder, "VTM_MLFLOW_PORT": str(port)})
        uri = server.up(settings).uri
        try:
            client = MlflowClient(uri)
            run_id = client.create_run(client.create_experiment("bench")).info.run_id
            sample = SystemSample(time.time(), TreeUsage(99.0, 300.0, 5), 50.0, 6000.0, 25.0)
            metrics = [MetricPoint(key, value, int(time.time() * 1000), 0) for key, value in sample.metrics().items()]
            poster = MetricsPoster(uri)
            wall = time.perf_counter()
            rest = cpu_per_call(lambda: poster.log_batch(run_id, metrics), 50)
            wall = (time.perf_counter() - wall) / 150 * 1000
            from mlflow.entities import Metric

            entities = [Metric(m.key, m.value, m.timestamp, m.step) for m in metrics]
            native = cpu_per_call(lambda: client.log_batch(run_id, metrics=entities), 50)
        finally:
            server.down(settings)
    print(f"[mlflow] one sample ({len(metrics)} metrics) per request: REST {rest:.2f} ms CPU ({wall:.1f} ms wall), "
          f"MlflowClient.log_batch {native:.2f} ms CPU; at 1 s: {rest / 10:.3f}% of a core over REST")


RUN = """
import json, subprocess, sys, time
workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]) for _ in range(4)]
for epoch in range(1, {seconds} + 1):
    time.sleep(1)
    print("VTM_PROGRESS::" + json.dumps({{"epoch": epoch, "total_epochs": {seconds}}}), flush=True)
for worker in workers:
    worker.kill()
"""


def supervisor_cpu(folder: Path, interval: str, seconds: int) -> tuple[float, int]:
    """CPU seconds (user + system) the supervisor itself used over one run, and the samples stored."""
    import psutil

    from vtm_tui.core.runs.store import RunStore

    store = RunStore(folder / "runs.db")
    env = {"VTM_SYSTEM_METRICS_INTERVAL": interval, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
           "PYTHONUNBUFFERED": "1"}
    run = store.create(task="bench", argv=[sys.executable, "-c", RUN.format(seconds=seconds)], env=env,
                       field_values={}, cwd=str(folder))
    root = str(Path(__file__).resolve().parents[1])
    sup = subprocess.Popen([sys.executable, "-m", "vtm_tui.core.runs.supervisor", str(store.path), str(run.id)],
                           cwd=root, env={**os.environ, **env})
    watch, used = psutil.Process(sup.pid), 0.0
    while sup.poll() is None:
        try:
            times = watch.cpu_times()
            used = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(0.2)
    assert store.get(run.id).status == "succeeded", store.get(run.id)
    return used, len(store.system_samples(run.id))


def part_supervisor(seconds: int) -> None:
    on, off = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):
            off.append(supervisor_cpu(Path(folder), "0", seconds)[0])
            cpu, samples = supervisor_cpu(Path(folder), "1", seconds)
            on.append(cpu)
    cost = (min(on) - min(off)) / seconds * 100
    print(f"[supervisor] {seconds} s run, 5 processes: supervisor CPU {min(off):.2f} s with sampling off, "
          f"{min(on):.2f} s at 1 s ({samples} samples stored); sampling costs {cost:.2f}% of a core "
          f"(total {min(on) / seconds * 100:.2f}% vs {min(off) / seconds * 100:.2f}%; best of 2 each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="tree,sample,mlflow,supervisor")
    parser.add_argument("--extra", type=int, default=300, help="idle processes to add for the tree part")
    parser.add_argument("--seconds", type=int, default=30, help="length of each run of the supervisor part")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; children files: "
          f"{sampling._children_files()}")
    for part in args.parts.split(","):
        if part == "tree":
            part_tree(args.extra)
        elif part == "sample":
            part_sample()
        elif part == "mlflow":
            part_mlflow()
        elif part == "supervisor":
            part_supervisor(args.seconds)
        else:
            parser.error(f"unknown part {part!r}")


if __name__ == "__main__":
    main()
