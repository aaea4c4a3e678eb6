"""The MLflow key of every TensorBoard tag of a run, decided once for the whole run and kept.

A tag becomes `events.mlflow_key(tag, flatten)`: `/` to `_` with --flatten-tags, characters
MLflow refuses to `_`. Two tags must never land in one key (MLflow would hold two series as
one), so the keys of a run are assigned together, from every tag its event files hold:

1. a tag that is its own key (nothing to change) keeps it;
2. a changed tag takes its key when no other tag of the run wants it;
3. the others are made distinct: the tag unflattened (`val/loss` beside a `val_loss` tag, with
   --flatten-tags) when that is free, else the key and 8 hex digits of the tag's sha1.

Tags are taken in sorted order, so the same tags give the same keys whatever order they were
written in. The keys of changed tags are recorded in the run's tags (`vtm.tb_import.keys.<n>`,
JSON, in pieces below MLflow's 8000 characters a tag value) before any point goes out: a later
import of the grown log keeps them and gives only new tags new keys, so nothing once imported
under one key ever continues under another.
"""
from __future__ import annotations

import hashlib
import json

from vtm_tui.core.tensorboard.events import MAX_KEY_LENGTH, mlflow_key

KEYS_TAG = "vtm.tb_import.keys."
MAX_KEYS_TAG_CHARS = 7000  # MLflow keeps 8000 characters of a tag value

FLATTENED, RENAMED, DISTINCT = "flattened", "renamed", "made distinct"


def recorded_keys(run_tags: dict[str, str]) -> dict[str, str]:
    """The tag -> key map an earlier import recorded in these run tags ({} for none, and for
    pieces that do not read as JSON objects of strings)."""
    found: dict[str, str] = {}
    for name in sorted((n for n in run_tags if n.startswith(KEYS_TAG) and n[len(KEYS_TAG):].isdigit()),
                       key=lambda n: int(n[len(KEYS_TAG):])):
        try:
            piece = json.loads(run_tags[name])
        except ValueError:
            continue
        if isinstance(piece, dict):
            found.update({k: v for k, v in piece.items() if isinstance(k, str) and isinstance(v, str)})
    return found


def keys_tags(keys: dict[str, str]) -> dict[str, str]:
    """The run tags that record a tag -> key map: `vtm.tb_import.keys.0`, `.1`, ... each a JSON
    object of at most MAX_KEYS_TAG_CHARS characters (the map in sorted order)."""
    tags: dict[str, str] = {}
    piece: dict[str, str] = {}
    size = 2
    for tag, key in sorted(keys.items()):
        entry = len(json.dumps({tag: key})) - 1
        if piece and size + entry > MAX_KEYS_TAG_CHARS:
            tags[f"{KEYS_TAG}{len(tags)}"] = json.dumps(piece, separators=(",", ":"))
            piece, size = {}, 2
        piece[tag] = key
        size += entry
    if piece:
        tags[f"{KEYS_TAG}{len(tags)}"] = json.dumps(piece, separators=(",", ":"))
    return tags


def change_of(tag: str, key: str, flatten: bool) -> str:
    """What became of a tag: '' (kept), FLATTENED (only `/` -> `_`), RENAMED (characters MLflow
    refuses), DISTINCT (another tag has the key it would have had)."""
    natural = mlflow_key(tag, flatten)
    if key != natural:
        return DISTINCT  # also a tag kept unflattened because its flat key is another tag's
    if key == tag:
        return ""
    return FLATTENED if flatten and natural == tag.replace("/", "_") else RENAMED


def assign_keys(tags, flatten: bool, fixed: dict[str, str] | None = None) -> dict[str, str]:
    """tag -> MLflow key for every tag (see the module docstring). fixed: keys given earlier
    (recorded_keys), kept as they are and never given to another tag."""
    keys = dict(fixed or {})
    taken = set(keys.values())
    todo = sorted(set(tags) - set(keys))
    natural = {tag: mlflow_key(tag, flatten) for tag in todo}
    wanted: dict[str, int] = {}
    for key in natural.values():
        wanted[key] = wanted.get(key, 0) + 1
    for tag in todo:  # 1. own names
        if natural[tag] == tag and tag not in taken:
            keys[tag] = tag
            taken.add(tag)
    for tag in todo:  # 2. changed tags that no other tag competes with
        if tag not in keys and wanted[natural[tag]] == 1 and natural[tag] not in taken:
            keys[tag] = natural[tag]
            taken.add(natural[tag])
    for tag in todo:  # 3. the rest, made distinct
        if tag not in keys:
            keys[tag] = _distinct(tag, natural[tag], flatten, taken | set(natural.values()))
            taken.add(keys[tag])
    return keys


def add_key(keys: dict[str, str], tag: str, flatten: bool) -> str:
    """Give one tag that turned up late (a file that grew while it was read) a key that no tag
    in `keys` has, by the same rules; keys is updated."""
    keys.update(assign_keys([tag], flatten, keys))
    return keys[tag]


def _distinct(tag: str, natural: str, flatten: bool, taken: set[str]) -> str:
    if flatten:
        unflattened = mlflow_key(tag, False)
        if unflattened not in taken:
            return unflattened
    digest = hashlib.sha1(tag.encode()).hexdigest()
    for width in range(8, 41, 4):
        key = f"{natural[:MAX_KEY_LENGTH - width - 1]}-{digest[:width]}"
        if key not in taken:
            return key
    raise ValueError(f"no free MLflow key for tag {tag!r}")  # 40 hex digits of sha1 taken: never
