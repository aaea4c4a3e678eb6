"""The FTP servers of fixtures.vsftpd and fixtures.msdos_ftp, checked on their own with plain
clients: they must behave as the real servers they stand for (Debian's vsftpd on a team box,
an IIS server with MS-DOS listings), or the registry tests against them prove nothing."""
from __future__ import annotations

import asyncio
import ftplib
import io
import os
import re
import ssl
import stat
from urllib.parse import urlsplit

import pytest
from fixtures.ftp import PASSWORD, USER
from fixtures.msdos_ftp import add_unparsable_line


def _login(server) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=10)
    ftp.connect("127.0.0.1", server.port)
    ftp.login(server.user, server.password)
    return ftp


def _tls_login(server, ftp_class=ftplib.FTP_TLS) -> ftplib.FTP_TLS:
    ftp = ftp_class(context=ssl.create_default_context(cafile=str(server.ca_file)), timeout=10)
    ftp.connect("127.0.0.1", server.port)
    ftp.auth()
    ftp.login(server.user, server.password)
    ftp.prot_p()
    return ftp


def _mkdirs(ftp: ftplib.FTP, path: str) -> None:
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        try:
            ftp.mkd("/".join(parts[:depth]))
        except ftplib.error_perm as exc:
            assert str(exc).startswith("550"), exc  # exists already


