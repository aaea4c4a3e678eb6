"""A throwaway single-node Slurm cluster for the tests: munged (as user munge, private socket),
slurmctld and slurmd on free ports, a minimal slurm.conf with a fake GPU gres. Every daemon is
started here and stopped by its PID; nothing already running on the machine is touched."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s\n{detail}")


class SlurmCluster:
    def __init__(self) -> None:
        # Not under pytest's tmp dirs: those are root-only, and munged runs as user munge.
        self.root = Path(tempfile.mkdtemp(prefix="vtm-slurm-"))
        self.root.chmod(0o755)
        self.conf = self.root / "slurm.conf"
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        munge_dir = self.root / "munge"
        munge_dir.mkdir(mode=0o700)
        shutil.copy("/etc/munge/munge.key", munge_dir / "munge.key")
        user = pwd.getpwnam("munge")
        for path in (munge_dir, munge_dir / "munge.key"):
            os.chown(path, user.pw_uid, user.pw_gid)
        (munge_dir / "munge.key").chmod(0o600)
        munge_dir.chmod(0o755)  # clients must reach the socket
        self.munge_socket = munge_dir / "munge.socket"
        for name in ("state", "spool"):
            (self.root / name).mkdir()
        cpus = os.cpu_count() or 2
        self.conf.write_text(f"""\
ClusterName=vtmtest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CryptoType=crypto/munge
StateSaveLocation={self.root / 'state'}
SlurmdSpoolDir={self.root / 'spool'}
SlurmctldPidFile={self.root / 'slurmctld.pid'}
SlurmdPidFile={self.root / 'slurmd.pid'}
SlurmctldLogFile={self.root / 'slurmctld.log'}
SlurmdLogFile={self.root / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=600
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        (self.root / "gres.conf").write_text("Name=gpu File=/dev/null\n")

    def _daemon(self, name: str, argv: list[str], pid_file: Path | None = None) -> None:
        proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=open(self.root / f"{name}.out", "wb"), stderr=subprocess.STDOUT)
        self.pids[name] = proc.pid
        self._procs = getattr(self, "_procs", []) + [proc]

    def start(self) -> "SlurmCluster":
        self._write_config()
        munge_dir = self.munge_socket.parent
        self._daemon("munged", ["runuser", "-u", "munge", "--", "munged", "--foreground",
                                f"--socket={self.munge_socket}", f"--key-file={munge_dir / 'munge.key'}",
                                f"--pid-file={munge_dir / 'munged.pid'}",
                                f"--log-file={munge_dir / 'munged.log'}",
                                f"--seed-file={munge_dir / 'munged.seed'}"])
        _wait(self.munge_socket.exists, 20, "munged", munge_dir / "munged.log")
        self._daemon("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._daemon("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        _wait(self._node_ready, 60, "the Slurm node", self.root / "slurmd.log")
        return self

    def _node_ready(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")

    def stop(self) -> None:
        for proc in reversed(getattr(self, "_procs", [])):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
