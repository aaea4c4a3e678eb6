"""The FTP registry against servers nobody here wrote: Debian's vsftpd with a local user that is
not chrooted (plain and FTPS with its default TLS settings), an IIS-style server with MS-DOS
listings and no MLSD, and a server whose replies the FTP library cannot read. The registry
round trip and the fault cases that apply to every server run on these too (matrix_target in
test_registry.py and test_registry_faults.py)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading

import pytest
from fixtures.ftp import PASSWORD, write_checkpoint
from fixtures.msdos_ftp import add_unparsable_line
from fixtures.vtm import VTM_BIN, base_env

from vtm_tui.core.registry import (
    AuthError,
    NotFound,
    PermissionDenied,
    Registry,
    RegistryError,
    open_backend,
)
from vtm_tui.core.registry.ftp_session import server_path, url_path


def vtm(*args: str, cwd, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([VTM_BIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def cli_env(tmp_path, **extra: str) -> dict:
    return base_env(VTM_HOME=str(tmp_path / ".vtm"), **extra)


# ---------------------------------------------------------------------------
# URL paths: RFC 1738 §3.2.2
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, path, shown", [
    ("ftp://u@h:21/registry", "registry", "ftp://u@h:21/registry"),
    ("ftp://u@h:21/registry/team%20a/", "registry/team a", "ftp://u@h:21/registry/team%20a"),
    ("ftp://u@h:21/%2Fsrv/registry", "/srv/registry", "ftp://u@h:21/%2Fsrv/registry"),
    ("ftp://u@h:21/%2fsrv//registry", "/srv/registry", "ftp://u@h:21/%2Fsrv/registry"),
    ("ftp://u@h:21/%2F", "/", "ftp://u@h:21/%2F"),
    ("ftp://u@h:21/", "", "ftp://u@h:21"),
    ("ftp://u@h:21", "", "ftp://u@h:21"),
])
def test_ftp_url_paths_are_relative_to_the_login_folder_and_2f_makes_them_absolute(url, path, shown):
    backend = open_backend(url, env={}, interactive=False)
    assert (backend.root, backend.url) == (path, shown)
    assert server_path(url_path(path)) == path


def test_vsftpd_publish_lands_under_the_login_folder_as_rfc_1738_says(vsftpd_server, vsftpd_target, tmp_path):
    """The issue's input: `vtm registry publish ... --registry ftp://USER@HOST:PORT/registry...` on
    Debian's vsftpd with a local user failed with `553 Could not create file` (the path was taken
    as /registry); `vtm registry ls` showed nothing."""
    env = cli_env(tmp_path, **vsftpd_target.env)
    ckpt = write_checkpoint(tmp_path / "best.pth")
    r = vtm("registry", "publish", str(ckpt), "--model", "m", "--stage", "dev", "--registry", vsftpd_target.url,
            cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert str(vsftpd_target.root).startswith(str(vsftpd_server.home) + "/registry/")
    assert (vsftpd_target.root / "m" / "dev" / "1" / "manifest.json").is_file()
    r = vtm("registry", "ls", "--registry", vsftpd_target.url, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "m " in r.stdout and "dev" in r.stdout, (r.stdout, r.stderr)
    # the same folder named absolutely: %2F, then the path from the server's root
    absolute = vsftpd_target.url.replace(f":{vsftpd_server.port}/", f":{vsftpd_server.port}/%2F"
                                         + str(vsftpd_server.home).lstrip("/") + "/")
    with vsftpd_target.open(absolute) as reg:
        assert reg.backend.root == str(vsftpd_target.root) and reg.list_versions("m", "dev")[0].version == 1


def test_a_missing_folder_is_reported_as_missing_and_a_refused_one_as_refused(vsftpd_server, vsftpd_target,
                                                                               tmp_path):
    with vsftpd_target.open() as reg:
        reg.backend.make_dirs("m")
        # vsftpd answers `553 Could not create file.` whether the folder is missing or not writable
        with pytest.raises(NotFound, match=r"the folder \S+/m/nope does not exist on the server, so "
                                           r"STOR \S+/m/nope/x -> 553 Could not create file\.") as err:
            reg.backend.write_bytes("m/nope/x", b"data")
        assert "permission" not in str(err.value)
        os.chmod(vsftpd_target.root / "m", 0o500)  # the folder is there, writing is refused
        try:
            with pytest.raises(PermissionDenied, match=r"refused to write m/x \(permission denied or read-only "
                                                       r"account\?\): STOR \S+/m/x -> 553 Could not create file"):
                reg.backend.write_bytes("m/x", b"data")
        finally:
            os.chmod(vsftpd_target.root / "m", 0o700)
    # a registry in a folder this user may not create: the refused MKD and its reply, one line
    root_url = f"ftp://{vsftpd_server.user}@127.0.0.1:{vsftpd_server.port}/%2Fvtm-no-such-root/registry"
    with vsftpd_target.open(root_url) as reg:
        with pytest.raises(PermissionDenied) as err:
            reg.publish_file(write_checkpoint(tmp_path / "a.pth"), "m", "dev")
    assert str(err.value) == (f"{root_url}: the server refused to create the folder /vtm-no-such-root: "
                              f"MKD /vtm-no-such-root -> 550 Create directory operation failed.")


def test_vsftpd_refuses_a_wrong_password_as_an_auth_error(vsftpd_target, tmp_path):
    with Registry(open_backend(vsftpd_target.url, env={"VTM_FTP_PASSWORD": "wrong"}, timeout=10)) as reg:
        with pytest.raises(AuthError, match="login refused .* 530 Login incorrect"):
            reg.list_models()


# ---------------------------------------------------------------------------
# FTPS against vsftpd's defaults (require_ssl_reuse=YES)
# ---------------------------------------------------------------------------


def test_ftps_against_vsftpd_resumes_the_tls_session_on_every_data_connection(vsftpd_tls_server,
                                                                              vsftpd_tls_target, tmp_path):
    ckpt = write_checkpoint(tmp_path / "a.pth")
    start = vsftpd_tls_server.log.stat().st_size
    with vsftpd_tls_target.open() as reg:
        assert reg.publish_file(ckpt, "m", "dev", set_latest=True).version == 1
        pulled = reg.pull("m", "dev", "latest", tmp_path / "dl")
    assert pulled.checkpoint.read_bytes() == ckpt.read_bytes()
    with open(vsftpd_tls_server.log, "rb") as log:  # debug_ssl: a line per TLS handshake
        log.seek(start)
        handshakes = re.findall(r'"SSL version: ([^"]*)"', log.read().decode(errors="replace"))
    control, *data = handshakes  # one control connection (a full handshake), then every transfer's
    assert ", not reused," in control and len(data) >= 6 and all(", reused," in h for h in data), handshakes


def test_ftps_without_session_reuse_fails_in_one_line_naming_require_ssl_reuse(vsftpd_tls_target, monkeypatch):
    """A data connection with a fresh TLS session (as Python's ftplib opens them: the fault is
    made here by binding no session) meets vsftpd's refusal; the message names the setting."""
    from aioftp.common import SSLSessionBoundContext

    bind = SSLSessionBoundContext.__init__
    monkeypatch.setattr(SSLSessionBoundContext, "__init__",
                        lambda self, protocol, context, session: bind(self, protocol, context, None))
    with vsftpd_tls_target.open() as reg:
        with pytest.raises(RegistryError) as err:
            reg.list_models()
    message = str(err.value)
    assert "\n" not in message and "522 SSL connection failed: session reuse required" in message, message
    assert "vsftpd's require_ssl_reuse" in message, message


