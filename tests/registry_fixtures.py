"""Fixtures for the registry tests: real FTP servers and a parametrized registry target.

- `aioftp_server`: vtm's own server (core/ftp_server.py, aioftp) on a thread in this process.
- `pyftpd_server`: pyftpdlib in a subprocess (this file run as a script), stopped by PID.
- `target`: one test per backend: "local" (a folder), "aioftp", "pyftpdlib"; each test gets its
  own registry root (a fresh folder on the server), so session-scoped servers are shared safely.

Import the fixtures into a test module: `from registry_fixtures import *  # noqa: F403`.
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
PASSWORD = "s3cret-Pa55-do-not-print"
RO_PASSWORD = "reader-Pa55-do-not-print"
USER, RO_USER = "vtm", "reader"
_counter = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# pyftpdlib server, run as `python registry_fixtures.py pyftpdlib --root R`
# ---------------------------------------------------------------------------

def _serve_pyftpdlib(argv: list[str]) -> None:
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
    from pyftpdlib.servers import FTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=int, default=0, help="bytes/s per data connection (0: no limit)")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    auth = DummyAuthorizer()
    auth.add_user(USER, os.environ["FTPD_PASSWORD"], args.root, perm="elradfmwMT")
    auth.add_user(RO_USER, os.environ["FTPD_RO_PASSWORD"], args.root, perm="elr")
    if args.tls_cert:
        from pyftpdlib.handlers import TLS_FTPHandler

        class Handler(TLS_FTPHandler):
            pass
        Handler.certfile, Handler.keyfile = args.tls_cert, args.tls_key
        Handler.tls_control_required = Handler.tls_data_required = True
    else:
        class Handler(FTPHandler):
            pass
    Handler.authorizer = auth
    Handler.timeout = 60
    Handler.banner = "pyftpdlib test server"
    if args.rate:
        class Throttled(ThrottledDTPHandler):
            read_limit = write_limit = args.rate
        Handler.dtp_handler = Throttled
    server = FTPServer(("127.0.0.1", args.port), Handler)
    print(f"READY {server.address[1]}", flush=True)
    server.serve_forever()


@dataclass
class FtpServerProc:
    """A pyftpdlib subprocess serving `root`."""
    root: Path
    rate: int = 0
    tls: tuple[Path, Path] | None = None
    proc: subprocess.Popen | None = None
    port: int = 0
    scheme: str = "ftp"

    def start(self) -> "FtpServerProc":
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(HERE), "pyftpdlib", "--root", str(self.root), "--port", str(self.port),
               "--rate", str(self.rate)]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
            self.scheme = "ftps"
        env = {**os.environ, "FTPD_PASSWORD": PASSWORD, "FTPD_RO_PASSWORD": RO_PASSWORD}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"pyftpdlib server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def url(self, sub: str = "", user: str = USER) -> str:
        return f"{self.scheme}://{user}@127.0.0.1:{self.port}/{sub}".rstrip("/")


# ---------------------------------------------------------------------------
# Silent server: accepts and never answers
# ---------------------------------------------------------------------------

class SilentServer:
    """A TCP listener that accepts connections and never sends a byte (a stalled server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["pyftpdlib"]:
        _serve_pyftpdlib(sys.argv[2:])
        sys.exit(0)
    sys.exit(f"usage: {sys.argv[0]} pyftpdlib --root DIR [--port N] [--rate BYTES_PER_S]")


# ---------------------------------------------------------------------------
# Fixtures (below the script part: the server subprocess never imports pytest or vtm)
# ---------------------------------------------------------------------------

import pytest  # noqa: E402

from vtm_tui.core.registry import Registry, open_backend  # noqa: E402
from vtm_tui.core.registry.ftp_server import FtpUser, ServerThread  # noqa: E402

BACKENDS = ("local", "aioftp", "pyftpdlib")


@dataclass
class AioftpServer:
    thread: ServerThread
    root: Path

    @property
    def port(self) -> int:
        return self.thread.port

    def url(self, sub: str = "", user: str = USER) -> str:
        return f"ftp://{user}@127.0.0.1:{self.port}/{sub}".rstrip("/")


@pytest.fixture(scope="session")
def aioftp_server(tmp_path_factory) -> AioftpServer:
    root = tmp_path_factory.mktemp("aioftp-root")
    thread = ServerThread(root, [FtpUser(USER, PASSWORD), FtpUser(RO_USER, RO_PASSWORD, writable=False)],
                          idle_timeout=60, socket_timeout=30).start()
    yield AioftpServer(thread, root)
    thread.stop()


@pytest.fixture(scope="session")
def pyftpd_server(tmp_path_factory) -> FtpServerProc:
    server = FtpServerProc(tmp_path_factory.mktemp("pyftpd-root")).start()
    yield server
    server.stop()


@dataclass
class Target:
    """A registry location of one backend kind, fresh for each test."""
    kind: str
    url: str
    root: Path  # the registry root on this machine's disk (to inspect or tamper with)
    ro_url: str | None = None
    env: dict = field(default_factory=dict)
    server: object = None

    @property
    def is_ftp(self) -> bool:
        return self.kind != "local"

    def open(self, url: str | None = None, *, password: str | None = None, timeout: float = 10,
             limits=None) -> Registry:
        env = dict(self.env)
        backend = open_backend(url or self.url, env=env, password=password, interactive=False, timeout=timeout)
        return Registry(backend, env=env, limits=limits)

    def open_ro(self) -> Registry:
        return self.open(self.ro_url, password=RO_PASSWORD)


def make_target(kind: str, request, tmp_path: Path) -> Target:
    sub = f"t{os.getpid()}-{next(_counter)}"
    env = {"VTM_FTP_PASSWORD": PASSWORD, "VTM_FTP_TIMEOUT": "10"}
    if kind == "local":
        root = tmp_path / "registry"
        return Target(kind, root.as_uri(), root, None, env)
    server = request.getfixturevalue("aioftp_server" if kind == "aioftp" else "pyftpd_server")
    root = server.root / sub
    return Target(kind, server.url(sub), root, server.url(sub, RO_USER), env, server)


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path) -> Target:
    return make_target(request.param, request, tmp_path)


