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

Backends implement base.Backend: local.LocalBackend (`file:///path` or a plain path) and
ftp.FtpBackend (`ftp://user@host:port/root`, `ftps://` for explicit TLS).
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
from vtm_tui.core.registry.bundle import BundleLimits
from vtm_tui.core.registry.layout import STAGES, InvalidName, Manifest
from vtm_tui.core.registry.ops import PublishResult, PullResult, Registry, VersionInfo

__all__ = [
    "AuthError", "Backend", "BundleLimits", "Cancelled", "ConnectError", "Entry", "IntegrityError",
    "InvalidName", "Manifest", "ManifestError", "NotFound", "PermissionDenied", "PublishResult",
    "PullResult", "Registry", "RegistryError", "RegistryTimeout", "RegistryUsageError", "STAGES",
    "TLSError", "UnsafeBundle", "VersionConflict", "VersionInfo", "default_registry_url",
    "open_backend", "open_registry", "registry_url",
]


def default_registry_url(settings) -> str:
    return (Path(settings.home) / "registry").resolve().as_uri()


def registry_url(settings, url: str | None = None) -> str:
    """--registry, else VTM_REGISTRY_URL, else the folder <VTM_HOME>/registry."""
    return url or getattr(settings, "registry_url", None) or default_registry_url(settings)


def open_backend(url: str, *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 password: str | Callable[[], str] | None = None, interactive: bool | None = None,
                 timeout: float | None = None) -> Backend:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("ftp", "ftps", "ftpes"):
        from vtm_tui.core.registry.ftp import FtpBackend

        return FtpBackend(url, password=password, env=env, interactive=interactive, timeout=timeout)
    from vtm_tui.core.registry.local import LocalBackend

    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise RegistryUsageError(f"file URLs name a local folder (file:///path), got host {parts.netloc!r}")
        return LocalBackend(unquote(parts.path))
    if scheme:
        raise RegistryUsageError(f"unsupported registry URL scheme {scheme!r}: use ftp://, ftps:// or file://")
    path = Path(url).expanduser()
    return LocalBackend(path if path.is_absolute() else Path(cwd or Path.cwd()) / path)


def open_registry(settings, url: str | None = None, *, password: str | Callable[[], str] | None = None,
                  interactive: bool | None = None, limits: BundleLimits | None = None,
                  timeout: float | None = None) -> Registry:
    """The registry of --registry / VTM_REGISTRY_URL / <VTM_HOME>/registry. Connects lazily.

    password: a string or a callable asked only when the server wants one (the TUI's prompt);
    otherwise VTM_FTP_PASSWORD, ~/.netrc, or getpass when stdin is a terminal."""
    env = dict(getattr(settings, "env", None) or os.environ)
    backend = open_backend(registry_url(settings, url), env=env, cwd=getattr(settings, "workdir", None),
                           password=password, interactive=interactive, timeout=timeout)
    return Registry(backend, env=env, limits=limits)
