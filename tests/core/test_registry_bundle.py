"""bundle.tar.gz and the layout rules, without a server: building, strict streaming reads, names."""
from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
from fixtures.ftp import crafted_tar_gz, write_checkpoint

from vtm_tui.core.registry import IntegrityError, InvalidName, UnsafeBundle, layout
from vtm_tui.core.registry.bundle import BundleWriter
from vtm_tui.core.registry.bundle_reader import BundleLimits, BundleScanner, scan_file
from vtm_tui.core.registry.layout import FileEntry, Manifest
from vtm_tui.settings import Settings


def build(files, metadata=None, level=0) -> tuple[bytes, BundleWriter]:
    writer = BundleWriter(files, metadata or {"task_type": "classification"}, level=level)
    data = bytearray()
    while chunk := writer.read():
        data += chunk
    return bytes(data), writer


def test_bundle_is_deterministic_standard_and_described(tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    data, writer = build([("checkpoint.pth", ckpt)])
    again, _ = build([("checkpoint.pth", ckpt)])
    assert data == again and writer.sha256 == hashlib.sha256(data).hexdigest() and writer.size == len(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # any tar reader can open it
        members = tar.getmembers()
        assert [m.name for m in members] == ["checkpoint.pth", "bundle.json"]
        assert all(m.isreg() and m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in members)
        assert tar.extractfile("checkpoint.pth").read() == ckpt.read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    assert [f.name for f in writer.files] == ["checkpoint.pth", "bundle.json"]
    assert writer.files[0].sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_store_level_is_the_default_and_configurable(tmp_path):
    path = tmp_path / "zeros.pth"
    path.write_bytes(b"\0" * 200_000)
    stored, _ = build([("checkpoint.pth", path)])
    squeezed, _ = build([("checkpoint.pth", path)], level=6)
    assert len(stored) > 200_000 > 10 * len(squeezed)
    assert gzip_level({}) == 0 and gzip_level({"VTM_REGISTRY_GZIP_LEVEL": "6"}) == 6
    with pytest.raises(Exception, match="0-9"):
        gzip_level({"VTM_REGISTRY_GZIP_LEVEL": "fast"})


def gzip_level(env: dict) -> int:
    return Settings.from_environ(env).registry_gzip_level


def test_scanner_extracts_and_checks_against_the_manifest(tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    data, writer = build([("checkpoint.pth", ckpt)])
    (tmp_path / "b.tar.gz").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    scanner = scan_file(tmp_path / "b.tar.gz", expected=writer.files, dest=out)
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "checkpoint.pth"]
    assert (out / "checkpoint.pth").read_bytes() == ckpt.read_bytes()
    assert scanner.metadata["task_type"] == "classification"
    # fed in tiny pieces: same result
    tiny = BundleScanner(expected=writer.files)
    for i in range(0, len(data), 7):
        tiny.feed(data[i:i + 7])
    assert [m.name for m in tiny.close()] == ["checkpoint.pth", "bundle.json"]
    # a manifest that lies about a member's digest or size, or lists another member
    for files in ([FileEntry(f.name, f.size, "0" * 64) for f in writer.files],
                  [FileEntry(f.name, f.size + 1, f.sha256) for f in writer.files],
                  writer.files[:1],
                  [*writer.files, FileEntry("model-standard.pt", 1, "0" * 64)]):
        with pytest.raises(IntegrityError):
            scan_file(tmp_path / "b.tar.gz", expected=files)
    # extraction never overwrites or follows what is already there
    with pytest.raises(FileExistsError):
        scan_file(tmp_path / "b.tar.gz", dest=out)


@pytest.mark.parametrize("case, members, match", [
    ("parent", [("../x", b"1")], "leaves the bundle"),
    ("absolute", [("/etc/x", b"1")], "absolute"),
    ("symlink", [("checkpoint.pth", b"", tarfile.SYMTYPE, "/etc/passwd")], "symbolic link"),
    ("hardlink", [("checkpoint.pth", b"", tarfile.LNKTYPE, "bundle.json")], "hard link"),
    ("chardev", [("checkpoint.pth", b"", tarfile.CHRTYPE)], "device"),
    ("blockdev", [("checkpoint.pth", b"", tarfile.BLKTYPE)], "device"),
    ("fifo", [("checkpoint.pth", b"", tarfile.FIFOTYPE)], "FIFO"),
    ("dir", [("checkpoint.pth", b"", tarfile.DIRTYPE)], "directory"),
    ("name", [("checkpoint.pth.sh", b"1")], "unexpected member"),
    ("subdir", [("x/checkpoint.pth", b"1")], "unexpected member"),
    ("dotslash", [("./checkpoint.pth", b"1")], "unexpected member"),
    ("control", [("checkpoint\n.pth", b"1")], "control character"),
    ("duplicate", [("checkpoint.pth", b"1"), ("checkpoint.pth", b"2")], "twice"),
    ("two checkpoints", [("checkpoint.pth", b"1"), ("checkpoint.pt", b"2"), ("bundle.json", b"{}")], "one checkpoint"),
    ("empty", [], "one checkpoint"),
])
def test_scanner_refuses_hostile_archives_before_writing(case, members, match, tmp_path):
    opened = []
    scanner = BundleScanner(open_member=lambda name, size: opened.append(name) or io.BytesIO())
    with pytest.raises(UnsafeBundle, match=match):
        scanner.feed(crafted_tar_gz(members))
        scanner.close()
    assert all(name in ("checkpoint.pth", "checkpoint.pt", "bundle.json") for name in opened)
    assert "../x" not in opened and "/etc/x" not in opened


def test_scanner_refuses_broken_streams(tmp_path):
    good = crafted_tar_gz([("checkpoint.pth", b"1" * 1000), ("bundle.json", b"{}")])
    cases = {
        "truncated": good[: len(good) // 2],
        "trailing data": good + b"more",
        "two gzip streams": good + good,
        "corrupt": good[:20] + bytes(b ^ 0x55 for b in good[20:40]) + good[40:],
        "garbage after the end": gzip.compress(gzip.decompress(good) + b"\1" * 512, mtime=0),
    }
    for case, data in cases.items():
        scanner = BundleScanner(where=case)
        with pytest.raises(UnsafeBundle, match=f"^{case}: refused"):
            scanner.feed(data)
            scanner.close()


def test_size_caps_and_member_count():
    data = crafted_tar_gz([("checkpoint.pth", b"1" * 5000), ("model-standard.pt", b"2" * 5000), ("bundle.json", b"{}")])
    for limits, match in ((BundleLimits(max_member_bytes=4999), "cap"), (BundleLimits(max_total_bytes=9000), "cap"),
                          (BundleLimits(max_members=2), "more than 2")):
        scanner = BundleScanner(limits=limits)
        with pytest.raises(UnsafeBundle, match=match):
            scanner.feed(data)
    scanner = BundleScanner(limits=BundleLimits(max_member_bytes=5000, max_total_bytes=10002, max_members=3))
    scanner.feed(data)
    assert len(scanner.close()) == 3


def test_name_rules():
    for good in ("clf", "classification-best-model", "m_1.2", "_x", "A" * 128, "1"):
        assert layout.check_model(good) == good
    for bad in ("a/b", "..", "a..b", ".x", "-x", "", "a" * 129, "x\n", "x\r", "x\0", "a b", "é", None, 3):
        with pytest.raises(InvalidName):
            layout.check_model(bad)
    assert layout.check_stage("dev") == "dev" and layout.check_stage("release") == "release"
    for bad in ("prod", "DEV", "dev\n", "", None):
        with pytest.raises(InvalidName):
            layout.check_stage(bad)
    assert layout.check_version("12") == 12 and layout.check_version(3) == 3
    assert layout.check_version_ref("latest") == "latest" and layout.check_version_ref(None) == "latest"
    for bad in ("0", "01", "-1", "1.0", "x", "1\n", 0, -1, True, "9" * 19):
        with pytest.raises(InvalidName):
            layout.check_version(bad)
    assert layout.parse_latest(b"3\n") == 3 and layout.parse_latest(b" 12 ") == 12
    for garbage in (None, b"", b"x", b"0", b"-2", b"\xff", b"1" * 70, b"1\n2"):
        assert layout.parse_latest(garbage) is None


def test_manifest_round_trip_and_malformed():
    m = Manifest(model="m", stage="dev", version=2, bundle_sha256="a" * 64, bundle_size=10,
                 files=[FileEntry("checkpoint.pth", 3, "b" * 64)], created="2024-01-01T00:00:00Z",
                 source={"type": "file"}, metric={"name": "acc", "value": 0.5}, task_type="classification",
                 num_classes=5)
    assert Manifest.loads(m.dumps()) == m
    from vtm_tui.core.registry import ManifestError

    for bad in (b"", b"{", b"[]", m.dumps().replace(b'"dev"', b'"prod"'),
                m.dumps().replace(b"a" * 64, b"z" * 64),
                m.dumps().replace(b'"format_version": 1', b'"format_version": 9'),
                m.dumps().replace(b'"model": "m"', b'"model": "../m"')):
        with pytest.raises(ManifestError):
            Manifest.loads(bad)
