"""Reading a bundle.tar.gz strictly, as it streams in (tar: POSIX ustar headers of 512-byte
blocks, two zero blocks at the end; gzip: RFC 1952, inflated with zlib).

Reading never trusts the archive: a streaming parser checks every header before a byte of that
member is written (type, name on the allow-list, no duplicates, size and total caps, count), caps
what gzip may inflate to, refuses trailing data, and hashes every member.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from vtm_tui.core.registry.base import CHUNK, IntegrityError, UnsafeBundle
from vtm_tui.core.registry.bundle import ALLOWED_MEMBERS, BLOCK, CHECKPOINT_NAMES, MAX_METADATA_BYTES, METADATA_NAME
from vtm_tui.core.registry.layout import FileEntry


@dataclass(frozen=True)
class BundleLimits:
    """Caps checked before extracting. Defaults fit large checkpoints; tests pass small ones."""
    max_member_bytes: int = 256 << 30
    max_total_bytes: int = 512 << 30
    max_members: int = len(ALLOWED_MEMBERS)



_TYPE_NAMES = {
    tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a device",
    tarfile.BLKTYPE: "a device", tarfile.FIFOTYPE: "a FIFO", tarfile.DIRTYPE: "a directory",
    tarfile.CONTTYPE: "a contiguous file", tarfile.GNUTYPE_LONGNAME: "a GNU long name",
    tarfile.GNUTYPE_LONGLINK: "a GNU long link", tarfile.GNUTYPE_SPARSE: "a sparse file",
    tarfile.XHDTYPE: "a pax header", tarfile.XGLTYPE: "a pax global header",
}


@dataclass
class Member:
    """A member read from a bundle: name, size in bytes, sha256 hex ("" when not hashed)."""
    name: str
    size: int
    sha256: str = ""


@dataclass
class BundleScanner:
    """Incremental, strict reader of a bundle.tar.gz: `feed(compressed bytes)`, then `close()`.

    open_member(name, size) -> a binary file to write that member into, or None to only hash it;
    called after the member's header passed every check. expected: the manifest's files; when
    given, the members must be exactly those, with those sizes and digests.
    """
    limits: BundleLimits = field(default_factory=BundleLimits)
    open_member: Callable[[str, int], BinaryIO | None] | None = None
    expected: list[FileEntry] | None = None
    hash_members: bool = True
    where: str = "bundle"
    members: list[Member] = field(default_factory=list)

    def __post_init__(self):
        self._inflate = zlib.decompressobj(31)
        self._buf = bytearray()
        self._remaining = 0  # data bytes left in the current member
        self._padding = 0
        self._current: Member | None = None
        self._out: BinaryIO | None = None
        self._digest = None
        self._ended = False  # the two zero blocks were seen
        self._zero_blocks = 0
        self._inflated = 0
        self._total = 0
        self._metadata = bytearray()
        slack = (self.limits.max_members + 3) * BLOCK * 2 + 64 * 1024
        self._max_inflated = self.limits.max_total_bytes + slack
        self._expected = {f.name: f for f in self.expected} if self.expected is not None else None

    def _refuse(self, reason: str) -> UnsafeBundle:
        self._close_out()
        return UnsafeBundle(f"{self.where}: refused: {reason}")

    def feed(self, data: bytes) -> None:
        """Take the next compressed bytes of the bundle; UnsafeBundle (or IntegrityError against
        the manifest) as soon as what they hold is refused."""
        if self._inflate.eof:
            if data:
                raise self._refuse("data after the end of the gzip stream")
            return
        try:
            out = self._inflate.decompress(data, CHUNK)
            self._take(out)
            while self._inflate.unconsumed_tail and not self._inflate.eof:
                self._take(self._inflate.decompress(self._inflate.unconsumed_tail, CHUNK))
        except zlib.error as exc:
            raise self._refuse(f"corrupt gzip data ({exc})") from None
        if self._inflate.eof and (self._inflate.unused_data or self._inflate.unconsumed_tail):
            raise self._refuse("data after the end of the gzip stream")

    def _take(self, out: bytes) -> None:
        if not out:
            return
        self._inflated += len(out)
        if self._inflated > self._max_inflated:
            raise self._refuse(f"inflates to more than {self._max_inflated} bytes")
        view = memoryview(out)
        while view:
            if self._remaining:
                part = view[:self._remaining]
                self._member_data(part)
                self._remaining -= len(part)
                view = view[len(part):]
                if not self._remaining:
                    self._end_member()
                continue
            if self._padding:
                skip = min(self._padding, len(view))
                if any(view[:skip]):
                    raise self._refuse("garbage in member padding")
                self._padding -= skip
                view = view[skip:]
                continue
            need = BLOCK - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) == BLOCK:
                block, self._buf = bytes(self._buf), bytearray()
                self._header(block)

    def _header(self, block: bytes) -> None:
        if self._ended:
            if any(block):
                raise self._refuse("data after the end of the archive")
            return
        if not any(block):
            self._zero_blocks += 1
            if self._zero_blocks >= 2:
                self._ended = True
            return
        if self._zero_blocks:
            raise self._refuse("a member after an end-of-archive block")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError, ValueError) as exc:
            raise self._refuse(f"not a valid tar header ({exc})") from None
        name = info.name
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            kind = _TYPE_NAMES.get(info.type, f"an entry of type {info.type!r}")
            raise self._refuse(f"member {name!r} is {kind}; only regular files are allowed")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise self._refuse(f"member {name!r} has an absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise self._refuse(f"member {name!r} leaves the bundle (`..`)")
        if any(ord(c) < 32 for c in name):
            raise self._refuse(f"member {name!r} has a control character in its name")
        if name not in ALLOWED_MEMBERS:
            raise self._refuse(f"unexpected member {name!r} (allowed: {', '.join(ALLOWED_MEMBERS)})")
        if any(m.name == name for m in self.members):
            raise self._refuse(f"member {name!r} appears twice")
        if len(self.members) >= self.limits.max_members:
            raise self._refuse(f"more than {self.limits.max_members} members")
        if info.size > self.limits.max_member_bytes:
            raise self._refuse(f"member {name!r} is {info.size} bytes, over the cap of "
                               f"{self.limits.max_member_bytes}")
        if self._total + info.size > self.limits.max_total_bytes:
            raise self._refuse(f"members total more than the cap of {self.limits.max_total_bytes} bytes")
        if name == METADATA_NAME and info.size > MAX_METADATA_BYTES:
            raise self._refuse(f"{METADATA_NAME} is too large")
        if self._expected is not None:
            want = self._expected.get(name)
            if want is None:
                raise IntegrityError(f"{self.where}: member {name!r} is not in the manifest")
            if want.size != info.size:
                raise IntegrityError(f"{self.where}: member {name!r} is {info.size} bytes, the "
                                     f"manifest says {want.size}")
        self._total += info.size
        self._current = Member(name, info.size)
        self.members.append(self._current)
        self._digest = hashlib.sha256() if self.hash_members else None
        self._out = self.open_member(name, info.size) if self.open_member else None
        self._remaining = info.size
        self._padding = -info.size % BLOCK
        if not info.size:
            self._end_member()

    def _member_data(self, data) -> None:
        if self._digest is not None:
            self._digest.update(data)
        if self._out is not None:
            self._out.write(data)
        if self._current.name == METADATA_NAME:
            self._metadata += data

    def _end_member(self) -> None:
        member = self._current
        if self._digest is not None:
            member.sha256 = self._digest.hexdigest()
            want = self._expected.get(member.name) if self._expected is not None else None
            if want is not None and want.sha256 != member.sha256:
                raise IntegrityError(f"{self.where}: member {member.name!r} does not match the "
                                     f"manifest's sha256")
        self._close_out()
        self._current = None

    def _close_out(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            out.close()

    def close(self) -> list[Member]:
        """Check that the archive ended properly and holds what it must; returns its members."""
        if not self._inflate.eof:
            raise self._refuse("truncated or corrupt gzip stream")
        if self._remaining or self._buf or self._padding or not self._ended:
            raise self._refuse("truncated tar archive")
        names = [m.name for m in self.members]
        checkpoints = [n for n in names if n in CHECKPOINT_NAMES]
        if len(checkpoints) != 1 or METADATA_NAME not in names:
            raise self._refuse(f"a bundle holds one checkpoint and {METADATA_NAME}; found "
                               f"{', '.join(names) or 'nothing'}")
        if self._expected is not None and set(self._expected) != set(names):
            missing = ", ".join(sorted(set(self._expected) - set(names)))
            raise IntegrityError(f"{self.where}: member(s) {missing} of the manifest are missing")
        return self.members

    @property
    def metadata(self) -> dict:
        """bundle.json's content as read ({} when missing or not a JSON object)."""
        try:
            data = json.loads(bytes(self._metadata).decode("utf-8"))
            return data if isinstance(data, dict) else {}
        except (UnicodeDecodeError, ValueError):
            return {}


def scan_file(path: Path, *, limits: BundleLimits | None = None, expected: list[FileEntry] | None = None,
              dest: Path | None = None, hash_members: bool = True) -> BundleScanner:
    """Check a bundle file; with dest (an empty directory), also extract it there."""
    opener = None
    if dest is not None:
        def opener(name: str, size: int) -> BinaryIO:
            fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            return os.fdopen(fd, "wb", buffering=0)
    scanner = BundleScanner(limits or BundleLimits(), opener, expected, hash_members, where=str(path))
    with open(path, "rb", buffering=0) as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            scanner.feed(chunk)
    scanner.close()
    return scanner
