"""bundle.tar.gz: its format, and building it (deterministic, streamed).

Members, in this order; nothing else is ever accepted:

    checkpoint.pth | .pt | .ckpt | .pt2   optional: the published model file, byte for byte (its
                                     original name is in the manifest's source)
    model-standard.pt2               optional: the Torch Standard v2 program (a torch.export
                                     ExportedProgram with its spec; see core/standard/)
    model-standard.pt                a Torch Standard v1 file, in bundles vtm wrote before v2
    bundle.json                      what the bundle holds: file names, sizes, sha256, and the
                                     model metadata (task type, architecture, classes, the
                                     program's spec and conversion record, ...)

Regular files only, flat names, USTAR headers with mtime 0 and owner 0, gzip with mtime 0: the
same inputs always give the same bytes, so the bundle's sha256 identifies its content and a
re-publish of the same checkpoint is recognised.

Compression: level 0 (gzip "stored" blocks) by default. Checkpoints are float tensors, which
deflate barely shrinks (about 7% for random float32) while level 1 runs at ~25 MB/s on one core,
ten to twenty times slower than loopback FTP; stored gzip runs at memory speed (StoredGzip) and
keeps the .tar.gz format that the layout promises, readable by any gzip/tar.
VTM_REGISTRY_GZIP_LEVEL (0-9) changes it for slow links with compressible checkpoints.

Reading it (strictly, as it streams in) is bundle_reader.py.
"""
from __future__ import annotations

import hashlib
import json
import struct
import tarfile
import zlib
from pathlib import Path

from vtm_tui.core.registry.base import CHUNK, IntegrityError
from vtm_tui.core.registry.layout import FileEntry
from vtm_tui.core.registry.pipe import Worker
from vtm_tui.settings import DEFAULT_GZIP_LEVEL

BUNDLE_FORMAT = "vtm-bundle"
BUNDLE_FORMAT_VERSION = 1
CHECKPOINT_NAMES = ("checkpoint.pth", "checkpoint.pt", "checkpoint.ckpt", "checkpoint.pt2")
STANDARD_NAME = "model-standard.pt2"
STANDARD_V1_NAME = "model-standard.pt"
STANDARD_NAMES = (STANDARD_NAME, STANDARD_V1_NAME)
METADATA_NAME = "bundle.json"
ALLOWED_MEMBERS = (*CHECKPOINT_NAMES, *STANDARD_NAMES, METADATA_NAME)
BLOCK = 512
MAX_METADATA_BYTES = 1 << 20


