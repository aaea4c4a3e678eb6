"""`vtm web` through the real binary: where it listens, what it refuses, --detach, status and
stop, and that stop never touches a program vtm did not start. (The page itself, in a
browser: tests/web/test_browser.py.)"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fixtures.vtm import free_port
from fixtures.web import wait_until

from vtm_tui.core import procs

LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def listening(port: int) -> set[str]:
    """The local addresses (as /proc/net/tcp{,6} write them) that listen on `port`."""
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vtm: error: "), result.stderr
    assert "Traceback" not in result.stderr and not result.stdout
    return lines[0]


@pytest.fixture
def stopper(offline_env):
    """Stops whatever `vtm web --detach` this test started, even when the test failed."""
    yield offline_env
    offline_env.run("web", "stop", timeout=60)
    record = offline_env.settings.web_dir / "server.json"
    if record.exists():  # stop did not manage: the record's pid is ours (this test started it)
        pid = json.loads(record.read_text())["pid"]
        if procs.is_running(pid, "vtm_tui.cli", "web"):
            os.killpg(pid, signal.SIGKILL)


def test_listens_on_loopback_only_by_default(web_server):
    assert listening(web_server.port) == {LOOPBACK_HEX}
    state = json.loads(web_server.vtm.run("web", "status", "--json", check=True).stdout)
    assert (state["state"], state["host"], state["port"], state["pid"], state["public"]) == \
        ("up", "127.0.0.1", web_server.port, web_server.proc.pid, False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
@pytest.mark.parametrize("detach", [[], ["--detach"]])
def test_a_network_address_needs_public(offline_env, host, detach):
    port = free_port()
    line = one_error_line(offline_env.run("web", "--host", host, "--port", str(port), *detach, timeout=60))
    assert f"--host {host} would let anyone who can reach port {port}" in line and "--public" in line
    assert not listening(port)


@pytest.mark.parametrize("detach", [[], ["--detach"]])
def test_a_taken_port_is_one_line_and_the_stranger_keeps_it(offline_env, detach):
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        line = one_error_line(offline_env.run("web", "--port", str(port), *detach, timeout=60))
        assert f"port {port} on 127.0.0.1 is in use by another program" in line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # still the stranger's
    assert not (offline_env.settings.web_dir / "server.json").exists()


def test_bad_port_settings_are_one_line(offline_env):
    assert "--port must be from 1 to 65535" in one_error_line(offline_env.run("web", "--port", "70000"))
    env = {**offline_env.env, "VTM_WEB_PORT": "web"}
    result = subprocess.run([sys.executable, "-m", "vtm_tui.cli", "web", "status"], cwd=offline_env.cwd, env=env,
                            capture_output=True, text=True, timeout=60)
    assert "VTM_WEB_PORT must be a port number" in one_error_line(result)


def test_detach_status_stop(stopper):
    vtm, port = stopper, free_port()
    vtm.env["VTM_WEB_PORT"] = str(port)  # the default port comes from the setting
    started = vtm.run("web", "--detach", timeout=60, check=True)
    assert f"vtm web started at http://127.0.0.1:{port}" in started.stdout
    assert f"ssh -L {port}:127.0.0.1:{port}" in started.stdout
    state = json.loads(vtm.run("web", "status", "--json", check=True).stdout)
    pid = state["pid"]
    assert (state["state"], state["port"], state["managed"]) == ("up", port, True)
    assert os.getsid(pid) == pid != os.getsid(0), "the server should be in a session of its own"
    assert listening(port) == {LOOPBACK_HEX}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
        html, cache = page.read().decode(), page.headers["Cache-Control"]
    assert cache == "no-store"  # a page left for another never lingers, app and all, in the bfcache
    assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in html
    assert "fonts.googleapis.com" not in html  # the bundled font: the page needs no internet

    again = vtm.run("web", "--detach", check=True)
    assert f"already running at http://127.0.0.1:{port} (pid {pid})" in again.stdout
    assert "already runs" in one_error_line(vtm.run("web"))  # a second server, in the foreground
    assert "already runs" in one_error_line(vtm.run("web", "--detach", "--port", str(free_port())))

    stopped = vtm.run("web", "stop", timeout=60, check=True)
    assert f"stopped (was http://127.0.0.1:{port}, pid {pid})" in stopped.stdout
    assert not procs.is_running(pid) and not listening(port)
    down = vtm.run("web", "status")
    assert down.returncode == 1 and down.stdout.startswith("down:")
    assert "was not running" in vtm.run("web", "stop", check=True).stdout


def test_public_warns_once_and_listens_everywhere(stopper):
    port = free_port()
    result = stopper.run("web", "--host", "0.0.0.0", "--public", "--port", str(port), "--detach", timeout=60,
                         check=True)
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "anyone who can reach this port can use vtm and launch jobs" in warnings[0]
    assert listening(port) == {"00000000"}
    assert json.loads(stopper.run("web", "status", "--json").stdout)["public"] is True


def test_stop_and_status_leave_a_stranger_alone(offline_env):
    port = free_port()
    offline_env.env["VTM_WEB_PORT"] = str(port)
    stranger = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port), 30, "the stranger to listen")
        status = offline_env.run("web", "status")
        assert status.returncode == 1 and f"port {port} is used by another program" in status.stdout
        stop = offline_env.run("web", "stop", check=True)
        assert "was not running" in stop.stdout and "left alone" in stop.stdout
        # A record that names the stranger's pid (a reused pid, a hand-edited file): not vtm's.
        record = offline_env.settings.web_dir / "server.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"pid": stranger.pid, "host": "127.0.0.1", "port": port, "public": False,
                                      "argv": [sys.executable, "-m", "vtm_tui.cli", "web"]}))
        assert "was not running" in offline_env.run("web", "stop", check=True).stdout
        assert stranger.poll() is None and listening(port), "vtm stopped a program it did not start"
        assert not record.exists()  # the stale record is gone
    finally:
        stranger.terminate()
        stranger.wait(10)
