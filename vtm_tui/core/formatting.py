"""The one place numbers, sizes, durations, ages and URLs become text, for every face (pure
functions, no I/O).

Sizes are in decimal (SI) units everywhere: 1 KB = 1000 bytes, 1 MB = 1,000,000 bytes, the units
of vtm's messages (`published m/dev/3 (sha256 ..., 48.2 MB, 1.1 s)`) and progress lines.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def display_path(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """A path as the user would type it from `base` (vtm's working directory): relative when
    inside it, `~/...` when under the home folder, else absolute. Keeps the header short and
    screenshots free of machine-specific folders."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(os.path.abspath(base)))
    except ValueError:
        pass
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***, for messages, logs and the screen
    (which is often shared). `postgresql://u:pw@db:5432/x` -> `postgresql://u:***@db:5432/x`;
    text that is not a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


MB = 1_000_000  # bytes in a (decimal) megabyte


def format_size(n: int | float | None) -> str:
    """A byte count in the largest unit that keeps it under 1000: '512 B', '1.2 KB', '48.2 MB',
    '3.1 GB' (and GB above); None -> '-'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def format_used(used: int | float | None, total: int | float | None) -> str:
    """Bytes used of a total, in the total's unit: '19.0/81.6 GB', '512.0/1000.0 MB'; '-' for an
    unknown total, '?/81.6 GB' for an unknown use."""
    if total is None:
        return "-"
    unit, size = next(((unit, size) for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3))
                       if total >= size), ("B", 1))
    shown = "?" if used is None else f"{used:.0f}" if unit == "B" else f"{used / size:.1f}"
    return f"{shown}/{total / size:.1f} {unit}" if unit != "B" else f"{shown}/{total:.0f} B"


def format_megabytes(done: int | float, total: int | float | None = None) -> str:
    """Bytes of a transfer in MB with one decimal: '90.0 MB', or '90.0/200.0 MB' with a total."""
    return f"{done / MB:.1f}/{total / MB:.1f} MB" if total else f"{done / MB:.1f} MB"


def format_rate(bytes_per_second: float, digits: int = 1) -> str:
    """A transfer rate in MB/s: '310.4 MB/s' (digits=0: '310 MB/s')."""
    return f"{bytes_per_second / MB:.{digits}f} MB/s"


def format_age(seconds: float | None, *, compact: bool = False) -> str:
    """How long ago, from the seconds elapsed: 'just now' under a minute, else the largest whole
    unit: '3 d ago', '2 h ago', '5 min ago'; compact (narrow table columns): '3d ago', '2h ago',
    '5m ago'. None -> '-'; a negative age (clock skew) is 'just now'."""
    if seconds is None:
        return "-"
    units = (("d", 86400), ("h", 3600), ("m", 60)) if compact else (("d", 86400), ("h", 3600), ("min", 60))
    for unit, size in units:
        if seconds >= size:
            return f"{int(seconds // size)}{'' if compact else ' '}{unit} ago"
    return "just now"


def format_duration(seconds: float | None) -> str:
    """Elapsed time as M:SS, or H:MM:SS from an hour on; None or negative -> '-'."""
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_number(value: object) -> str:
    """A metric for a table cell: 4 significant digits ('0.8123', '1.235e+04'); None -> '-';
    other non-numbers (and NaN, inf) as str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def format_epoch(progress: dict) -> str:
    """`epoch/total_epochs` of a run's progress ('3/10', '3' without a total, '-' before any)."""
    epoch, total = progress.get("epoch"), progress.get("total_epochs")
    if epoch is None:
        return "-"
    return f"{format_number(epoch)}/{format_number(total)}" if total is not None else format_number(epoch)
