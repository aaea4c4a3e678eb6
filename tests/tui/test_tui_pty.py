"""The real `vtm` binary in a pseudo-terminal: it draws the five tabs, quits on a key with
exit status 0, and hands the terminal back (leaves the alternate screen)."""
from __future__ import annotations

import time

import pexpect
import pytest
from fixtures.vtm import VTM_BIN

TITLES = ("Launcher", "Runs", "MLflow Ops", "Registry", "Serving")
LEAVE_ALT_SCREEN = "\x1b[?1049l"


def spawn_vtm(env, cols: int = 100, rows: int = 30) -> pexpect.spawn:
    environ = {**env.env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    return pexpect.spawn(VTM_BIN, [], cwd=str(env.cwd), env=environ, dimensions=(rows, cols),
                         encoding="utf-8", codec_errors="replace", timeout=30)


def read_until(child: pexpect.spawn, predicate, timeout: float = 30) -> str:
    """Everything the app wrote, until predicate(output) holds."""
    output, deadline = "", time.monotonic() + timeout
    while not predicate(output):
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen never matched; got {len(output)} chars:\n{output[-3000:]!r}")
        try:
            output += child.read_nonblocking(65536, timeout=0.2)
        except pexpect.TIMEOUT:
            pass
    return output


@pytest.mark.parametrize("quit_key", ["q", "\x11"])  # q, ctrl+q
def test_vtm_in_a_pty_shows_the_tabs_and_quits_cleanly(offline_env, quit_key):
    child = spawn_vtm(offline_env)
    try:
        screen = read_until(child, lambda out: all(title in out for title in TITLES)
                            and "Fake training" in out)  # the catalog is in: the app is live
        assert "\x1b[?1049h" in screen  # it drew on the alternate screen
        child.send(quit_key)
        rest = read_until(child, lambda out: LEAVE_ALT_SCREEN in out, timeout=15)
        child.expect(pexpect.EOF, timeout=15)
        rest += child.before  # whatever came after leaving the alternate screen
        child.close()
        assert child.exitstatus == 0, (child.exitstatus, child.signalstatus, rest[-2000:])
        tail = rest[rest.rindex(LEAVE_ALT_SCREEN):]
        assert "\x1b[?25h" in rest  # the cursor is visible again
        assert "Traceback" not in tail
    finally:
        if child.isalive():
            child.terminate(force=True)
