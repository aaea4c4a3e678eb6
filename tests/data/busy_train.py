"""A stand-in training script for the GPU-box tests: prints the devices it was given, holds
--hold_mb MB of memory (touched, so it is resident), keeps one core busy in a child process (so a
sampler must follow the process tree to see it), prints progress every --epoch_seconds, and ends
after --epochs epochs (or when --until_file exists)."""
import argparse
import json
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--epoch_seconds", type=float, default=0.5)
parser.add_argument("--hold_mb", type=int, default=0, help="MB (10^6 bytes) of memory to hold, in a child")
parser.add_argument("--busy", action="store_true",
                    help="keep one core busy, in a child (at a raised priority where allowed, so that it"
                         " does keep a core busy on a loaded machine)")
parser.add_argument("--until_file", default="", help="run until this file exists (then finish the epoch)")
parser.add_argument("--tag", default="")
parser.add_argument("--mlflow", action="store_true", help="open an MLflow run (as a training script does)")
args = parser.parse_args()

print(f"starting {args.tag} pid={os.getpid()}", flush=True)
print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
print("CUDA_DEVICE_ORDER=" + os.environ.get("CUDA_DEVICE_ORDER", "<unset>"), flush=True)

if args.mlflow:
    import mlflow

    mlflow.set_experiment("vtm-gpu-box-tests")
    run = mlflow.start_run()
    print("VTM_RUN_META::" + json.dumps({"mlflow_run_id": run.info.run_id}), flush=True)

worker = None
if args.hold_mb or args.busy:
    # The child does the work, as a DataLoader worker would: the run's usage is its process tree's.
    code = (f"import os, time\nheld = bytearray({args.hold_mb} * 1000 * 1000)\n"
            "for i in range(0, len(held), 4096):\n    held[i] = 1\n"
            f"busy = {args.busy}\n"
            # Linux schedules sessions against each other first (autogroups, sched(7)): raise
            # this session's share as well as the process's own.
            "if busy:\n    try:\n        os.nice(-10)\n"
            "        with open('/proc/self/autogroup', 'w') as f:\n            f.write('-10')\n"
            "    except OSError:\n        pass\n"
            "x = 0\nwhile True:\n"
            "    if busy:\n        x += 1\n    else:\n        time.sleep(0.1)\n")
    worker = subprocess.Popen([sys.executable, "-c", code])
    print(f"WORKER_PID={worker.pid}", flush=True)

epoch = 0
try:
    while True:
        epoch += 1
        time.sleep(args.epoch_seconds)
        print("VTM_PROGRESS::" + json.dumps({"epoch": epoch, "total_epochs": args.epochs, "tag": args.tag}),
              flush=True)
        if args.until_file:
            if os.path.exists(args.until_file):
                break
        elif epoch >= args.epochs:
            break
finally:
    if worker is not None:
        worker.kill()
        worker.wait()
if args.mlflow:
    mlflow.end_run()
print(f"finished {args.tag}", flush=True)
