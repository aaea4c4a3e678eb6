"""A controllable stand-in for a training script, for the supervisor and CLI tests."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.2)
parser.add_argument("--fail_at", type=int, default=0, help="raise at this epoch")
parser.add_argument("--mlflow", action="store_true", help="log to MLflow like a real script")
parser.add_argument("--ignore_signals", action="store_true", help="ignore SIGINT and SIGTERM")
parser.add_argument("--spawn_child", action="store_true", help="start a grandchild that sleeps")
parser.add_argument("--noise", action="store_true", help="print malformed and interleaved lines")
parser.add_argument("--tag", default="")
parser.add_argument("--show_env", action="store_true", help="print CUDA_VISIBLE_DEVICES")
parser.add_argument("--mlflow_quiet", action="store_true", help="start an MLflow run and log nothing to it")
parser.add_argument("--spam", type=float, default=0, help="print this many MB of plain lines per epoch")
parser.add_argument("--daemon", action="store_true",
                    help="start two daemons that leave the session: one keeps the environment, one drops it")
args = parser.parse_args()

_DAEMON = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
print(sys.argv[1] + "=" + str(os.getpid()), flush=True)
time.sleep(600)
"""

if args.ignore_signals:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if args.spawn_child:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"GRANDCHILD_PID={child.pid}", flush=True)

if args.daemon:
    subprocess.run([sys.executable, "-c", _DAEMON, "DAEMON_PID"], check=True)
    subprocess.run([sys.executable, "-c", _DAEMON, "BARE_DAEMON_PID"], env={}, check=True)

run = None
if args.mlflow or args.mlflow_quiet:
    import mlflow

    mlflow.set_experiment("vtm-tests")
    run = mlflow.start_run()  # deliberately not a context manager: a crash leaves it open
    print("VTM_RUN_META::" + json.dumps({"mlflow_run_id": run.info.run_id}), flush=True)

print(f"starting {args.tag} pid={os.getpid()}", flush=True)
if args.show_env:
    print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
for epoch in range(1, args.epochs + 1):
    time.sleep(args.sleep)
    if epoch == args.fail_at:
        raise RuntimeError(f"boom at epoch {epoch}")
    metric = round(0.5 + epoch / (2 * args.epochs), 6)
    if args.mlflow:
        mlflow.log_metric("val_accuracy", metric, step=epoch)
    if args.spam:
        line = "spam " * 19 + "\n"
        sys.stdout.write(line * int(args.spam * 1e6 / len(line)))
        sys.stdout.flush()
    if args.noise:
        print('VTM_PROGRESS::{"epoch": ', flush=True)  # broken JSON
        print("VTM_PROGRESS::[1, 2]", flush=True)  # not an object
        sys.stdout.write('VTM_PROGRESS::{"epoch": 99}VTM_PROGRESS::{"epoch": 98}\n')  # interleaved
        sys.stdout.write("\x00\xff binary-ish \r carriage\n")
        print("VTM_RUN_META::not json", flush=True)
    print("VTM_PROGRESS::" + json.dumps(
        {"epoch": epoch, "total_epochs": args.epochs, "val_accuracy": metric, "tag": args.tag}),
        flush=True)
    print(f"{args.tag} epoch {epoch} done", flush=True)
print(f"finished {args.tag}", flush=True)
