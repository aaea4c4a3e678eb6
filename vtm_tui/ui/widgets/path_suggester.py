"""Filesystem path completion for an Input: `Input(suggester=PathSuggester(base))`.

As in a shell: the typed path's last part is completed from its folder's entries, a folder
gets a trailing `/`, several matches complete to their common prefix (or, when that adds
nothing, to the first match). Relative paths start at `base` (vtm's working directory, not
the process's), `~` at the home folder. The folder is listed in a thread: the event loop
never waits on a slow or dead mount. `PathInput` also takes the completion with tab.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input

MAX_ENTRIES = 5000  # a huge folder is not read to the end for one suggestion


def complete_path(value: str, base: str | os.PathLike, *, suffixes: Iterable[str] | None = None,
                  dirs_only: bool = False) -> str | None:
    """The completed `value`, or None when nothing (new) matches. Blocking: lists a folder."""
    if not value:
        return None
    if value == "~":
        return "~/"
    head, sep, prefix = value.rpartition("/")
    folder_text = head + sep
    folder = Path(os.path.expanduser(folder_text or "."))
    if not folder.is_absolute():
        folder = Path(base) / folder
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    matches: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_ENTRIES:
                    break
                name = entry.name
                if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if is_dir:
                    matches.append(name + "/")
                elif not dirs_only and (wanted is None or name.lower().endswith(wanted)):
                    matches.append(name)
    except OSError:
        return None
    if not matches:
        return None
    matches.sort()
    common = os.path.commonprefix(matches)
    completion = common if len(common) > len(prefix) else matches[0]
    return None if completion == prefix else folder_text + completion


class PathSuggester(Suggester):
    def __init__(self, base: str | os.PathLike, *, suffixes: Iterable[str] | None = None,
                 dirs_only: bool = False) -> None:
        # No cache: files come and go while the dialog is open. Case-sensitive: paths are.
        super().__init__(use_cache=False, case_sensitive=True)
        self.base, self.suffixes, self.dirs_only = Path(base), tuple(suffixes or ()), dirs_only

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value, self.base, suffixes=self.suffixes or None,
                                       dirs_only=self.dirs_only)


class PathInput(Input):
    """An Input for paths: tab takes the shown completion (→ does too), else moves on."""

    BINDINGS = [Binding("tab", "complete", "Complete path", show=False, id="path_input.complete")]

    def action_complete(self) -> None:
        suggestion = getattr(self, "_suggestion", "")  # Input keeps the shown completion here
        if self.cursor_at_end and suggestion and suggestion != self.value:
            self.action_cursor_right()
        else:
            self.screen.focus_next()
