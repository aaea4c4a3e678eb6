"""`vtm web` in a real browser (headless Chromium): the page draws the app, keys 1-5 move the
active tab along five tabs, each browser tab runs its own app process, a launch from the page
starts a run that `vtm runs` lists, and closing the page ends its app but not the run.

One test on purpose: one server and one browser for the session, steps that build on each
other (the run launched from the page is the run that must outlive it).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fixtures.web import TerminalPage, active_tab, wait_until
from PIL import ImageChops
from selenium.webdriver.common.keys import Keys


def switch_tab(page: TerminalPage, key: str, before: tuple[int, int]) -> tuple[int, int]:
    """Press `key`; the active tab's underline must leave `before` and stay away: its new span."""
    page.press(key)
    wait_until(lambda: active_tab(page.shot()) not in (None, before), 30, f"the active tab to move after key {key!r}")
    span = active_tab(page.settled())
    assert span not in (None, before), f"the active tab came back to {before} after key {key!r}"
    return span


def test_the_app_in_a_browser(web_server, browser):
    page = TerminalPage(browser)
    page.open(web_server.url)
    first = page.settled()
    assert len(web_server.app_processes()) == 1, "the page should run exactly one app process"

    # Five tabs, left to right: each key moves the active tab's underline to a new place,
    # further right than the last, and the pane below changes with it.
    spans, shots = [active_tab(first)], [first]
    assert spans[0], "no active tab underline in the page"
    for key in "2345":
        spans.append(switch_tab(page, key, spans[-1]))
        shots.append(page.settled())
    assert all(left[1] < right[0] for left, right in zip(spans, spans[1:], strict=False)), \
        f"tabs not left to right: {spans}"
    for before, after in zip(shots, shots[1:], strict=False):
        assert ImageChops.difference(before, after).getbbox()[3] > first.height // 3, "the pane did not change"
    assert switch_tab(page, "1", spans[-1]) == spans[0], "key 1 did not bring the Launcher back"

    # A second browser tab is a second app, and closing it ends that app only.
    main = browser.current_window_handle
    browser.switch_to.new_window("tab")
    TerminalPage(browser).open(web_server.url)
    wait_until(lambda: len(web_server.app_processes()) == 2, 30, "a second app process for the second tab")
    browser.close()
    browser.switch_to.window(main)
    wait_until(lambda: len(web_server.app_processes()) == 1, 30, "the second tab's app to exit")

    # Launch from the page: the test catalog's first task (fake), epochs typed in the form.
    store = web_server.vtm.store
    assert not store.list()
    page.press_until_changed(Keys.ENTER)  # the task list -> the form's first field, epochs
    # Focus arrives with the field's text selected: typing replaces it. (No backspaces: Textual
    # may run a burst's backspace binding after the next printable key, under load.)
    page.type("9999")
    page.settled()
    page.press(Keys.CONTROL, "l")
    wait_until(lambda: [run for run in store.list() if run.status == "running"], 60, "the launched run to start")
    [run] = json.loads(web_server.vtm.run("runs", "--json", check=True).stdout)  # `vtm runs` lists it
    assert (run["task"], run["status"], run["field_values"]["epochs"]) == ("fake", "running", 9999)

    # Closing the page ends its app; the run goes on (its supervisor is detached).
    browser.get("about:blank")
    wait_until(lambda: not web_server.app_processes(), 30, "the closed page's app process to exit")
    epoch = store.get(run["id"]).progress.get("epoch", 0)
    later = web_server.vtm.wait_for(run["id"], lambda r: r.progress.get("epoch", 0) > epoch + 2, timeout=60)
    assert later.status == "running", later
    assert web_server.vtm.run("runs", "cancel", str(run["id"]), "--wait", timeout=60).returncode == 0


@pytest.mark.parametrize("headers, path", [
    ({"Host": "evil.example"}, "/"),  # DNS rebinding: a foreign name for our loopback port
    ({"Host": "127.0.0.1", "Origin": "http://evil.example", "Connection": "Upgrade", "Upgrade": "websocket",
      "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, "/ws"),
])
def test_foreign_pages_are_refused(web_server, headers, path):
    request = urllib.request.Request(web_server.url.rstrip("/") + path, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
