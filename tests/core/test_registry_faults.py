"""What goes wrong on the way: crashed and stalled servers, bad passwords, read-only accounts,
tampered or hostile bundles, unsafe checkpoints. Each against the backends it applies to."""
from __future__ import annotations

import logging
import os
import tarfile
import threading
import time
import traceback

import pytest
from fixtures.ftp import (
    PASSWORD,
    USER,
    FtpServerProc,
    SilentServer,
    crafted_tar_gz,
    plant_version,
    snapshot,
    write_checkpoint,
)

from vtm_tui.core.registry import (
    AuthError,
    ConnectError,
    IntegrityError,
    PermissionDenied,
    Registry,
    RegistryTimeout,
    TLSError,
    UnsafeBundle,
    open_backend,
)
from vtm_tui.core.registry.bundle import BundleWriter
from vtm_tui.core.registry.ftp_server import FtpUser, ServerThread


def _all_text(exc: BaseException) -> str:
    """Everything an exception could show: message, repr, chained causes, formatted traceback."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Server killed mid-upload / connection lost mid-download
# ---------------------------------------------------------------------------

def test_server_killed_mid_upload_leaves_no_version(tmp_path):
    """pyftpdlib throttled to 1 MB/s, SIGKILLed while a 6 MB bundle is on its way."""
    root = tmp_path / "ftproot"
    server = FtpServerProc(root, rate=1_000_000).start()
    env = {"VTM_FTP_PASSWORD": PASSWORD}
    try:
        small = write_checkpoint(tmp_path / "small.pth", seed=1)
        big = write_checkpoint(tmp_path / "big.pth", seed=2, extra_floats=1_500_000)
        with Registry(open_backend(server.url("reg"), env=env, timeout=10)) as reg:
            assert reg.publish_file(small, "m", "dev", set_latest=True).version == 1
        before = snapshot(root / "reg")

        started, outcome = threading.Event(), {}

        def publish():
            with Registry(open_backend(server.url("reg"), env=env, timeout=10)) as reg:
                try:
                    reg.publish_file(big, "m", "dev", set_latest=True, progress=lambda d, t: started.set())
                    outcome["result"] = "published"
                except Exception as exc:  # noqa: BLE001
                    outcome["result"] = exc

        thread = threading.Thread(target=publish)
        thread.start()
        assert started.wait(10)
        time.sleep(1.0)  # about a megabyte in
        incoming = list((root / "reg" / "m" / "dev").glob(".incoming-*"))
        assert incoming and 0 < incoming[0].stat().st_size < big.stat().st_size
        server.kill()
        killed_at = time.monotonic()
        thread.join(30)
        assert isinstance(outcome["result"], ConnectError), outcome
        assert time.monotonic() - killed_at < 5  # a dead server is noticed at once, not after the timeout
    finally:
        server.stop()

    # what readers see, through a fresh server on the same folder
    server = FtpServerProc(root).start()
    try:
        with Registry(open_backend(server.url("reg"), env=env, timeout=10)) as reg:
            assert reg.versions("m", "dev") == [1]
            assert reg.latest("m", "dev") == 1 and reg.latest_pointer("m", "dev") == 1
            assert [i.version for i in reg.list_versions("m", "dev")] == [1]
            assert reg.pull("m", "dev", "latest", tmp_path / "dl").version == 1
    finally:
        server.stop()
    after = snapshot(root / "reg")
    assert {k: v for k, v in after.items() if ".incoming-" not in k} == before  # only an invisible temp file
    assert not [k for k in after if k.endswith("manifest.json") and not k.startswith("m/dev/1/")]


def _throttled(kind: str, root):
    if kind == "pyftpdlib":
        return FtpServerProc(root, rate=1_000_000).start()
    server = ServerThread(root, [FtpUser(USER, PASSWORD)], write_speed_limit=1_000_000).start()
    server.url = lambda sub="": f"ftp://{USER}@127.0.0.1:{server.port}/{sub}".rstrip("/")
    server.kill = server.stop
    return server


@pytest.mark.parametrize("kind", ["aioftp", "pyftpdlib"])
def test_disconnect_mid_download_leaves_no_partial_file(kind, tmp_path):
    root = tmp_path / "ftproot"
    # publish at full speed straight into the folder, then serve it throttled
    with Registry(open_backend(str(root / "reg"))) as local:
        local.publish_file(write_checkpoint(tmp_path / "big.pth", extra_floats=1_500_000), "m", "dev")
    server = _throttled(kind, root)
    dest = tmp_path / "dl"
    started, outcome = threading.Event(), {}

    def pull():
        with Registry(open_backend(server.url("reg"), env={"VTM_FTP_PASSWORD": PASSWORD}, timeout=10)) as reg:
            try:
                reg.pull("m", "dev", 1, dest, progress=lambda d, t: started.set())
                outcome["result"] = "pulled"
            except Exception as exc:  # noqa: BLE001
                outcome["result"] = exc

    thread = threading.Thread(target=pull)
    try:
        thread.start()
        assert started.wait(10)
        time.sleep(0.5)
        server.kill()
        thread.join(30)
    finally:
        server.stop()
    assert isinstance(outcome["result"], (ConnectError, IntegrityError)), outcome
    assert not dest.exists()  # no version, no temp folder, not even the folders made for it


# ---------------------------------------------------------------------------
# Server down, server stalled
# ---------------------------------------------------------------------------

def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_fails_fast():
    started = time.monotonic()
    with Registry(open_backend(f"ftp://vtm@127.0.0.1:{_closed_port()}/reg", env={"VTM_FTP_PASSWORD": PASSWORD},
                               timeout=5)) as reg:
        with pytest.raises(ConnectError, match="connection refused") as err:
            reg.list_models()
    assert time.monotonic() - started < 3
    assert PASSWORD not in _all_text(err.value)


@pytest.mark.parametrize("when", ["greeting", "transfer"])
def test_stalled_server_times_out_within_the_configured_time(when, tmp_path, monkeypatch):
    if when == "greeting":  # accepts the connection, never says a word
        silent = SilentServer()
        port, stop = silent.port, silent.close
    else:  # answers every command, but a bundle download never delivers a byte
        import aioftp

        retr = aioftp.Server.retr

        async def stalling_retr(self, connection, rest):
            if str(rest).endswith("bundle.tar.gz"):
                connection.response("150", "data transfer started")
                return True
            return await retr(self, connection, rest)

        monkeypatch.setattr(aioftp.Server, "retr", stalling_retr)
        with Registry(open_backend(str(tmp_path / "root" / "reg"))) as local:
            local.publish_file(write_checkpoint(tmp_path / "a.pth"), "m", "dev")
        server = ServerThread(tmp_path / "root", [FtpUser(USER, PASSWORD)]).start()
        port, stop = server.port, server.stop
    try:
        url = f"ftp://vtm@127.0.0.1:{port}/reg"
        with Registry(open_backend(url, env={"VTM_FTP_PASSWORD": PASSWORD, "VTM_FTP_TIMEOUT": "1"})) as reg:
            assert reg.backend.timeout == 1.0
            started = time.monotonic()
            with pytest.raises(RegistryTimeout, match="within 1 s") as err:
                if when == "greeting":
                    reg.list_models()
                else:
                    reg.pull("m", "dev", 1, tmp_path / "dl")
            elapsed = time.monotonic() - started
    finally:
        stop()
    assert 0.9 <= elapsed < 4, elapsed
    assert PASSWORD not in _all_text(err.value)
    assert not any(p.is_file() for p in (tmp_path / "dl").rglob("*"))


# ---------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------

def test_wrong_password_is_an_auth_error_and_never_shown(ftp_target, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pa55word-never-print-me"
    with Registry(open_backend(ftp_target.url, env={"VTM_FTP_PASSWORD": wrong}, timeout=5)) as reg:
        with pytest.raises(AuthError, match="login refused") as err:
            reg.publish_file(write_checkpoint(tmp_path / "a.pth"), "m", "dev")
        assert wrong not in repr(reg) and wrong not in repr(reg.backend) and wrong not in str(vars(reg.backend))
    shown = _all_text(err.value) + caplog.text + "".join(capsys.readouterr())
    assert wrong not in shown and PASSWORD not in shown
    assert "PASS" in caplog.text  # aioftp logged the command... censored
    assert snapshot(ftp_target.root) == {}


def test_password_sources(ftp_target, tmp_path, monkeypatch):
    # no password anywhere and no terminal: a clear error, no prompt, no hang
    monkeypatch.setenv("HOME", str(tmp_path))
    with Registry(open_backend(ftp_target.url, env={}, interactive=False, timeout=5)) as reg:
        with pytest.raises(AuthError, match="VTM_FTP_PASSWORD"):
            reg.list_models()
    # ~/.netrc (here via NETRC)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    with Registry(open_backend(ftp_target.url, env={"NETRC": str(netrc)}, interactive=False, timeout=5)) as reg:
        assert reg.list_models() == []
    # a caller-supplied prompt (the TUI), asked only once and only because the server wants it
    asked = []
    with Registry(open_backend(ftp_target.url, env={}, password=lambda: asked.append(1) or PASSWORD,
                               timeout=5)) as reg:
        reg.list_models()
        reg.backend._drop()  # reconnect: the password is not asked again
        reg.list_models()
    assert asked == [1]
    # the prompt is the last resort: never asked when VTM_FTP_PASSWORD or ~/.netrc has the answer
    with Registry(open_backend(ftp_target.url, env={"VTM_FTP_PASSWORD": PASSWORD},
                               password=lambda: asked.append(2) or "wrong", timeout=5)) as reg:
        reg.list_models()
    with Registry(open_backend(ftp_target.url, env={"NETRC": str(netrc)},
                               password=lambda: asked.append(3) or "wrong", timeout=5)) as reg:
        reg.list_models()
    assert asked == [1]
    with pytest.raises(AuthError, match="no password given"):  # the dialog was dismissed
        with Registry(open_backend(ftp_target.url, env={}, password=lambda: "", timeout=5)) as reg:
            reg.list_models()
    with pytest.raises(Exception, match="no password in the registry URL") as err:
        open_backend(ftp_target.url.replace("vtm@", f"vtm:{PASSWORD}@"))
    assert PASSWORD not in _all_text(err.value)


def test_ftps_verifies_the_certificate(tmp_path):
    """Explicit FTPS (AUTH TLS) against pyftpdlib: trusted with VTM_FTP_CA_FILE, refused without,
    and refused before the password is sent."""
    pytest.importorskip("OpenSSL")  # pyftpdlib's TLS handler needs pyOpenSSL
    from fixtures.ftp import make_tls_files

    ca, cert, key = make_tls_files(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca = make_tls_files(tmp_path / "other")[0]
    server = FtpServerProc(tmp_path / "root", tls=(cert, key)).start()
    try:
        url = server.url("reg")
        assert url.startswith("ftps://")
        ckpt = write_checkpoint(tmp_path / "a.pth")
        env = {"VTM_FTP_PASSWORD": PASSWORD, "VTM_FTP_CA_FILE": str(ca)}
        with Registry(open_backend(url, env=env, timeout=10)) as reg:
            reg.publish_file(ckpt, "m", "dev", set_latest=True)
            assert reg.pull("m", "dev", "latest", tmp_path / "dl").version == 1
        asked = []
        with Registry(open_backend(url, env={}, password=lambda: asked.append(1) or PASSWORD, timeout=10)) as reg:
            with pytest.raises(TLSError, match="not trusted"):
                reg.list_models()
        with Registry(open_backend(url, env={**env, "VTM_FTP_CA_FILE": str(other_ca)}, timeout=10)) as reg:
            with pytest.raises(TLSError, match="not trusted"):  # pinned to another CA: refused
                reg.list_models()
        with pytest.raises(Exception, match="VTM_FTP_CA_FILE"):
            open_backend(url, env={"VTM_FTP_CA_FILE": str(tmp_path / "missing.pem")})
        assert asked == []  # never got as far as the password
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# Read-only account
# ---------------------------------------------------------------------------

def test_read_only_user_gets_a_permission_error_and_nothing_is_written(ftp_target, tmp_path):
    # A read-only account is the server's notion; a local folder's permissions do not bind root.
    target = ftp_target
    ckpt = write_checkpoint(tmp_path / "a.pth", seed=1)
    with target.open() as reg:
        reg.publish_file(ckpt, "m", "dev", set_latest=True)
    before = snapshot(target.root)
    with target.open_ro() as reg:
        with pytest.raises(PermissionDenied):
            reg.publish_file(write_checkpoint(tmp_path / "b.pth", seed=2), "m", "dev", set_latest=True)
        with pytest.raises(PermissionDenied):
            reg.publish_file(write_checkpoint(tmp_path / "b.pth", seed=2), "other", "dev")
        with pytest.raises(PermissionDenied):
            reg.promote("m", 1)
        assert reg.pull("m", "dev", "latest", tmp_path / "dl").version == 1  # reading is fine
    assert snapshot(target.root) == before


# ---------------------------------------------------------------------------
# Tampered and hostile bundles
# ---------------------------------------------------------------------------

def _nothing_extracted(dest) -> bool:
    return not any(p.is_file() for p in dest.rglob("*")) and not (dest / "m" / "dev" / "1").exists()


def test_bundle_digest_mismatch_is_refused(matrix_target, tmp_path):
    target = matrix_target
    with target.open() as reg:
        published = reg.publish_file(write_checkpoint(tmp_path / "a.pth"), "m", "dev")
        bundle = target.root / "m" / "dev" / "1" / "bundle.tar.gz"
        data = bytearray(bundle.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
        bundle.write_bytes(bytes(data))
        dest = tmp_path / "dl"
        for verify_first in (False, True):
            with pytest.raises(IntegrityError):
                reg.pull("m", "dev", 1, dest, verify_first=verify_first)
            assert _nothing_extracted(dest)
        with pytest.raises(IntegrityError):
            reg.promote("m", 1)
        assert reg.versions("m", "release") == []
        bundle.write_bytes(bundle.read_bytes() + b"extra")  # longer than the manifest says
        with pytest.raises(IntegrityError):
            reg.pull("m", "dev", 1, dest)
        assert _nothing_extracted(dest)
        assert published.manifest.bundle_size != bundle.stat().st_size


HOSTILE = {
    "corrupt gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + os.urandom(600),
    "not gzip": b"PK\x03\x04 this is a zip",
    "parent dir": crafted_tar_gz([("checkpoint.pth", b"x"), ("../x", b"evil"), ("bundle.json", b"{}")]),
    "nested parent": crafted_tar_gz([("checkpoint.pth", b"x"), ("a/../../x", b"evil")]),
    "absolute": crafted_tar_gz([("checkpoint.pth", b"x"), ("/tmp/vtm-evil", b"evil")]),
    "symlink": crafted_tar_gz([("checkpoint.pth", b"", tarfile.SYMTYPE, "/etc/passwd")]),
    "hardlink": crafted_tar_gz([("bundle.json", b"{}"), ("checkpoint.pth", b"", tarfile.LNKTYPE, "bundle.json")]),
    "char device": crafted_tar_gz([("checkpoint.pth", b"", tarfile.CHRTYPE)]),
    "block device": crafted_tar_gz([("checkpoint.pth", b"", tarfile.BLKTYPE)]),
    "fifo": crafted_tar_gz([("checkpoint.pth", b"", tarfile.FIFOTYPE)]),
    "directory": crafted_tar_gz([("checkpoint.pth", b"", tarfile.DIRTYPE)]),
    "unknown name": crafted_tar_gz([("checkpoint.pth", b"x"), ("run.sh", b"rm -rf /"), ("bundle.json", b"{}")]),
    "duplicate": crafted_tar_gz([("checkpoint.pth", b"x"), ("checkpoint.pth", b"y"), ("bundle.json", b"{}")]),
    "no checkpoint": crafted_tar_gz([("bundle.json", b"{}")]),
    "long name": crafted_tar_gz([("checkpoint.pth" + "/x" * 80, b"x")]),
}


def test_hostile_bundles_are_refused_and_nothing_is_extracted(matrix_target, tmp_path):
    target = matrix_target
    for number, bundle in enumerate(HOSTILE.values(), 1):
        plant_version(target.root, "m", "dev", number, bundle)
    target.planted()
    outside = list(tmp_path.parent.glob("x")) + [p for p in (tmp_path / "x", "/tmp/vtm-evil") if os.path.exists(p)]
    with target.open() as reg:
        for number, case in enumerate(HOSTILE, 1):
            dest = tmp_path / f"dl{number}"
            for verify_first in (False, True):
                with pytest.raises((UnsafeBundle, IntegrityError)) as err:
                    reg.pull("m", "dev", number, dest, verify_first=verify_first)
                assert "refused" in str(err.value) or "manifest" in str(err.value), (case, err.value)
                assert not any(p.is_file() for p in dest.rglob("*")), case
                assert not (dest / "m" / "dev" / str(number)).exists(), case
            with pytest.raises((UnsafeBundle, IntegrityError)):
                reg.promote("m", number)
        assert reg.versions("m", "release") == []
    assert list(tmp_path.parent.glob("x")) + [
        p for p in (tmp_path / "x", "/tmp/vtm-evil") if os.path.exists(p)] == outside


def test_over_the_size_caps_is_refused_before_extracting(target, tmp_path):
    from vtm_tui.core.registry import BundleLimits

    with target.open() as reg:
        reg.publish_file(write_checkpoint(tmp_path / "a.pth"), "m", "dev")
    size = (tmp_path / "a.pth").stat().st_size
    for limits in (BundleLimits(max_member_bytes=size - 1), BundleLimits(max_total_bytes=size + 10),
                   BundleLimits(max_members=1)):
        with target.open(limits=limits) as reg:
            with pytest.raises(UnsafeBundle, match="cap|more than"):
                reg.pull("m", "dev", 1, tmp_path / "dl")
        assert not any(p.is_file() for p in (tmp_path / "dl").rglob("*"))


def test_gzip_bomb_is_stopped_at_the_cap(target, tmp_path):
    import gzip

    from vtm_tui.core.registry import BundleLimits

    header = tarfile.TarInfo("checkpoint.pth")
    header.size = 1 << 30  # claims 1 GiB of zeros: 1 MB compressed
    bomb = gzip.compress(header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * (64 << 20), 9)
    plant_version(target.root, "m", "dev", 1, bomb)
    with target.open(limits=BundleLimits(max_member_bytes=1 << 31, max_total_bytes=16 << 20)) as reg:
        with pytest.raises(UnsafeBundle, match="cap"):
            reg.pull("m", "dev", 1, tmp_path / "dl")
    with target.open() as reg:  # default caps let the header through: the manifest stops it
        with pytest.raises(IntegrityError):
            reg.pull("m", "dev", 1, tmp_path / "dl")
    assert not any(p.is_file() for p in (tmp_path / "dl").rglob("*"))


# ---------------------------------------------------------------------------
# Unsafe checkpoints
# ---------------------------------------------------------------------------

class _Payload:
    """Unpickling this runs `open(marker, "w")`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(target, tmp_path):
    import torch

    from vtm_tui.core.standard.loader import UnsafeCheckpoint

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _Payload(marker)}, evil)
    assert not marker.exists()
    with target.open() as reg:
        for convert in (False, True):
            with pytest.raises(UnsafeCheckpoint, match="refused") as err:
                reg.publish_file(evil, "m", "dev", convert_standard=convert, task_type="classification",
                                 num_classes=2)
            assert "weights_only=False" in str(err.value) and "open" in str(err.value)
        assert reg.list_models() == []
    assert not marker.exists()
    assert snapshot(target.root) == {}


def test_a_file_changing_while_it_is_bundled_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "a.pth")
    writer = BundleWriter([("checkpoint.pth", path)], {})
    writer.read()
    with open(path, "ab") as handle:
        handle.write(b"more")
    with pytest.raises(IntegrityError, match="changed"):
        writer.drain()
