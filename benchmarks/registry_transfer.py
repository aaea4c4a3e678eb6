"""Registry transfer benchmark: publish and pull a large checkpoint over loopback FTP, against
raw aioftp transfers of the same bytes to and from the same server in the same run.

    python benchmarks/registry_transfer.py                 # 200 MB, vtm's aioftp server
    python benchmarks/registry_transfer.py --server pyftpdlib --size-mb 200 --repeat 3 --json

The server runs in its own process (as a real one would), serving a temporary folder.
Measured, each as bytes of the checkpoint / wall-clock seconds, best and median of --repeat:

  raw upload      aioftp STOR of the checkpoint file (1 MiB blocks read from disk)
  raw download    aioftp RETR of the same bytes into a local file (1 MiB blocks)
  aioftp upload() / download()   aioftp's own high-level file methods (its 8 KiB default
                  blocks), for reference
  publish         Registry.publish_file: safe-load check, bundle (tar + gzip level 0) built while
                  it streams, sha256 of checkpoint and bundle, version claim, manifest, LATEST
  pull            Registry.pull: manifest, download streamed through sha256 + safe extraction into
                  a temporary folder, verification, move into place
  pull (verify-first)  download to a temporary file, verify, then extract (one more pass)

Ratios compare publish with raw upload and pull with raw download. Timings on a shared
machine are noisy: interleaved repetitions, and the median, make them comparable.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PASSWORD = "bench-password"
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVERS = {
    "aioftp": ("import sys; from pathlib import Path\n"
               "from vtm_tui.core.registry.ftp_server import FtpUser, run\n"
               "run(Path(sys.argv[1]), [FtpUser('vtm', sys.argv[3])], '127.0.0.1', int(sys.argv[2]),\n"
               "    ready=lambda h, p: print('READY', flush=True))\n"),
    "pyftpdlib": ("import sys\n"
                  "from pyftpdlib.authorizers import DummyAuthorizer\n"
                  "from pyftpdlib.handlers import FTPHandler\n"
                  "from pyftpdlib.servers import FTPServer\n"
                  "auth = DummyAuthorizer(); auth.add_user('vtm', sys.argv[3], sys.argv[1], perm='elradfmwMT')\n"
                  "FTPHandler.authorizer = auth\n"
                  "server = FTPServer(('127.0.0.1', int(sys.argv[2])), FTPHandler)\n"
                  "print('READY', flush=True); server.serve_forever()\n"),
}


def start_server(kind: str, root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVERS[kind], str(root), str(port), PASSWORD],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            start_new_session=True)
    if not proc.stdout.readline().startswith("READY"):
        proc.kill()
        raise SystemExit(f"{kind} server did not start")
    return proc, port


def make_checkpoint(path: Path, size_mb: int) -> int:
    """A vtm-checkpoint-v1 dict whose state dict holds `size_mb` MB of random float32."""
    import torch

    gen = torch.Generator().manual_seed(0)
    per_tensor = 1_000_000  # 4 MB each
    count = max(1, size_mb * 1_000_000 // (4 * per_tensor))
    state = {f"layer{i}.weight": torch.randn(per_tensor, generator=gen) for i in range(count)}
    torch.save({"format": "vtm-checkpoint-v1", "task_type": "classification", "architecture": "SmallCNN",
                "num_classes": 5, "image_size": 32, "input_shape": [3, 32, 32], "class_names": list("abcde"),
                "state_dict": state, "epoch": 1, "metric": {"val_accuracy": 0.5}, "mlflow_run_id": None}, path)
    return path.stat().st_size


async def raw_upload(port: int, src: Path, dest: str) -> None:
    import aioftp

    async with aioftp.Client.context("127.0.0.1", port, "vtm", PASSWORD, socket_timeout=60) as client:
        async with client.upload_stream(dest) as stream:
            with open(src, "rb", buffering=0) as handle:
                while chunk := handle.read(CHUNK):
                    await stream.write(chunk)


async def raw_download(port: int, src: str, dest: Path) -> None:
    import aioftp

    async with aioftp.Client.context("127.0.0.1", port, "vtm", PASSWORD, socket_timeout=60) as client:
        async with client.download_stream(src) as stream:
            with open(dest, "wb", buffering=0) as handle:
                while block := await stream.read(CHUNK):
                    handle.write(block)


async def aioftp_upload(port: int, src: Path, dest: str) -> None:
    import aioftp

    async with aioftp.Client.context("127.0.0.1", port, "vtm", PASSWORD, socket_timeout=60) as client:
        await client.upload(src, dest, write_into=True)


async def aioftp_download(port: int, src: str, dest: Path) -> None:
    import aioftp

    async with aioftp.Client.context("127.0.0.1", port, "vtm", PASSWORD, socket_timeout=60) as client:
        await client.download(src, dest, write_into=True)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(kind: str, size_mb: int, repeat: int, work: Path, with_reference: bool) -> dict:
    from vtm_tui.core.registry import Registry, open_backend

    root = work / f"{kind}-root"
    root.mkdir()
    ckpt = work / "best_checkpoint.pth"
    size = ckpt.stat().st_size
    proc, port = start_server(kind, root)
    url = f"ftp://vtm@127.0.0.1:{port}/registry"
    env = {"VTM_FTP_PASSWORD": PASSWORD}
    times: dict[str, list[float]] = {k: [] for k in (
        "raw upload", "publish", "raw download", "pull", "pull (verify-first)",
        *(("aioftp upload()", "aioftp download()") if with_reference else ()))}
    try:
        with Registry(open_backend(url, env=env)) as reg:  # warm-up: imports, first connection
            small = work / "small.pth"
            make_checkpoint(small, 1)
            reg.publish_file(small, "warmup", "dev")
            reg.pull("warmup", "dev", "latest", work / "dl-warmup")
        for i in range(repeat):
            times["raw upload"].append(timed(lambda: asyncio.run(raw_upload(port, ckpt, f"raw-{i}.bin"))))
            with Registry(open_backend(url, env=env)) as reg:
                times["publish"].append(timed(lambda: reg.publish_file(ckpt, f"bench-{i}", "dev", set_latest=True)))
            dl = work / f"raw-{i}.bin"
            times["raw download"].append(timed(lambda: asyncio.run(raw_download(port, f"raw-{i}.bin", dl))))
            dl.unlink()
            with Registry(open_backend(url, env=env)) as reg:
                times["pull"].append(timed(lambda: reg.pull(f"bench-{i}", "dev", "latest", work / "dl")))
            shutil.rmtree(work / "dl")
            with Registry(open_backend(url, env=env)) as reg:
                times["pull (verify-first)"].append(timed(
                    lambda: reg.pull(f"bench-{i}", "dev", "latest", work / "dl", verify_first=True)))
            shutil.rmtree(work / "dl")
            if with_reference:
                times["aioftp upload()"].append(timed(lambda: asyncio.run(aioftp_upload(port, ckpt, f"ref-{i}.bin"))))
                times["aioftp download()"].append(timed(lambda: asyncio.run(aioftp_download(port, f"ref-{i}.bin", dl))))
                dl.unlink()
                (root / f"ref-{i}.bin").unlink()
            (root / f"raw-{i}.bin").unlink()
            shutil.rmtree(root / "registry" / f"bench-{i}")
    finally:
        proc.terminate()
        proc.wait(10)
    rates = {k: {"best_MBps": round(size / min(v) / 1e6, 1), "median_MBps": round(size / statistics.median(v) / 1e6, 1),
                 "seconds": [round(x, 3) for x in v]} for k, v in times.items()}
    return {
        "server": kind, "bytes": size, "repeat": repeat, "rates": rates,
        "publish_vs_raw_upload": round(statistics.median(times["raw upload"]) / statistics.median(times["publish"]), 3),
        "pull_vs_raw_download": round(statistics.median(times["raw download"]) / statistics.median(times["pull"]), 3),
        "pull_verify_first_vs_raw_download": round(
            statistics.median(times["raw download"]) / statistics.median(times["pull (verify-first)"]), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", choices=["aioftp", "pyftpdlib", "both"], default="aioftp")
    parser.add_argument("--reference", action="store_true", help="also time aioftp's upload()/download()")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", help="where to put the temporary files (default: system temp)")
    args = parser.parse_args(argv)
    kinds = ["aioftp", "pyftpdlib"] if args.server == "both" else [args.server]
    results = []
    with tempfile.TemporaryDirectory(prefix="vtm-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        size = make_checkpoint(work / "best_checkpoint.pth", args.size_mb)
        for kind in kinds:
            (work / kind).mkdir()
            shutil.copy(work / "best_checkpoint.pth", work / kind / "best_checkpoint.pth")
            results.append(run(kind, args.size_mb, args.repeat, work / kind, args.reference))
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
        return 0
    print(f"checkpoint: {size / 1e6:.1f} MB of float32, gzip level 0 (store), {os.cpu_count()} CPUs, loopback")
    for result in results:
        print(f"\nserver: {result['server']} (separate process), {result['repeat']} interleaved repetitions")
        print(f"  {'':<22} {'median MB/s':>12} {'best MB/s':>10}")
        for name, rate in result["rates"].items():
            print(f"  {name:<22} {rate['median_MBps']:>12.1f} {rate['best_MBps']:>10.1f}")
        print(f"  publish / raw upload:             {result['publish_vs_raw_upload']:.0%}")
        print(f"  pull / raw download:              {result['pull_vs_raw_download']:.0%}")
        print(f"  pull (verify-first) / raw download: {result['pull_verify_first_vs_raw_download']:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
