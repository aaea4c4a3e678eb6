"""Small text formatting helpers shared by the tabs (pure functions, no I/O)."""
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


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def format_epoch(progress: dict) -> str:
    epoch, total = progress.get("epoch"), progress.get("total_epochs")
    if epoch is None:
        return "-"
    return f"{format_number(epoch)}/{format_number(total)}" if total is not None else format_number(epoch)
