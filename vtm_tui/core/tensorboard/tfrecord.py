"""TFRecord files (the container of TensorBoard event files): a streaming reader that reports
damage instead of failing, and a small writer.

A record is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`,
little endian: TensorFlow's TFRecord format (https://www.tensorflow.org/tutorials/load_data/tfrecord;
the mask is the CRC rotated right by 15 bits plus 0xa282ead8). The reader works from any byte
offset with one bounded buffer, so memory stays flat however big the file is. CRC32C comes from
`google_crc32c` (C); the pure-Python fallback is only there so a missing wheel degrades speed,
not correctness.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

HEADER_SIZE = 12
FOOTER_SIZE = 4
CHUNK_SIZE = 4 << 20
MAX_PLAUSIBLE_RECORD = 64 << 20  # TensorBoard events are far smaller; a longer cut-off "record" is noise
_MASK_DELTA = 0xA282EAD8
_u64 = struct.Struct("<Q")
_u32 = struct.Struct("<I")
_header = struct.Struct("<QI")


def _load_crc32c():
    try:
        import google_crc32c

        if google_crc32c.implementation == "c":
            return google_crc32c.value, True
    except ImportError:
        pass
    try:
        import crc32c

        return crc32c.crc32c, True
    except ImportError:
        pass
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c

    return crc32c, False


crc32c, FAST_CRC = _load_crc32c()


def masked_crc(data) -> int:
    """TFRecord's masked CRC32C of `data`: rotated right by 15 bits plus 0xa282ead8, mod 2**32."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class Damage:
    """A stretch of a file that holds no readable record."""
    offset: int          # where the bad record starts
    end: int | None      # where reading resumed; None: the record runs past the end of the file
    message: str

    @property
    def truncated(self) -> bool:
        """True when the bad record runs past the end of the file (still being written?)."""
        return self.end is None


def read_records(path: str | Path, offset: int = 0, chunk_size: int = CHUNK_SIZE
                 ) -> Iterator[tuple[int, int, bytes | None, Damage | None]]:
    """Yield `(start, end, data, None)` for each intact record from `offset` on, and
    `(start, end, None, damage)` for damage. A record cut off by the end of the file (possibly
    one still being written) ends the iteration with `damage.truncated` and `end` None."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        yield from _read(handle, offset, chunk_size)


def _read(handle: BinaryIO, offset: int, chunk_size: int):
    buf = handle.read(chunk_size)
    pos = 0             # index into buf
    base = offset       # file offset of buf[0]
    eof = len(buf) < chunk_size
    unpack_header = _header.unpack_from
    unpack_u32 = _u32.unpack_from
    crc = crc32c
    mask, delta = 0xFFFFFFFF, _MASK_DELTA
    length_crcs: dict[int, int] = {}  # records of one length share a header: check it once
    while True:
        size = len(buf)
        if size - pos < HEADER_SIZE:
            if not eof:
                buf, pos, base, eof = _refill(handle, buf, pos, base, chunk_size, HEADER_SIZE)
                continue
            if size - pos:
                yield base + pos, None, None, Damage(
                    base + pos, None, f"truncated record header ({size - pos} of {HEADER_SIZE} bytes)")
            return
        length, length_crc = unpack_header(buf, pos)
        if length_crcs.get(length) != length_crc:
            c = crc(buf[pos:pos + 8])
            if (((c >> 15) | (c << 17)) + delta) & mask != length_crc:
                start = base + pos
                found = _resync(handle, start + 1)
                if found is None:
                    yield start, None, None, Damage(start, None, "bad length CRC; no intact record after it")
                    return
                yield start, found, None, Damage(
                    start, found, f"bad length CRC; skipped {found - start} bytes to the next intact record")
                handle.seek(found)
                buf, pos, base = handle.read(chunk_size), 0, found
                eof = len(buf) < chunk_size
                continue
            if len(length_crcs) > 4096:
                length_crcs.clear()
            length_crcs[length] = length_crc
        end = pos + HEADER_SIZE + length + FOOTER_SIZE
        if end > size:
            # read on only when the file holds the whole record (never allocate a bogus length)
            if not eof and os.fstat(handle.fileno()).st_size >= base + end:
                buf, pos, base, eof = _refill(handle, buf, pos, base, chunk_size, end - pos)
                continue
            yield base + pos, None, None, Damage(
                base + pos, None, f"truncated record ({size - pos} of {end - pos} bytes)")
            return
        data = buf[pos + HEADER_SIZE:end - FOOTER_SIZE]
        c = crc(data)
        if (((c >> 15) | (c << 17)) + delta) & mask != unpack_u32(buf, end - FOOTER_SIZE)[0]:
            yield base + pos, base + end, None, Damage(base + pos, base + end, "bad data CRC; record skipped")
        else:
            yield base + pos, base + end, data, None
        pos = end


def _refill(handle: BinaryIO, buf: bytes, pos: int, base: int, chunk_size: int, need: int):
    rest = buf[pos:]
    wanted = max(chunk_size, need - len(rest))
    more = handle.read(wanted)
    return rest + more, 0, base + pos, len(more) < wanted


def _resync(handle: BinaryIO, start: int) -> int | None:
    """The offset of the next record whose length and data CRCs both check out, or None."""
    window = 1 << 20
    file_size = os.fstat(handle.fileno()).st_size
    pos_file = start
    handle.seek(start)
    buf = handle.read(window + HEADER_SIZE)
    while len(buf) >= HEADER_SIZE:
        limit = len(buf) - HEADER_SIZE + 1
        for i in range(limit):
            if masked_crc(buf[i:i + 8]) != _u32.unpack_from(buf, i + 8)[0]:
                continue
            candidate = pos_file + i
            length = _u64.unpack_from(buf, i)[0]
            if candidate + HEADER_SIZE + length + FOOTER_SIZE > file_size:
                if length <= MAX_PLAUSIBLE_RECORD:
                    return candidate  # intact header, cut-off body: the reader reports truncation
                continue  # a chance match of the header CRC (1 in 2**32 positions)
            handle.seek(candidate + HEADER_SIZE)
            data = handle.read(length + FOOTER_SIZE)
            if masked_crc(data[:length]) == _u32.unpack_from(data, length)[0]:
                return candidate
        pos_file += limit
        handle.seek(pos_file)
        buf = handle.read(window + HEADER_SIZE)
    return None


def first_record(path: str | Path) -> bytes | None:
    """The raw bytes (header, data, footer) of the file's first record, if it is complete."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            return None
        length = _u64.unpack_from(head)[0]
        if length > (1 << 30):
            return None
        rest = handle.read(length + FOOTER_SIZE)
    return head + rest if len(rest) == length + FOOTER_SIZE else None


def encode_record(data: bytes) -> bytes:
    """One TFRecord: length (u64 LE), masked CRC of the length (u32 LE), data, masked CRC of the
    data (u32 LE)."""
    return (_u64.pack(len(data)) + _u32.pack(masked_crc(_u64.pack(len(data))))
            + data + _u32.pack(masked_crc(data)))


class RecordWriter:
    """Appends records to a file (tests, benchmarks and tools that write event files)."""

    def __init__(self, path: str | Path, append: bool = False):
        self._handle = open(path, "ab" if append else "wb")

    def write(self, data: bytes) -> None:
        """Append one record holding `data`."""
        self._handle.write(encode_record(data))

    def flush(self) -> None:
        """Flush what was written to the file."""
        self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
