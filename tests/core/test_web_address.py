"""core.web's address rules: where `vtm web` may listen and which requests get in."""
from __future__ import annotations

import sys

import pytest

from vtm_tui.commands.web_gateway import app_command, local_fonts
from vtm_tui.core.web import BindAddress, PublicBindRefused, bind_address, refusal
from vtm_tui.errors import UserError

LOOPBACK = BindAddress("127.0.0.1", 5173)
PUBLIC = BindAddress("0.0.0.0", 5173, public=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_nothing(host):
    assert bind_address(host, 5173) == BindAddress(host, 5173, public=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_anything_else_needs_public(host):
    with pytest.raises(PublicBindRefused, match="--public"):
        bind_address(host, 5173)
    assert bind_address(host, 5173, public=True).public


@pytest.mark.parametrize("host, port, message", [
    ("127.0.0.1", 0, "from 1 to 65535"), ("127.0.0.1", 65536, "from 1 to 65535"),
    ("no-such-host.invalid", 5173, "not an address this machine can listen on"),
])
def test_bad_addresses(host, port, message):
    with pytest.raises(UserError, match=message):
        bind_address(host, port)


def test_urls_from_this_machine():
    assert LOOPBACK.url == "http://127.0.0.1:5173"
    assert PUBLIC.url == "http://127.0.0.1:5173"
    assert BindAddress("::1", 8000).url == "http://[::1]:8000"
    assert BindAddress("::", 8000, public=True).url == "http://[::1]:8000"


@pytest.mark.parametrize("address, host, origin, websocket, refused", [
    (LOOPBACK, "127.0.0.1:5173", None, False, None),
    (LOOPBACK, "localhost:8080", None, False, None),  # a tunnel to another local port
    (LOOPBACK, "[::1]:5173", None, False, None),
    (LOOPBACK, "evil.example:5173", None, False, "loopback only"),  # DNS rebinding
    (LOOPBACK, None, None, False, "bad Host"),
    (LOOPBACK, 'x"><script>', None, False, "bad Host"),  # never echoed into the page
    (LOOPBACK, "127.0.0.1:5173", "http://127.0.0.1:5173", True, None),
    (LOOPBACK, "localhost:8080", "http://localhost:8080", True, None),
    (LOOPBACK, "127.0.0.1:5173", "http://evil.example", True, "another site"),  # cross-site WebSocket
    (LOOPBACK, "127.0.0.1:5173", "http://127.0.0.1:9999", True, "another site"),
    (LOOPBACK, "127.0.0.1:5173", None, True, "without an Origin"),
    (PUBLIC, "gpu-box.lan:5173", None, False, None),
    (PUBLIC, "gpu-box.lan:5173", "https://gpu-box.lan:5173", True, None),
    (PUBLIC, "gpu-box.lan:5173", "http://evil.example", True, "another site"),
])
def test_refusal(address, host, origin, websocket, refused):
    reason = refusal(address, host, origin, websocket=websocket)
    assert (reason is None) if refused is None else (refused in reason), reason


def test_the_page_uses_the_bundled_font():
    html = ('<head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto%20Mono" />'
            '<script src="x.js"></script></head>')
    page = local_fonts(html, "http://127.0.0.1:5173/static/")
    assert "googleapis" not in page and "<script" in page
    assert 'url("http://127.0.0.1:5173/static/fonts/RobotoMono-VariableFont_wght.ttf")' in page
    assert local_fonts("<head></head>", "/static/") == "<head></head>"


def test_each_tab_runs_this_interpreters_vtm():
    assert app_command() == [sys.executable, "-m", "vtm_tui.cli"]
