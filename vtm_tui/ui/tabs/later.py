"""Base of the tabs whose screens come in a later release: they say so, and list the headless
`vtm` commands that already do the job. The list is read from the real CLI parser, so it can
neither go stale nor promise a command that does not exist."""
from __future__ import annotations

import argparse

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static, TabPane


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def headless_commands(names: tuple[str, ...]) -> list[str]:
    """`vtm NAME ...` for each of `names` that the CLI has today. Only the command names:
    their actions grow release by release, and `vtm NAME --help` always has the full list."""
    from vtm_tui.cli import build_parser

    commands = _subcommands(build_parser())
    lines = []
    for name in names:
        if name in commands:
            has_actions = bool(_subcommands(commands[name]))
            lines.append(f"vtm {name}{' ACTION' if has_actions else ''} ...   (see vtm {name} --help)")
    return lines


class LaterPane(TabPane):
    TITLE = ""
    PANE_ID = ""
    COMING = ""  # what the tab will do
    COMMANDS: tuple[str, ...] = ()  # CLI commands that do (part of) it headless

    def __init__(self, settings=None, sources=None) -> None:  # the same signature as real tabs
        super().__init__(self.TITLE, id=self.PANE_ID)
        self.tab_title = self.TITLE

    def compose(self) -> ComposeResult:
        text = Text.assemble((self.TITLE, "bold"), "\n\n", self.COMING,
                             "\nThis tab is coming in a later release.\n\n",
                             ("Headless commands available now:\n", "bold"))
        commands = headless_commands(self.COMMANDS)
        for command in commands:
            text.append(f"  {command}\n", "cyan")
        if not commands:
            text.append("  none yet; `vtm --help` lists every command.\n", "dim")
        with VerticalScroll(classes="later-scroll"):
            yield Static(text, classes="later-text")

    def focus_default(self) -> None:
        self.query_one(VerticalScroll).focus()
