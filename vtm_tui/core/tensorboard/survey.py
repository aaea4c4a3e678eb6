"""The folders of a log root that hold event files, and a look at each before anything is
sent: which scalar tags it holds (so that keys.py can give every tag its key at once), whether
it holds hparams, what it holds that is no scalar, and whether an earlier import already took
all of it."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vtm_tui.core.tensorboard.state import FILE_TAG, digest

EVENT_FILE = re.compile(r"tfevents")
_FILE_TIME = re.compile(r"tfevents\.(\d+(?:\.\d+)?)")


def _file_order(name: str):
    match = _FILE_TIME.search(name)
    return (float(match.group(1)) if match else float("inf"), name)


def find_event_dirs(root: Path) -> dict[str, list[Path]]:
    """Relative directory path ('.' for root) -> its event files, in the order they were written
    (the timestamp in the file name, then the name)."""
    found: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = [name for name in filenames if EVENT_FILE.search(name)
                 and os.path.isfile(os.path.join(dirpath, name))]
        if names:
            rel = os.path.relpath(dirpath, root)
            found[rel] = [Path(dirpath, name) for name in sorted(names, key=_file_order)]
    return dict(sorted(found.items()))


def file_size(path: Path) -> int:
    """The size of a file in bytes, 0 when it cannot be read."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass
class Survey:
    """What the event files of one folder hold: `tags` (scalar tags), `params` (hparams seen),
    `left_out` ((tag, plugin) -> values that are no scalars), `records` read."""
    tags: set[str] = field(default_factory=set)
    params: bool = False
    left_out: dict[tuple[str, str], int] = field(default_factory=dict)
    records: int = 0

    @property
    def importable(self) -> bool:
        """True when there is anything to import (a scalar or an hparam)."""
        return bool(self.tags) or self.params

    def describe_left_out(self) -> str:
        """`images: 3 values of 'samples', histograms: 2 values of 'w'` (or 'no values at all')."""
        if not self.left_out:
            return "no values at all"
        return ", ".join(f"{plugin}: {count} value{'s' if count != 1 else ''} of '{tag}'"
                         for (tag, plugin), count in sorted(self.left_out.items()))


def survey(paths: list[Path]) -> Survey:
    """Read the event files of one folder (intact records only; damage is the import's to
    report) and tell what they hold."""
    from vtm_tui.core.tensorboard.events import EventDecoder
    from vtm_tui.core.tensorboard.tfrecord import read_records

    found = Survey()
    decoder = EventDecoder()
    for path in paths:
        try:
            for _start, _end, data, damage in read_records(path):
                if damage is not None:
                    if damage.truncated:
                        break
                    continue
                found.records += 1
                try:
                    decoded = decoder.decode(data)
                except Exception:  # an intact record that is no Event: the import reports it
                    continue
                if decoded is not None:
                    _wall, _step, values, params = decoded
                    found.tags.update(key for key, _ in values)
                    found.params = found.params or bool(params)
        except OSError:
            continue  # unreadable: the import reports it
    found.left_out = decoder.left_out
    return found


def all_imported(run_tags: dict[str, str], paths: list[Path]) -> bool:
    """True when the run's position tags say every one of these files was imported to its end
    (nothing new to read: no survey needed)."""
    from vtm_tui.core.tensorboard.tfrecord import first_record

    for path in paths:
        try:
            head = first_record(path)
            size = path.stat().st_size
        except OSError:
            return False
        state = run_tags.get(FILE_TAG + digest(path.name, head)[:16]) if head else None
        try:
            if state is None or int(json.loads(state)["offset"]) != size:
                return False
        except (ValueError, KeyError, TypeError):
            return False
    return True
