"""Render the README's screenshots: one SVG per tab, plus the full-screen log and the host view, on the pinned
demo world of vtm_tui/ui/demo/world.py (a run mid-training, fixed clock and server status).
With --web, also the browser view (web.png): the same demo served by `vtm web`'s gateway and
photographed by headless Chromium (Debian's chromium + chromium-driver, Selenium).

    python scripts/screenshots.py [--out screenshots] [--size 120x40] [--web]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtm_tui.ui.app import VtmApp  # noqa: E402
from vtm_tui.ui.demo.pinned_host import show_host  # noqa: E402
from vtm_tui.ui.demo.pinned_mlflow import show_mlflow_ops, with_demo_mlflow  # noqa: E402
from vtm_tui.ui.demo.pinned_registry import fill_demo_registry  # noqa: E402
from vtm_tui.ui.demo.pinned_serving import show_serving, with_serving  # noqa: E402
from vtm_tui.ui.demo.world import make_demo, until  # noqa: E402
from vtm_tui.ui.tabs.launcher.pane import LauncherPane  # noqa: E402
from vtm_tui.ui.tabs.registry.pane import RegistryPane  # noqa: E402
from vtm_tui.ui.tabs.runs.pane import RunsPane  # noqa: E402
from vtm_tui.ui.widgets.log_tail import LogTail, SearchLog  # noqa: E402

# file name -> keys pressed (or pilot coroutines run) once the demo is loaded
SHOTS = {
    "launcher.svg": ["1"],
    "runs.svg": ["2"],
    "runs-log-search.svg": ["2", "l", "slash", *"val_accuracy", "enter", "n"],
    "mlflow-ops.svg": [show_mlflow_ops],
    "registry.svg": ["4"],
    "serving.svg": [show_serving],
    "host.svg": [show_host],
}


async def shoot(name: str, keys: list[str], out: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        settings, sources = make_demo(Path(folder))
        fill_demo_registry(settings)
        app = VtmApp(settings, with_serving(with_demo_mlflow(sources)))
        async with app.run_test(size=size) as pilot:
            form = app.query_one(LauncherPane).form
            runs = app.query_one(RunsPane)
            # The Runs tab mounts just after the first frame: query it anew each time.
            await until(pilot, lambda: form.rows and runs.charted and any(log.lines for log in app.query(LogTail)),
                        "the demo to load")
            for key in keys:
                if callable(key):
                    await key(pilot)
                    continue
                await pilot.press(key)
                await pilot.pause(0.1)
            if "4" in keys:
                await until(pilot, lambda: app.query_one(RegistryPane).settled, "the demo registry")
            if app.screen.query(SearchLog):
                await until(pilot, lambda: app.screen.query_one(SearchLog).lines, "the full-screen log")
            await pilot.pause(0.3)
            app.save_screenshot(name, str(out))


def shoot_browser(command: list[str], path: Path, keys: str = "2", window: tuple[int, int] = (1280, 800)) -> Path:
    """Serve `command` through vtm web's gateway on a free loopback port, open it in headless
    Chromium, press `keys` (2: the Runs tab, a run mid-training), save the page as a PNG."""
    import os
    import shutil
    import socket
    import threading

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from vtm_tui.commands.web_gateway import serve
    from vtm_tui.core.web import bind_address

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["TEXTUAL_ANIMATIONS"] = "none"  # the apps inherit it: no picture mid-slide
    stop, bound = threading.Event(), threading.Event()
    server = threading.Thread(target=serve, args=(bind_address("127.0.0.1", port), command),
                              kwargs={"stop": stop, "on_bound": bound.set, "title": "vtm"}, daemon=True)
    server.start()
    if not bound.wait(30):
        raise SystemExit("the web server did not start")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--force-device-scale-factor=1",
                     f"--window-size={window[0]},{window[1]}",
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # nothing from outside
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 60
        while "-first-byte" not in (driver.find_element("tag name", "body").get_attribute("class") or ""):
            if time.monotonic() > deadline:
                raise SystemExit("the demo app did not start in the browser")
            time.sleep(0.2)
        before = _settle(driver)
        for key in keys:
            for _ in range(3):  # a key pressed while the app still starts up may go unseen
                driver.find_element("css selector", "textarea.xterm-helper-textarea").send_keys(key)
                after = _settle(driver)
                if after != before:
                    break
            before = after
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
        stop.set()
        server.join(30)
    return path


def _settle(driver, quiet: float = 1.0, timeout: float = 30.0) -> bytes:
    """The page's picture (PNG) once it has looked the same for `quiet` seconds."""
    last, since, deadline = b"", time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        shot = driver.get_screenshot_as_png()
        if shot != last:
            last, since = shot, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.2)
    return last


def run_demo_app() -> int:
    """The pinned demo as a plain app run (what each browser tab of the --web shot runs)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        settings, sources = make_demo(Path(folder))
        fill_demo_registry(settings)
        VtmApp(settings, with_serving(with_demo_mlflow(sources))).run()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "screenshots"))
    parser.add_argument("--size", default="120x40", help="terminal size, COLSxROWS")
    parser.add_argument("--web", action="store_true", help="also the browser view, web.png (needs chromium)")
    parser.add_argument("--demo-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.demo_app:
        return run_demo_app()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols, rows = (int(part) for part in args.size.lower().split("x"))
    for name, keys in SHOTS.items():
        asyncio.run(shoot(name, keys, out, (cols, rows)))
        print(out / name)
    if args.web:
        print(shoot_browser([sys.executable, str(Path(__file__).resolve()), "--demo-app"], out / "web.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