# ---------------------------------------------------------------------------
# MS-DOS listings, entries nobody can read
# ---------------------------------------------------------------------------


def test_msdos_listings_are_read_and_unreadable_entries_are_skipped_with_a_warning(msdos_target, tmp_path):
    """The issue's input: against an IIS-style server `vtm registry ls` and `publish` died with
    `ValueError: ('All parsers failed to parse', ...)`; one bad entry sank a whole listing."""
    env = cli_env(tmp_path, **msdos_target.env)
    ckpt = write_checkpoint(tmp_path / "best.pth")
    r = vtm("registry", "publish", str(ckpt), "--model", "cls", "--registry", msdos_target.url, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    (msdos_target.root / os.fsdecode(b"caf\xe9")).mkdir()  # a legacy code page's name: not UTF-8
    add_unparsable_line(msdos_target.root, b"?? not a directory entry ??")
    add_unparsable_line(msdos_target.root / "cls" / "dev", b"garbage")
    r = vtm("registry", "ls", "--json", "--registry", msdos_target.url, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    listing = json.loads(r.stdout)
    assert [m["model"] for m in listing["models"]] == ["cls"]
    assert listing["models"][0]["stages"]["dev"]["versions"] == [1]
    warnings = listing["warnings"]
    assert any("'caf\\\\xe9' (the name is not UTF-8)" in w for w in warnings), warnings
    assert any("'?? not a directory entry ??' (not a LIST line" in w for w in warnings), warnings
    assert any("cls/dev" in w and "'garbage'" in w for w in warnings), warnings
    assert r.stderr.count("vtm: warning: ") == len(warnings)
    # publishing into a folder with a bad entry works and leaves nothing behind
    r = vtm("registry", "publish", str(write_checkpoint(tmp_path / "b.pth", seed=2)), "--model", "cls",
            "--registry", msdos_target.url, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in (msdos_target.root / "cls" / "dev").iterdir()) == [".msdos-list-junk", "1", "2"]


class GarbledServer:
    """A TCP server that speaks enough FTP to log in and then answers EPSV and PASV with replies
    no client can read: the FTP library raises something other than a reply error."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 garbled\r\n")
            for line in lines:
                verb = line.split()[0].upper() if line.strip() else b""
                reply = {b"USER": b"331 pass", b"PASS": b"230 in", b"TYPE": b"200 ok",
                         b"EPSV": b"229 Entering Extended Passive Mode (|||port|)",
                         b"PASV": b"227 Entering Passive Mode (no,address)", b"QUIT": b"221 bye"}.get(verb, b"500 ?")
                conn.sendall(reply + b"\r\n")

    def close(self) -> None:
        self.sock.close()


def test_an_exception_of_the_ftp_library_becomes_a_registry_error_naming_command_and_reply():
    server = GarbledServer()
    try:
        with Registry(open_backend(f"ftp://vtm@127.0.0.1:{server.port}/r", env={"VTM_FTP_PASSWORD": PASSWORD},
                                   timeout=5)) as reg:
            with pytest.raises(RegistryError) as err:
                reg.list_models()
    finally:
        server.close()
    assert type(err.value) is RegistryError and err.value.__cause__ is None and err.value.__suppress_context__
    assert str(err.value).startswith(f"ftp://vtm@127.0.0.1:{server.port}/r: list the registry root failed: ")
    assert "EPSV -> 229 Entering Extended Passive Mode (|||port|)" in str(err.value), err.value
