"""Failing fast against a tracking store: one short HTTP probe of a server, one TCP probe of a
database (and its driver), and short MLflow HTTP limits while interactive calls run.

MLflow's own defaults (7 retries with backoff, a 120 s timeout; about a minute and a half of
retries for a dead database) suit a training job riding out a restart, not a person waiting.
"""
from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from vtm_tui.core import procs
from vtm_tui.core.formatting import redact_url
from vtm_tui.core.tracking.failures import TrackingUnavailable
from vtm_tui.errors import UserError

PROBE_TIMEOUT = 5.0

# Defaults for interactive calls. MLflow's own (7 retries with backoff, 120 s timeout) suit a
# training job riding out a server restart, not a person waiting for an answer.
INTERACTIVE_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

DB_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def is_http_uri(uri: str) -> bool:
    """True for a tracking server URI (http:// or https://), False for a database or file store."""
    return uri.startswith(("http://", "https://"))


def database_address(uri: str) -> tuple[str, str, int] | None:
    """(dialect, host, port) of a networked database URI; None for sqlite, sockets and the rest."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    dialect = scheme.split("+", 1)[0]
    if dialect not in DB_DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"malformed database URI {redact_url(uri)}: {exc}") from None
    if not parts.hostname:  # unix socket (host in the query string) or libpq defaults
        return None
    return dialect, parts.hostname, port or DB_DEFAULT_PORTS[dialect]


def check_database_uri(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Fail fast, naming the URI, when a database URI's driver is missing or its server is down.

    MLflow itself retries a dead database for about a minute and a half before it gives up.
    """
    address = database_address(uri)
    if address is None:
        return
    dialect, host, port = address
    driver = uri.split("://", 1)[0].partition("+")[2]
    module = {"postgresql": {"": "psycopg2", "psycopg2": "psycopg2", "psycopg": "psycopg",
                             "pg8000": "pg8000"},
              "mysql": {"": "MySQLdb", "pymysql": "pymysql", "mysqldb": "MySQLdb"}}.get(dialect, {}).get(driver)
    if module:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            hint = " (pip install 'vtm-tui[postgres]')" if module == "psycopg2" else ""
            raise UserError(f"{redact_url(uri)}: the database driver '{module}' is not installed{hint}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot reach the database of {redact_url(uri)} at {host}:{port}: "
            f"{exc.strerror or exc}", uri) from None


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise TrackingUnavailable unless something answers HTTP at the server URI.

    Any HTTP answer counts (a proxy's 401 or 404 too): this only tells a dead or hung server
    from a live one, quickly. TLS problems are left for MLflow, which has its own TLS settings.
    """
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
    except (TimeoutError, socket.timeout):
        reason = f"no answer within {timeout:.0f}s"
    except (OSError, ValueError) as exc:
        reason = str(exc)
    raise TrackingUnavailable(
        f"cannot reach the MLflow tracking server at {redact_url(uri)}: {reason} "
        f"(is it running? see `vtm mlflow status`, MLFLOW_TRACKING_URI or --tracking-uri)", uri)


_env_users = 0


@contextmanager
def interactive_http_limits() -> Iterator[None]:
    """Apply INTERACTIVE_HTTP_ENV for the duration of MLflow calls; variables the user set win.

    The environment is changed only while a call runs (reference-counted across threads), and
    the variables are process-only (procs.PROCESS_ONLY_ENV): a training run, a model server or a
    tracking server that vtm starts meanwhile keeps MLflow's patient defaults.
    """
    global _env_users
    with procs.ENV_LOCK:
        if _env_users == 0:
            for key, value in INTERACTIVE_HTTP_ENV.items():
                if key not in os.environ:
                    os.environ[key] = value
                    procs.PROCESS_ONLY_ENV.add(key)
        _env_users += 1
    try:
        yield
    finally:
        with procs.ENV_LOCK:
            _env_users -= 1
            if _env_users == 0:
                for key in INTERACTIVE_HTTP_ENV:
                    if key in procs.PROCESS_ONLY_ENV:
                        os.environ.pop(key, None)
                        procs.PROCESS_ONLY_ENV.discard(key)
