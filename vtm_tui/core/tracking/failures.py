"""When MLflow calls fail: the errors vtm raises (UserErrors naming the tracking URI), and the
test that tells an unreachable store (no answer, refused, reset) from a store that said no."""
from __future__ import annotations

import re
from typing import Iterator

from vtm_tui.errors import UserError


class TrackingError(UserError):
    """An MLflow call failed; the message names the tracking URI."""

    def __init__(self, message: str, uri: str | None = None, error_code: str | None = None):
        super().__init__(message)
        self.uri, self.error_code = uri, error_code


class TrackingUnavailable(TrackingError):
    """The tracking server or database cannot be reached."""


_UNREACHABLE = re.compile(r"Connection refused|timed out|failed with timeout exception|"
                          r"Max retries exceeded|Name or service not known|"
                          r"Temporary failure in name resolution|No route to host|"
                          r"Connection reset by peer|RemoteDisconnected|too many \d+ error responses")
REASON = re.compile(r"Connection refused|Read timed out|Connect(?:ion)? ?timed? ?out|"
                     r"Name or service not known|Temporary failure in name resolution|"
                     r"No route to host|Connection reset by peer|too many \d+ error responses", re.I)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_unreachable(exc: BaseException) -> bool:
    """True when an MLflow call failed for want of an answer (refused, reset, timed out, unknown
    host; a requests/urllib3 or SQLAlchemy connection error anywhere in the chain) rather than
    because the store answered no."""
    for link in _chain(exc):
        module = type(link).__module__ or ""
        if module.startswith(("requests", "urllib3")) and not isinstance(link, ValueError):
            return True
        if module.startswith("sqlalchemy") and type(link).__name__ in ("OperationalError", "InterfaceError"):
            return True
        if isinstance(link, (ConnectionError, TimeoutError)):
            return True
    # A server's own answer carries a specific code; MLflow's transport failures carry none.
    code = getattr(exc, "error_code", None)
    return code in (None, "INTERNAL_ERROR") and bool(_UNREACHABLE.search(str(exc)))
