"""Which processes belong to something vtm started: a snapshot of /proc, and the marks vtm can
find there even after a process left its session or process group.

vtm hands a marker variable to what it starts (a run gets `VTM_RUN_DIR`, the embedded tracking
server `VTM_MLFLOW_SERVER_ID`); children inherit it, and /proc/<pid>/environ shows the
environment a process started with, whatever it did to its session or group later (setsid,
double fork). Descendants are found by parent PID; a supervisor that is a child subreaper
(prctl PR_SET_CHILD_SUBREAPER) keeps even daemonized descendants under it. Linux only: where
/proc is missing, every lookup finds nothing and callers fall back to process groups.
Sources: proc(5) for the fields of /proc/<pid>/stat (ppid, pgrp, session, starttime) and environ.
"""
from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass(frozen=True)
class ProcessInfo:
    """One live process: pid, parent pid, process group, session, state letter (R, S, D, Z, ...)
    and start time in clock ticks since boot (proc(5) field 22: tells a reused PID apart)."""
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start_ticks: int

    @property
    def zombie(self) -> bool:
        """True for a process that has exited and waits for its parent (Z) or is dead (X)."""
        return self.state in ("Z", "X")


def read_stat(pid: int) -> ProcessInfo | None:
    """The /proc/<pid>/stat fields of a process, or None when it is gone (or not Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    try:
        rest = text.rsplit(")", 1)[1].split()
        return ProcessInfo(pid, int(rest[1]), int(rest[2]), int(rest[3]), rest[0], int(rest[19]))
    except (IndexError, ValueError):
        return None


def snapshot() -> dict[int, ProcessInfo]:
    """Every process visible in /proc now, by PID ({} where /proc is missing)."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            info = read_stat(int(name))
            if info is not None:
                table[info.pid] = info
    return table


def has_variable(pid: int, name: str, value: str) -> bool:
    """True when process `pid` started with NAME=VALUE in its environment (/proc/<pid>/environ);
    False when it did not, is gone, or is not ours to read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    entry = f"{name}={value}".encode()
    return any(item == entry for item in raw.split(b"\0"))


def marked(name: str, value: str, table: dict[int, ProcessInfo] | None = None) -> set[int]:
    """PIDs of the live (non-zombie) processes whose environment holds NAME=VALUE."""
    table = snapshot() if table is None else table
    return {pid for pid, info in table.items() if not info.zombie and has_variable(pid, name, value)}


def descendants(root: int, table: dict[int, ProcessInfo] | None = None) -> set[int]:
    """PIDs of every live process below `root` in the parent tree (root excluded)."""
    table = snapshot() if table is None else table
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found, todo = set(), [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return {pid for pid in found if not table[pid].zombie}


def group_members(pgid: int, table: dict[int, ProcessInfo] | None = None) -> set[int]:
    """PIDs of the live processes of process group `pgid`."""
    table = snapshot() if table is None else table
    return {pid for pid, info in table.items() if info.pgid == pgid and not info.zombie}


def alive(pid: int) -> bool:
    """True while `pid` is a live, non-zombie process."""
    info = read_stat(pid)
    return info is not None and not info.zombie


def describe(pid: int) -> str:
    """`PID (command line)`, shortened to 60 characters, for messages."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return str(pid)
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"{pid} ({command[:57] + '...' if len(command) > 60 else command})" if command else str(pid)


def send(pids: Iterable[int], sig: int) -> None:
    """Send `sig` to each PID; ones already gone or not ours to signal are skipped."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM the processes, SIGKILL the ones left after `grace` seconds; returns the PIDs still
    alive after that (a process in uninterruptible sleep, or one we may not signal)."""
    pids = {pid for pid in pids if alive(pid)}
    if not pids:
        return []
    send(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    left = {pid for pid in pids if alive(pid)}
    send(left, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(alive(pid) for pid in left):
        time.sleep(0.05)
    return sorted(pid for pid in left if alive(pid))


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux prctl): orphans below it
    are re-parented to it instead of init, so none escapes descendants(). False where unsupported."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(keep: int) -> None:
    """Collect exited children other than `keep` (orphans a subreaper inherited), so they do not
    stay zombies; `keep` is left for its own Popen to wait for."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == keep:
            return
        try:
            os.waitpid(info.si_pid, os.WNOHANG)
        except ChildProcessError:
            return
