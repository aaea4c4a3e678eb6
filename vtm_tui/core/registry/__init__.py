"""Model registry: versioned bundles in `dev` and `release` stages on an FTP server or in a folder.

    from vtm_tui.core.registry import open_registry

    with open_registry(settings) as reg:              # VTM_REGISTRY_URL, or <VTM_HOME>/registry
        reg.list_models(); reg.list_stages(m); reg.list_versions(m, "dev")   # browse
        reg.read_manifest(m, "release", "latest")
        reg.publish_file("best.pth", m, "dev", set_latest=True, progress=cb, cancel=event)
        reg.promote(m, "latest", "dev", "release")
        reg.pull(m, "release", "latest", dest="downloads", progress=cb, cancel=event)

Every call blocks (run them in a worker thread); `progress(done, total)` is called from that
thread; setting the `threading.Event` cancels a transfer within ~50 ms and raises Cancelled.
Errors are RegistryError subclasses with messages fit to show as is (never a password);
RegistryUsageError, NotFound and VersionConflict are also UserErrors (exit code 2).

Backends implement base.Backend: folder_backend.FolderBackend (`file:///path` or a plain path)
and ftp_backend.FtpBackend (`ftp://user@host:port/root`, `ftps://` for explicit TLS).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

from vtm_tui.core.registry.base import (
    AuthError,
    Backend,
    Cancelled,
    ConnectError,
    Entry,
    IntegrityError,
    ManifestError,
    NotFound,
    PermissionDenied,
    RegistryError,
    RegistryTimeout,
    RegistryUsageError,
    TLSError,
    UnsafeBundle,
    VersionConflict,
)
from vtm_tui.core.registry.bundle_reader import BundleLimits
from vtm_tui.core.registry.layout import STAGES, InvalidName, Manifest
from vtm_tui.core.registry.ops import Registry
from vtm_tui.core.registry.results import PublishResult, PullResult, VersionInfo
from vtm_tui.settings import Settings

__all__ = [
    "AuthError", "Backend", "BundleLimits", "Cancelled", "ConnectError", "Entry", "IntegrityError",
    "InvalidName", "Manifest", "ManifestError", "NotFound", "PermissionDenied", "PublishResult",
    "PullResult", "Registry", "RegistryError", "RegistryTimeout", "RegistryUsageError", "STAGES",
    "TLSError", "UnsafeBundle", "VersionConflict", "VersionInfo", "default_registry_url",
    "open_backend", "open_registry", "registry_url",
]


def default_registry_url(settings: Settings) -> str:
    """The folder registry every vtm has: `file://` URL of <VTM_HOME>/registry."""
    return (Path(settings.home) / "registry").resolve().as_uri()


def registry_url(settings: Settings, url: str | None = None) -> str:
    """--registry, else VTM_REGISTRY_URL, else the folder <VTM_HOME>/registry."""
    return url or settings.registry_url or default_registry_url(settings)


def open_backend(url: str, *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 password: str | Callable[[], str] | None = None, interactive: bool | None = None,
                 timeout: float | None = None) -> Backend:
    """The backend for a registry URL: `ftp://user@host:port/root` or `ftps://...` (FtpBackend),
    `file:///path` or a plain path, relative to `cwd` (FolderBackend). Nothing connects yet.

    env: the variables the FTP backend is configured from (VTM_FTP_PASSWORD, VTM_FTP_TIMEOUT,
    VTM_FTP_CA_FILE, NETRC), read through Settings.from_environ; default os.environ. timeout
    (seconds) overrides VTM_FTP_TIMEOUT. RegistryUsageError for an unusable URL; UserError for a
    bad variable."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("ftp", "ftps", "ftpes"):
        from vtm_tui.core.registry.ftp_backend import FtpBackend

        settings = Settings.from_environ(env, Path(cwd) if cwd else None)
        return FtpBackend(url, password=password, env_password=settings.ftp_password,
                          netrc_file=settings.netrc_file, interactive=interactive,
                          timeout=settings.ftp_timeout if timeout is None else timeout,
                          ca_file=settings.ftp_ca_file)
    from vtm_tui.core.registry.folder_backend import FolderBackend

    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise RegistryUsageError(f"file URLs name a local folder (file:///path), got host {parts.netloc!r}")
        return FolderBackend(unquote(parts.path))
    if scheme:
        raise RegistryUsageError(f"unsupported registry URL scheme {scheme!r}: use ftp://, ftps:// or file://")
    path = Path(url).expanduser()
    return FolderBackend(path if path.is_absolute() else Path(cwd or Path.cwd()) / path)


def open_registry(settings: Settings, url: str | None = None, *, password: str | Callable[[], str] | None = None,
                  interactive: bool | None = None, limits: BundleLimits | None = None,
                  timeout: float | None = None) -> Registry:
    """The registry of --registry / VTM_REGISTRY_URL / <VTM_HOME>/registry. Connects lazily.

    password: a string or a callable asked only when the server wants one (the TUI's prompt);
    otherwise VTM_FTP_PASSWORD, ~/.netrc, or getpass when stdin is a terminal (interactive None:
    when stdin is one). UserError for a bad VTM_REGISTRY_GZIP_LEVEL or VTM_FTP_* value."""
    backend = open_backend(registry_url(settings, url), env=settings.env, cwd=settings.workdir,
                           password=password, interactive=interactive, timeout=timeout)
    return Registry(backend, gzip_level=settings.registry_gzip_level, limits=limits)