class StoredGzip:
    """gzip with deflate "stored" blocks (level 0), framed here: zlib's own level 0 copies every
    byte through its window and runs at ~500 MB/s; this runs at memory speed (crc32 plus one
    copy). Blocks are always 65535 bytes (the last one shorter), so the output depends only on
    the input bytes, never on how they were chunked. Same interface as zlib's compress objects."""

    BLOCK = 65535
    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # deflate, no name, mtime 0, unix

    def __init__(self, *, threaded: bool = False):
        self._pending = bytearray()
        self._crc = 0
        self._size = 0
        self._started = False
        self._crc_worker = Worker(self._update_crc, name="vtm-bundle-crc32") if threaded else None

    def _update_crc(self, data) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def abandon(self) -> None:
        """Stop the crc32 thread of an unfinished stream."""
        if self._crc_worker is not None:
            self._crc_worker.abandon()

    @staticmethod
    def _block(data, final: bool = False) -> list:
        n = len(data)
        return [struct.pack("<BHH", 1 if final else 0, n, n ^ 0xFFFF), data]

    def compress(self, data) -> bytes:
        """Bytes of the gzip stream for `data` (the header first, then whole 65535-byte stored
        blocks; a remainder waits for more data or flush())."""
        view = memoryview(data).cast("B")
        if self._crc_worker is not None:
            self._crc_worker.put(view)  # data is immutable bytes: safe to read from another thread
        else:
            self._update_crc(view)
        self._size += len(view)
        parts = [] if self._started else [self.HEADER]
        self._started = True
        if self._pending:
            take = self.BLOCK - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < self.BLOCK:
                return b"".join(parts)
            parts += self._block(bytes(self._pending))
            self._pending = bytearray()
        full = len(view) - len(view) % self.BLOCK
        for start in range(0, full, self.BLOCK):
            parts += self._block(view[start:start + self.BLOCK])
        self._pending += view[full:]
        return b"".join(parts)

    def flush(self) -> bytes:
        """The end of the gzip stream: the last (final) stored block, then the CRC32 and the size
        mod 2**32 (RFC 1952 trailer)."""
        if self._crc_worker is not None:
            self._crc_worker.close()
        parts = [] if self._started else [self.HEADER]
        self._started = True
        parts += self._block(bytes(self._pending), final=True)
        self._pending = bytearray()
        parts.append(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        return b"".join(parts)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def _pad(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


class BundleWriter:
    """A bundle produced on demand: `read(n)` is a backend Source.

    files: (member name, local path) in bundle order, checkpoint first; `metadata` is the model
    part of bundle.json (None values left out). After the last read, `sha256`, `size` and `files` describe the result.
    """

    def __init__(self, files: list[tuple[str, Path]], metadata: dict, *, level: int = DEFAULT_GZIP_LEVEL):
        for name, _ in files:
            if name not in ALLOWED_MEMBERS or name == METADATA_NAME:
                raise ValueError(f"not a bundle member name: {name!r}")
        self._files = [(name, Path(path)) for name, path in files]
        self._metadata = dict(metadata)
        # level 0: stored blocks, framed by StoredGzip; else zlib (wbits 31: gzip wrapper, mtime 0)
        self._compress = StoredGzip(threaded=True) if level == 0 else zlib.compressobj(level, zlib.DEFLATED, 31)
        self._outer = hashlib.sha256()
        # sha256 of the bundle, of each file, and gzip's crc32 run on threads of their own beside
        # the file reads and the transfer (each releases the GIL)
        self._hasher = Worker(self._outer.update, name="vtm-bundle-sha256")
        self._inner: Worker | None = None
        self._pieces = self._generate()
        self._done = False
        self.size = 0
        self.files: list[FileEntry] = []
        self.sha256: str | None = None
        self.total_input = sum(path.stat().st_size for _, path in self._files)
        self.consumed = 0  # checkpoint bytes bundled so far, for progress

    def _generate(self):
        for name, path in self._files:
            expected = path.stat().st_size
            yield _header(name, expected)
            digest, size = hashlib.sha256(), 0
            hasher = self._inner = Worker(digest.update, name="vtm-file-sha256")
            with open(path, "rb", buffering=0) as handle:
                while True:
                    chunk = handle.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > expected:
                        break
                    hasher.put(chunk)
                    self.consumed += len(chunk)
                    yield chunk
            hasher.close()
            self._inner = None
            if size != expected:
                raise IntegrityError(f"{path} changed while it was being bundled")
            yield _pad(size)
            self.files.append(FileEntry(name, size, digest.hexdigest()))
        meta = metadata_bytes(self.files, self._metadata)
        yield _header(METADATA_NAME, len(meta))
        yield meta + _pad(len(meta))
        self.files.append(FileEntry(METADATA_NAME, len(meta), hashlib.sha256(meta).hexdigest()))
        yield b"\0" * (2 * BLOCK)

    def read(self, n: int = CHUNK) -> bytes:
        """The next piece of the bundle (about CHUNK bytes; b"" only at the end)."""
        while not self._done:
            try:
                piece = next(self._pieces, None)
            except BaseException:
                self.close()
                raise
            if piece is None:
                out, self._done = self._compress.flush(), True
            else:
                out = self._compress.compress(piece)
            if out:
                self._hasher.put(out)
                self.size += len(out)
            if self._done:
                self._hasher.close()
                self.sha256 = self._outer.hexdigest()
            if out:
                return out
        return b""

    def status(self) -> tuple[int, int]:
        """(checkpoint bytes bundled so far, their total), for progress."""
        return self.consumed, self.total_input

    def drain(self) -> None:
        """Produce everything without sending it (to learn the digest)."""
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        """Release the threads of an unfinished bundle."""
        if not self._done:
            self._done = True
            self._hasher.abandon()
            if self._inner is not None:
                self._inner.abandon()
            if isinstance(self._compress, StoredGzip):
                self._compress.abandon()


def metadata_bytes(files: list[FileEntry], metadata: dict) -> bytes:
    """bundle.json: the model metadata (None values left out), the format name and version,
    and every member's name, size and sha256, as sorted, indented UTF-8 JSON."""
    data = {**{k: v for k, v in metadata.items() if v is not None}, "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files]}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")