@pytest.fixture(params=("aioftp", "pyftpdlib"))
def ftp_target(request, tmp_path) -> Target:
    return make_target(request.param, request, tmp_path)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def write_checkpoint(path: Path, *, seed: int = 0, num_classes: int = 3, extra_floats: int = 0,
                     epoch: int = 1, metric: float = 0.5) -> Path:
    """A real vtm-checkpoint-v1 of SmallCNN; extra_floats pads it with random weights (bigger file)."""
    import torch

    from vtm_tui.core.standard.architectures import SmallCNN
    from vtm_tui.train.common import checkpoint_dict

    torch.manual_seed(seed)
    model = SmallCNN(num_classes, 16)
    data = checkpoint_dict(task_type="classification", model=model, num_classes=num_classes, image_size=16,
                           class_names=[f"c{i}" for i in range(num_classes)], epoch=epoch,
                           metric={"val_accuracy": metric})
    if extra_floats:
        data["padding"] = torch.randn(extra_floats, generator=torch.Generator().manual_seed(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (relative path -> sha256), to show that nothing changed."""
    import hashlib

    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def plant_version(root: Path, model: str, stage: str, version: int, bundle: bytes,
                  files: list[tuple[str, bytes]] | None = None):
    """Write a version straight onto the registry's disk, with a manifest that matches `bundle`
    (as a buggy or hostile publisher would): for tests of what pull refuses."""
    import hashlib

    from vtm_tui.core.registry.layout import FileEntry, Manifest, utc_now

    files = files if files is not None else [("checkpoint.pth", b"x"), ("bundle.json", b"{}")]
    manifest = Manifest(model=model, stage=stage, version=version,
                        bundle_sha256=hashlib.sha256(bundle).hexdigest(), bundle_size=len(bundle),
                        files=[FileEntry(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in files],
                        created=utc_now(), source={"type": "file", "file_name": "planted.pth"})
    vdir = root / model / stage / str(version)
    vdir.mkdir(parents=True, exist_ok=True)
    (vdir / "bundle.tar.gz").write_bytes(bundle)
    (vdir / "manifest.json").write_bytes(manifest.dumps())
    return manifest


def crafted_tar_gz(members: list[tuple], *, gzip_level: int = 6) -> bytes:
    """A tar.gz with exactly these members: (name, data) for regular files, or
    (name, data, TarInfo type, linkname) for anything else."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            name, data = member[0], member[1]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if len(member) > 2:
                info.type, info.linkname = member[2], member[3] if len(member) > 3 else ""
                if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    info.size, data = 0, b""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=gzip_level, mtime=0)


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signs for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vtm test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
