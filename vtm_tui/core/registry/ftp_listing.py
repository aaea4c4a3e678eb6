"""Folder listings of FTP servers, line by line: MLSD facts (RFC 3659 §7.2, aioftp's parser) or
LIST in the formats common clients read, through ftputil's parsers (the Unix `ls -l` style of
vsftpd, ProFTPD and pyftpdlib; the MS-DOS style of IIS, `11-30-26  10:29AM  <DIR>  cls`).

A line that no parser reads, or whose name is not UTF-8, is skipped and reported; the rest of
the listing stands.
"""
from __future__ import annotations

import functools
import stat as stat_mode
import warnings
from dataclasses import dataclass, field
from typing import Callable

from vtm_tui.core.registry.base import Entry


@dataclass
class Listing:
    """A parsed listing: entries in server order (without `.` and `..`), and `skipped`, one
    line per entry that could not be read, saying what it was and why."""
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def shown(text: str) -> str:
    """A name or line for messages: bytes that are not UTF-8 as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def parse_listing(command: str, lines: list[bytes], parse_mlsx: Callable[[str], tuple]) -> Listing:
    """Parse raw listing lines (CR LF removed). command: "MLSD" or "LIST"; parse_mlsx: aioftp's
    Client.parse_mlsx_line (str -> (PurePosixPath, facts)). Never raises for a bad line."""
    listing = Listing()
    for raw in lines:
        text = raw.decode("utf-8", "surrogateescape")
        try:
            entry = _mlsd_entry(text, parse_mlsx) if command == "MLSD" else _list_entry(text)
        except Exception:  # the parsers' own errors (ParserError, ValueError, KeyError, ...)
            kind = "an MLSD line" if command == "MLSD" else "a LIST line in Unix or MS-DOS style"
            listing.skipped.append(f"{shown(text)!r} (not {kind})")
            continue
        if entry is None or entry.name in (".", ".."):
            continue
        if shown(entry.name) != entry.name:
            listing.skipped.append(f"{shown(entry.name)!r} (the name is not UTF-8)")
            continue
        listing.entries.append(entry)
    return listing


def _mlsd_entry(text: str, parse_mlsx) -> Entry | None:
    path, facts = parse_mlsx(text)
    kind = facts.get("type", "").lower()
    if not path.name or kind in ("cdir", "pdir"):
        return None
    size = facts.get("size", "")
    return Entry(path.name, kind == "dir", int(size) if size.isdigit() else None)


@functools.cache
def _ftputil_parsers():
    with warnings.catch_warnings():
        # the package warns on import that FTPHost's path encoding changes in 6.0: not used here
        warnings.filterwarnings("ignore", message="In ftputil 6", category=DeprecationWarning)
        from ftputil.error import ParserError
        from ftputil.stat import MSParser, UnixParser
    return ParserError, UnixParser, MSParser


def _list_entry(text: str) -> Entry | None:
    ParserError, UnixParser, MSParser = _ftputil_parsers()
    unix = UnixParser()
    if unix.ignores_line(text):  # "total 12", blank lines
        return None
    try:
        found = unix.parse_line(text)
    except (ParserError, ValueError):
        found = MSParser().parse_line(text)
    if stat_mode.S_ISDIR(found.st_mode):
        return Entry(found._st_name, True, None)
    return Entry(found._st_name, False, found.st_size if isinstance(found.st_size, int) else None)