class SessionReuseFTP_TLS(ftplib.FTP_TLS):
    """ftplib, mended: data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


# ---------------------------------------------------------------------------
# vsftpd
# ---------------------------------------------------------------------------

def test_vsftpd_logs_in_to_the_home_and_paths_are_relative_to_it(vsftpd_server, vsftpd_target):
    ftp = _login(vsftpd_server)
    assert ftp.pwd() == str(vsftpd_server.home)
    feat = ftp.sendcmd("FEAT")
    assert all(f" {name}" in feat for name in ("MDTM", "SIZE", "EPSV")) and "MLST" not in feat
    with pytest.raises(ftplib.error_perm, match="^500 Unknown command"):
        ftp.sendcmd("MLSD")
    sub = urlsplit(vsftpd_target.url).path.lstrip("/")  # registry/tPID-N, relative to the home
    assert vsftpd_target.root == vsftpd_server.home / sub
    _mkdirs(ftp, sub)
    ftp.storbinary(f"STOR {sub}/.incoming", io.BytesIO(b"12345"))
    ftp.rename(f"{sub}/.incoming", f"{sub}/LATEST")
    assert ftp.size(f"{sub}/LATEST") == 5 and re.fullmatch(r"213 \d{14}", ftp.sendcmd(f"MDTM {sub}/LATEST"))
    lines = []
    ftp.retrlines(f"LIST {sub}", lines.append)
    assert len(lines) == 1 and re.fullmatch(r"-rw------- +1 \d+ +\d+ +5 \w{3} [ \d]\d \d\d:\d\d LATEST", lines[0])
    # the same path taken as absolute is the machine's root folder's: not writable
    with pytest.raises(ftplib.error_perm, match="^553 Could not create file"):
        ftp.storbinary(f"STOR /{sub}/x", io.BytesIO(b"x"))
    ftp.quit()
    latest = vsftpd_target.root / "LATEST"
    assert latest.read_bytes() == b"12345"
    assert (latest.stat().st_uid, stat.S_IMODE(latest.stat().st_mode)) == (vsftpd_server.account.uid, 0o600)
    assert stat.S_IMODE(vsftpd_target.root.stat().st_mode) == 0o700  # Debian's default local_umask 077


def test_vsftpd_refuses_a_wrong_password(vsftpd_server):
    ftp = ftplib.FTP(timeout=10)
    ftp.connect("127.0.0.1", vsftpd_server.port)
    with pytest.raises(ftplib.error_perm, match="^530 Login incorrect"):
        ftp.login(vsftpd_server.user, "wrong")
    ftp.close()


def test_vsftpd_tls_wants_encryption_and_a_resumed_session_on_data_connections(vsftpd_tls_server):
    plain = ftplib.FTP(timeout=10)
    plain.connect("127.0.0.1", vsftpd_tls_server.port)
    with pytest.raises(ftplib.error_perm, match="^530 Non-anonymous sessions must use encryption"):
        plain.login(vsftpd_tls_server.user, vsftpd_tls_server.password)
    plain.close()
    with pytest.raises(ssl.SSLCertVerificationError):  # signed by the tests' private CA only
        _auth_with_system_cas(vsftpd_tls_server)
    ftp = _tls_login(vsftpd_tls_server)  # AUTH TLS, certificate checked against the CA, PROT P
    assert ftp.sock.getpeercert()["subject"] == ((("commonName", "127.0.0.1"),),)
    # Python's ftplib opens every data connection with a fresh TLS session
    with pytest.raises(ftplib.error_perm, match="^522 SSL connection failed: session reuse required"):
        ftp.retrlines("LIST", lambda line: None)
    with pytest.raises((EOFError, OSError)):  # ... and then vsftpd ends the whole session
        ftp.voidcmd("NOOP")
    ftp.close()


def _auth_with_system_cas(server) -> None:
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=10)
    ftp.connect("127.0.0.1", server.port)
    try:
        ftp.auth()
    finally:
        ftp.close()


def test_vsftpd_tls_serves_clients_that_resume_the_session(vsftpd_tls_server, vsftpd_tls_target):
    ftp = _tls_login(vsftpd_tls_server, SessionReuseFTP_TLS)
    sub = urlsplit(vsftpd_tls_target.url).path.lstrip("/")
    _mkdirs(ftp, sub)
    ftp.storbinary(f"STOR {sub}/f", io.BytesIO(b"over TLS"))
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {sub}/f", out.write)
    assert out.getvalue() == b"over TLS" and (vsftpd_tls_target.root / "f").read_bytes() == b"over TLS"
    ftp.quit()


async def test_vsftpd_tls_serves_asyncio_data_connections_that_resume_the_session(vsftpd_tls_server,
                                                                                  vsftpd_tls_target):
    """What an asyncio client must do here: send the transfer command first, then start TLS on the
    data connection with the control connection's session (aioftp's SSLSessionBoundContext).
    aioftp 0.28's own transfers do the handshake before the command: vsftpd, which starts TLS on a
    data connection after the command only, never answers, and the client times out."""
    import aioftp
    from aioftp.common import SSLSessionBoundContext

    server = vsftpd_tls_server
    sub = urlsplit(vsftpd_tls_target.url).path.lstrip("/")
    client = aioftp.Client(socket_timeout=10, connection_timeout=10, path_timeout=10)
    await client.connect("127.0.0.1", server.port)
    try:
        await client.upgrade_to_tls(ssl.create_default_context(cafile=str(server.ca_file)))  # + PBSZ 0, PROT P
        await client.login(server.user, server.password)
        for folder in ("registry", sub):
            await client.command(f"MKD {folder}", ("257", "550"))
        _, info = await client.command("EPSV", "229")
        reader, writer = await asyncio.open_connection("127.0.0.1", int(re.search(r"\|(\d+)\|", info[-1])[1]))
        await client.command("LIST registry", "1xx")
        control = client.stream.writer.transport.get_extra_info("ssl_object")
        await asyncio.wait_for(writer.start_tls(
            SSLSessionBoundContext(ssl.PROTOCOL_TLS_CLIENT, context=control.context, session=control.session),
            server_hostname="127.0.0.1"), 10)
        assert writer.transport.get_extra_info("ssl_object").session_reused
        listing = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await client.command(None, "2xx")  # 226 Directory send OK.
        assert re.search(rb"^drwx------ .* " + sub.split("/")[1].encode() + rb"\r$", listing, re.M), listing
    finally:
        client.close()


# ---------------------------------------------------------------------------
# The MS-DOS-style server
# ---------------------------------------------------------------------------

_DOS = re.compile(rb"\d\d-\d\d-\d\d  \d\d:\d\d[AP]M(       <DIR>         | {0,20}\d+) (.+)")


def _list(ftp: ftplib.FTP, path: str) -> list[bytes]:
    raw = io.BytesIO()
    ftp.retrbinary(f"LIST {path}", raw.write)
    return raw.getvalue().split(b"\r\n")[:-1]


def test_msdos_server_lists_in_ms_dos_style_and_has_no_mlsd(msdos_ftp_server, msdos_target):
    folder = msdos_target.root
    (folder / "cls").mkdir(parents=True)
    (folder / "cls" / "LATEST").write_bytes(b"x" * 1234)
    (folder / os.fsdecode(b"caf\xe9")).write_bytes(b"y")  # a legacy code page's name: not UTF-8
    ftp = ftplib.FTP(timeout=10)
    ftp.connect("127.0.0.1", msdos_ftp_server.port)
    ftp.login(USER, PASSWORD)
    assert ftp.sendcmd("SYST") == "215 Windows_NT"
    assert "MLST" not in ftp.sendcmd("FEAT")
    with pytest.raises(ftplib.error_perm, match='^500 Command "MLSD" not understood'):
        ftp.sendcmd("MLSD")
    sub = folder.name
    lines = _list(ftp, sub)
    assert [_DOS.fullmatch(line).groups() for line in lines] == [
        (b"                    1", b"caf\xe9"), (b"       <DIR>         ", b"cls")]
    assert re.fullmatch(rb"\d\d-\d\d-\d\d  \d\d:\d\d[AP]M {17}1234 LATEST", _list(ftp, f"{sub}/cls")[0])
    add_unparsable_line(folder / "cls", b"garbage, not an entry")
    assert _list(ftp, f"{sub}/cls")[1:] == [b"garbage, not an entry"]
    assert len(_list(ftp, f"{sub}/cls/LATEST")) == 1  # a file's LIST has no extra line
    ftp.storbinary(f"STOR {sub}/cls/new", io.BytesIO(b"abc"))
    assert ftp.size(f"{sub}/cls/new") == 3 and (folder / "cls" / "new").read_bytes() == b"abc"
    ftp.quit()
