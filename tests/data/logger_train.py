"""A small training loop on vtm's TrainingLogger (no torch model): per epoch one metric to
TensorBoard, MLflow and the progress line, then a checkpoint file; for the tracking-fault tests."""
import argparse
import math
import time
from pathlib import Path

from vtm_tui.train import TrainingLogger

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--sleep", type=float, default=0.5)
parser.add_argument("--retry", type=float, default=1.0, help="seconds between probes of a server that is away")
parser.add_argument("--experiment", default="vtm-fault-tests")
args = parser.parse_args()

with TrainingLogger(experiment_name=args.experiment, params={"epochs": args.epochs, "sleep": args.sleep},
                    tb_dir="outputs/tensorboard/{run_name}", mlflow_retry_interval=args.retry) as tl:
    print(f"tensorboard={tl.tb_dir}", flush=True)
    for epoch in range(1, args.epochs + 1):
        time.sleep(args.sleep)
        tl.log_epoch(epoch, args.epochs, {"train_loss": 1 / epoch, "val_accuracy": 1 - math.exp(-epoch)})
    checkpoint = Path("outputs") / "checkpoint.txt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(f"epochs={args.epochs}\n")
    tl.log_checkpoint(checkpoint)
print("finished", flush=True)
