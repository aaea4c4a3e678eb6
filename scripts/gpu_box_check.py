"""The GPU-machine check of the GPU queue and system metrics (issue 5/6), for a machine with an
NVIDIA GPU, its driver (NVML) and a CUDA build of torch.

It makes a throw-away VTM_HOME with a one-task catalog (a matmul loop on the GPU holding ~2 GB,
for --seconds s), declares a one-GPU box (VTM_GPUS=0), launches two `--num-gpus 1` runs, shows
the second `queued` (and what it waits for) until the first ends, then prints each run's
CUDA_VISIBLE_DEVICES, start/end and the GPU utilization and memory its supervisor sampled (every
second). Exit 0 when the queue and the samples look right, 1 when not, 2 without a GPU.

    .venv/bin/python scripts/gpu_box_check.py [--seconds 20]

Expected output (figures vary; what must hold is marked in brackets):

    NVML: 1 GPU(s): 0 NVIDIA H200 ...                      [at least one GPU]
    launched run 1 and run 2, --num-gpus 1 each, VTM_GPUS=0
    t=  1s  run 1 running (gpus 0)  run 2 queued: 1 GPU: 0 free of 1; GPU 0: held by run 1
    ...                                                    [run 2 queued while run 1 runs]
    t= 22s  run 1 succeeded  run 2 running (gpus 0)
    ...
    run 1: succeeded, CUDA_VISIBLE_DEVICES=0, 20 samples: GPU 0 utilization max 100%, memory max 2.6 GB
    run 2: succeeded, CUDA_VISIBLE_DEVICES=0, 20 samples: GPU 0 utilization max 100%, memory max 2.6 GB
    run 2 started after run 1 ended: yes                   [yes]
    OK
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIN = """
import argparse, time
import torch
parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=20)
args = parser.parse_args()
device = torch.device("cuda")
held = torch.empty(int(2e9) // 4, device=device)  # ~2 GB
a = torch.randn(4096, 4096, device=device)
start = time.monotonic()
epoch = 0
while time.monotonic() - start < args.seconds:
    for _ in range(50):
        a = torch.tanh(a @ a)
    torch.cuda.synchronize()
    if int(time.monotonic() - start) > epoch:
        epoch += 1
        print("VTM_PROGRESS::{\\"epoch\\": %d, \\"total_epochs\\": %d}" % (epoch, int(args.seconds)), flush=True)
"""

CATALOG = """tasks:
  - taskType: gpu_matmul
    title: Matmul loop on the GPU
    runner: {startMethod: python_script, target: gpu_train.py}
    extraFields:
      - {name: seconds, valueType: float, default: 20}
"""


def main() -> int:
    from vtm_tui.core.gpus.inventory import read_inventory
    from vtm_tui.core.runs.store import RunStore
    from vtm_tui.settings import Settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    inventory = read_inventory(Settings.from_environ({k: v for k, v in os.environ.items() if k != "VTM_GPUS"}))
    if inventory.source != "nvml" or not inventory.devices:
        print(f"no NVIDIA GPU here (inventory: {inventory.source}; {inventory.note or 'NVML sees none'})")
        return 2
    print(f"NVML: {len(inventory.devices)} GPU(s): "
          + "; ".join(f"{d.index} {d.name}" for d in inventory.devices))
    vtm = str(Path(sys.executable).with_name("vtm"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "gpu_train.py").write_text(TRAIN)
        (root / "catalog.yaml").write_text(CATALOG)
        env = {**os.environ, "VTM_HOME": str(root / ".vtm"), "VTM_GPUS": "0", "VTM_SYSTEM_METRICS_INTERVAL": "1",
               "TRAINING_CATALOG_PATH": str(root / "catalog.yaml"), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/m.db"}
        ids = []
        for _ in range(2):
            out = subprocess.run([vtm, "launch", "gpu_matmul", "--num-gpus", "1", "--set", f"seconds={args.seconds}",
                                  "--json"], cwd=root, env=env, capture_output=True, text=True, check=True).stdout
            ids.append(json.loads(out)["id"])
        print(f"launched run {ids[0]} and run {ids[1]}, --num-gpus 1 each, VTM_GPUS=0")
        store = RunStore(root / ".vtm" / "runs.db")
        start, seen_queued = time.monotonic(), False
        while any(store.get(i).active for i in ids):
            listing = json.loads(subprocess.run([vtm, "runs", "--json"], cwd=root, env=env, capture_output=True,
                                                text=True, check=True).stdout)
            parts = []
            for run in sorted(listing, key=lambda r: r["id"]):
                if run["status"] == "queued" and "queue" in run:
                    seen_queued = seen_queued or run["id"] == ids[1]
                    parts.append(f"run {run['id']} queued: {'; '.join(run['queue']['waits_for'])}")
                else:
                    parts.append(f"run {run['id']} {run['status']}" + (f" (gpus {run['gpus']})" if run["gpus"] else ""))
            print(f"t={time.monotonic() - start:3.0f}s  " + "  ".join(parts), flush=True)
            time.sleep(2)
        good = seen_queued
        for run_id in ids:
            run = store.get(run_id)
            samples = store.system_samples(run_id)
            util = [s.get("system/gpu_0_utilization_percentage", 0) for s in samples]
            memory = [s.get("system/gpu_0_memory_usage_megabytes", 0) for s in samples]
            cuda = run.env.get("CUDA_VISIBLE_DEVICES")
            print(f"run {run_id}: {run.status}, CUDA_VISIBLE_DEVICES={cuda}, {len(samples)} samples: GPU 0 "
                  f"utilization max {max(util, default=0):.0f}%, memory max {max(memory, default=0) / 1000:.1f} GB")
            good = good and run.status == "succeeded" and cuda == "0" and max(util, default=0) > 0 \
                and max(memory, default=0) > 1000
        first, second = store.get(ids[0]), store.get(ids[1])
        after = second.started_at is not None and first.ended_at is not None and second.started_at >= first.ended_at
        print(f"run {ids[1]} started after run {ids[0]} ended: {'yes' if after else 'no'}")
        print("OK" if good and after else "NOT OK")
        return 0 if good and after else 1


if __name__ == "__main__":
    sys.exit(main())
