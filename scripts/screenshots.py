"""Render the README's screenshots: one SVG per tab, plus the full-screen log, on the pinned
demo world of vtm_tui/ui/demo/world.py (a run mid-training, fixed clock and server status).

    python scripts/screenshots.py [--out screenshots] [--size 120x40]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vtm_tui.ui.app import VtmApp  # noqa: E402
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
}


async def shoot(name: str, keys: list[str], out: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "screenshots"))
    parser.add_argument("--size", default="120x40", help="terminal size, COLSxROWS")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols, rows = (int(part) for part in args.size.lower().split("x"))
    for name, keys in SHOTS.items():
        asyncio.run(shoot(name, keys, out, (cols, rows)))
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
