"""TensorBoard -> MLflow import speed, on a generated log of TAGS x STEPS scalar points in one run.

1. parsing alone: vtm's streaming reader vs tensorboard's EventAccumulator (no sampling:
   size_guidance scalars=0) on the same file. Target: >= 5x.
2. end to end into a REST tracking server (`mlflow server` as it comes: SQLite backend, its
   default worker count unless --server-workers says otherwise; started here on a free port,
   fresh for each measurement, the same configuration on both sides): `import_tensorboard` vs a sequential
   `MlflowClient.log_batch` loop of 1000 already-parsed points (target >= 2x), and vs a
   per-point `log_metric` loop timed on a sample and extrapolated (target >= 100x).
3. peak memory (VmHWM of the importing process) for the full log and a 10x smaller one:
   flat in the number of points, < 500 MB.
Each end-to-end line also gives the CPU time of the client and of the server's request
processes per 1000 points: on a shared or busy machine the wall-time ratios follow whoever
else uses the cores, the CPU figures do not.

Usage: python benchmarks/tb_import.py [--tags 20] [--steps 50000] [--server-workers N]
       [--import-workers 4] [--skip-ea] [--skip-e2e] [--sample 2000]
Every server it starts is stopped at the end (by its process group, which it created).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vtm_tui.core.tensorboard.tfrecord import FAST_CRC, RecordWriter, read_records  # noqa: E402

WALL0 = 1_700_000_000.0


def generate(path: Path, tags: int, steps: int) -> int:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    Event, Summary = event_pb2.Event, summary_pb2.Summary
    names = [f"group{n % 4}/metric_{n}" for n in range(tags)]
    with RecordWriter(path) as writer:
        writer.write(Event(wall_time=WALL0, file_version="brain.Event:2").SerializeToString())
        for step in range(steps):
            for n, name in enumerate(names):
                writer.write(Event(wall_time=WALL0 + step * 0.05 + n * 1e-4, step=step, summary=Summary(
                    value=[Summary.Value(tag=name, simple_value=((step * 31 + n) % 1000) / 7.0)]
                )).SerializeToString())
    return tags * steps


def parse_vtm(path: Path) -> tuple[float, int]:
    from vtm_tui.core.tensorboard.events import EventDecoder

    started = time.perf_counter()
    decoder = EventDecoder()
    points = 0
    for _start, _end, data, _damage in read_records(path):
        if data is not None:
            decoded = decoder.decode(data)
            if decoded is not None:
                points += len(decoded[2])
    return time.perf_counter() - started, points


def parse_event_accumulator(path: Path) -> tuple[float, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    started = time.perf_counter()
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    points = sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])
    return time.perf_counter() - started, points


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`mlflow server` with a fresh SQLite store, in its own process group."""

    def __init__(self, workdir: Path, workers: int | None):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True)
        self.log = open(workdir / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
             "--artifacts-destination", str(workdir / "artifacts"),
             *(["--workers", str(workers)] if workers else [])],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2):
                    self.settle()
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"mlflow server exited; see {workdir / 'server.log'}") from None
                time.sleep(0.5)
        self.stop()
        raise SystemExit("mlflow server did not come up")

    def _group_cpu(self, serving_only: bool = False) -> float:
        """CPU seconds used so far by the server's process group (the server and all it started);
        serving_only: just the processes that serve requests (uvicorn and its workers), not
        MLflow's background job runner and huey consumers, which poll on their own."""
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes() if serving_only else b""
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and b"jobs" not in cmdline and b"huey" not in cmdline:
                ticks += int(fields[11]) + int(fields[12])  # utime stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout: float = 90) -> None:
        """Wait until the server's processes are idle: /health answers while MLflow's job-runner
        processes are still importing, and that CPU would otherwise be charged to whichever
        measurement runs first."""
        deadline = time.monotonic() + timeout
        last = self._group_cpu()
        while time.monotonic() < deadline:
            time.sleep(1)
            now = self._group_cpu()
            if now - last < 0.05:
                return
            last = now

    def cpu_seconds(self) -> float:
        """CPU time used so far by the processes that serve requests."""
        return self._group_cpu(serving_only=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# Peak RSS is VmHWM of the child's own address space: ru_maxrss would also count the parent's
# RSS at fork time (Linux carries it over exec), which here holds a million parsed points.
PEAK_RSS = "max(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024"

IMPORT_CHILD = """
import json, sys, time
from vtm_tui.core.tensorboard.importer import import_tensorboard
started, cpu = time.perf_counter(), time.process_time()
report = import_tensorboard(sys.argv[1], tracking_uri=sys.argv[2], experiment_name="bench",
                            workers=int(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - started, "points": report.points_imported,
                  "client_cpu": time.process_time() - cpu,
                  "problems": [str(p) for p in report.problems], "max_rss_mb": %s}))
""" % PEAK_RSS

PARSE_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from benchmarks.tb_import import parse_vtm
from pathlib import Path
seconds, points = parse_vtm(Path(sys.argv[1]))
print(json.dumps({"seconds": seconds, "points": points, "max_rss_mb": %s}))
""" % PEAK_RSS


def child(code: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_into_fresh_server(log_dir: Path, workdir: Path, server_workers: int | None, import_workers: int) -> dict:
    with Server(workdir, server_workers) as server:
        before = server.cpu_seconds()
        result = child(IMPORT_CHILD, str(log_dir), server.uri, str(import_workers))
        result["server_cpu"] = server.cpu_seconds() - before
        return result


def baseline_log_batch(path: Path, workdir: Path, server_workers: int | None) -> dict:
    """The straightforward loop over already-parsed points: MlflowClient.log_batch, 1000 at a time."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from vtm_tui.core.tensorboard.events import EventDecoder

    decoder = EventDecoder()
    metrics = []
    for _start, _end, data, _damage in read_records(path):
        decoded = decoder.decode(data) if data is not None else None
        if decoded:
            wall, step, values, _ = decoded
            metrics.extend(Metric(key, value, int(wall * 1000), step) for key, value in values)
    with Server(workdir, server_workers) as server:
        client = MlflowClient(server.uri)
        run_id = client.create_run(client.create_experiment("baseline")).info.run_id
        before = server.cpu_seconds()
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        return {"seconds": time.perf_counter() - started, "points": len(metrics),
                "client_cpu": time.process_time() - cpu, "server_cpu": server.cpu_seconds() - before}


def baseline_log_metric(workdir: Path, server_workers: int | None, sample: int) -> dict:
    """Seconds (wall, client CPU, server CPU) per point of a per-point `log_metric` loop."""
    from mlflow import MlflowClient

    with Server(workdir, server_workers) as server:
        client = MlflowClient(server.uri)
        run_id = client.create_run(client.create_experiment("per-point")).info.run_id
        client.log_metric(run_id, "warmup", 0.0, step=0)
        before = server.cpu_seconds()
        started, cpu = time.perf_counter(), time.process_time()
        for n in range(sample):
            client.log_metric(run_id, f"group{n % 4}/metric_{n % 20}", n / 7.0,
                              timestamp=int(WALL0 * 1000) + n, step=n // 20)
        return {"seconds": (time.perf_counter() - started) / sample,
                "client_cpu": (time.process_time() - cpu) / sample,
                "server_cpu": (server.cpu_seconds() - before) / sample}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--server-workers", type=int, default=None,
                        help="mlflow server --workers, both sides (default: mlflow's own default)")
    parser.add_argument("--import-workers", type=int, default=4, help="log_batch requests in flight")
    parser.add_argument("--sample", type=int, default=2000, help="points for the log_metric loop")
    parser.add_argument("--skip-ea", action="store_true", help="skip the (slow) EventAccumulator run")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vtm-tb-bench-") as tmp:
        tmp = Path(tmp)
        log_dir = tmp / "log"
        path = log_dir / f"events.out.tfevents.{int(WALL0)}.bench.1.0"
        started = time.perf_counter()
        total = generate(path, args.tags, args.steps)
        small_dir = tmp / "small"
        small = generate(small_dir / path.name, args.tags, max(1, args.steps // 10))
        print(f"log: {total:,} points ({args.tags} tags x {args.steps:,} steps), "
              f"{path.stat().st_size / 2**20:.0f} MiB, written in {time.perf_counter() - started:.0f}s; "
              f"fast CRC32C: {FAST_CRC}", flush=True)

        ours = child(PARSE_CHILD, str(path), str(REPO))
        assert ours["points"] == total, ours
        print(f"parse  vtm reader          {ours['seconds']:8.2f}s  {total / ours['seconds']:>12,.0f} points/s"
              f"  peak RSS {ours['max_rss_mb']:.0f} MB", flush=True)
        if not args.skip_ea:
            ea_seconds, ea_points = parse_event_accumulator(path)
            assert ea_points == total, ea_points
            print(f"parse  EventAccumulator    {ea_seconds:8.2f}s  {total / ea_seconds:>12,.0f} points/s", flush=True)
            print(f"RATIO parse: vtm is {ea_seconds / ours['seconds']:.1f}x faster than EventAccumulator "
                  f"(target >= 5x)", flush=True)

        if args.skip_e2e:
            return 0
        w = args.server_workers
        imported = import_into_fresh_server(log_dir, tmp / "srv-import", w, args.import_workers)
        assert imported["points"] == total and not imported["problems"], imported
        print(f"import vtm import-tb       {imported['seconds']:8.2f}s  "
              f"{total / imported['seconds']:>12,.0f} points/s  peak RSS {imported['max_rss_mb']:.0f} MB "
              f"(server --workers {w or 'default'}, {args.import_workers} requests in flight)", flush=True)
        batch = baseline_log_batch(path, tmp / "srv-batch", w)
        batch_seconds = batch["seconds"]
        print(f"import log_batch(1000) loop {batch_seconds:7.2f}s  {batch['points'] / batch_seconds:>12,.0f} points/s",
              flush=True)
        for name, data in (("vtm import-tb", imported), ("log_batch loop", batch)):
            print(f"cpu    {name:<19} client {data['client_cpu'] / total * 1e6:6.0f} ms + server "
                  f"{data['server_cpu'] / total * 1e6:6.0f} ms per 1000 points "
                  f"(wall {data['seconds'] / total * 1e6:4.0f} ms)", flush=True)
        per_point_data = baseline_log_metric(tmp / "srv-metric", w, args.sample)
        per_point = per_point_data["seconds"]
        print(f"import log_metric loop     {per_point * 1000:8.2f}ms/point, extrapolated "
              f"{per_point * total:,.0f}s for {total:,} points", flush=True)
        print(f"cpu    log_metric loop     client {per_point_data['client_cpu'] * 1e6:6.0f} ms + server "
              f"{per_point_data['server_cpu'] * 1e6:6.0f} ms per 1000 points", flush=True)
        small_import = import_into_fresh_server(small_dir, tmp / "srv-small", w, args.import_workers)
        print(f"memory peak RSS: {small:,} points {small_import['max_rss_mb']:.0f} MB, "
              f"{total:,} points {imported['max_rss_mb']:.0f} MB (target < 500 MB, flat)", flush=True)
        print(f"RATIO end-to-end vs log_batch(1000) loop: {batch_seconds / imported['seconds']:.2f}x (target >= 2x)")
        print(f"RATIO end-to-end vs log_metric loop: {per_point * total / imported['seconds']:.0f}x (target >= 100x)")
        cpu = {name: (data["client_cpu"] + data["server_cpu"]) / data["points"]
               for name, data in (("import", imported), ("batch", batch))}
        cpu["metric"] = per_point_data["client_cpu"] + per_point_data["server_cpu"]
        print(f"RATIO total CPU (client + server) per point: log_batch loop / import "
              f"{cpu['batch'] / cpu['import']:.2f}x, log_metric loop / import {cpu['metric'] / cpu['import']:.0f}x")
        print(f"RATIO memory {total:,} vs {small:,} points: "
              f"{imported['max_rss_mb'] / small_import['max_rss_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
