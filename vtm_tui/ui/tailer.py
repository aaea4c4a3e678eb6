"""Follow a growing log file by byte offset, with bounded memory and bounded work per read.

A run can print far faster than anyone can read (10k lines/s is not unusual), so each read
takes at most `max_chunk` bytes: when more has piled up, the middle is skipped and reported,
and the viewer always shows the newest output. Pure Python, no UI: a worker thread calls it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class LogFollower:
    path: str
    start_bytes: int = 64 * 1024  # how much history to show when we start following
    max_chunk: int = 256 * 1024
    offset: int | None = None  # None: not read yet
    _partial: bytes = field(default=b"", repr=False)  # a line still being written
    _mid_line: bool = field(default=False, repr=False)  # offset points inside a line

    def read_new(self) -> tuple[list[str], int]:
        """Complete lines added since the last call, and how many bytes were skipped."""
        skipped = 0
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if self.offset is None or size < self.offset:  # first read, or file truncated
                    self._jump(max(0, size - self.start_bytes))
                if size - self.offset > self.max_chunk:
                    skipped = size - self.max_chunk - self.offset
                    self._jump(size - self.max_chunk)
                handle.seek(self.offset)
                data = handle.read(size - self.offset)
        except FileNotFoundError:
            return [], 0
        self.offset += len(data)
        if self._mid_line:
            cut = data.find(b"\n")
            if cut < 0:
                return [], skipped
            data, self._mid_line = data[cut + 1:], False
        data = self._partial + data
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data[-self.max_chunk:]
            return [], skipped
        self._partial = data[end + 1:]
        lines = data[:end].decode("utf-8", "replace").split("\n")
        # A terminal would show only what follows the last carriage return (progress bars).
        return [line.rstrip("\r").rsplit("\r", 1)[-1] if "\r" in line else line
                for line in lines], skipped

    def _jump(self, offset: int) -> None:
        self.offset, self._partial = offset, b""
        self._mid_line = offset > 0
