"""Reading checkpoints the way people save them, without running anything in them.

Reading is `torch.load(weights_only=True)` on CPU, always: a checkpoint that needs arbitrary
unpickling (a pickled module, an argparse.Namespace, a `__reduce__` payload) is refused with
UnsafeCheckpoint and never retried unsafely. One exception, because every real Lightning project
writes them: a Lightning `.ckpt` whose hyper-parameters hold objects the weights_only unpickler
refuses (a pathlib.Path, a numpy scalar). Those globals are found statically
(`torch.serialization.get_unsafe_globals_in_checkpoint`, nothing imported) and read as inert
stand-ins that keep their arguments and call nothing; the weights come back as tensors, and the
stand-ins' names are reported. Any other file that needs them is refused as before.

Unwrapping: the state dict is the object itself or sits under one of the usual nesting keys
(STATE_DICT_KEYS: state_dict, model_state_dict, model, net, ema, ...; Lightning's is
`state_dict`). `fit_state_dict` then strips a prefix that every key shares (`module.` of
DataParallel/DDP, `_orig_mod.` of torch.compile, `model.` of a LightningModule attribute) or
keeps the keys under the prefix that fits, loads strictly, and names whatever is still missing or
unexpected.

Format: what `torch.save` writes, a zip archive of a pickle and tensor storages
(https://pytorch.org/docs/stable/notes/serialization.html); `weights_only` restricts the
unpickler to tensors and plain containers (https://pytorch.org/docs/stable/generated/torch.load.html);
Lightning's checkpoint keys: https://lightning.ai/docs/pytorch/stable/common/checkpointing_basic.html
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtm_tui.errors import UserError

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "ema", "model_ema",
                   "state_dict_ema", "ema_state_dict", "weights", "params")
LIGHTNING_KEY = "pytorch-lightning_version"
_STUB_LOCK = threading.Lock()  # torch's safe_globals context is process-wide while it is open


class CheckpointError(UserError):
    """A checkpoint that cannot be read or does not fit the model (exit code 2)."""


class UnsafeCheckpoint(CheckpointError):
    """Reading the file would execute or construct arbitrary Python objects."""


def clean(text: Any, limit: int = 300) -> str:
    """`text` on one line (control characters folded), cut to `limit` characters."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _unpickling_reason(exc: Exception) -> str:
    """The line of torch's message that names what was refused, without its advice to retry
    with weights_only=False."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation"))
              and "weights_only" not in line]
    return clean(useful[0] if useful else "unsupported content", 200)


def _refused(path: Path, exc: Exception) -> UnsafeCheckpoint:
    return UnsafeCheckpoint(
        f"{path}: refused: it holds Python objects that only a full unpickling could rebuild "
        f"({_unpickling_reason(exc)}), and vtm never loads with weights_only=False. Re-save it "
        f"with tensors and plain values only, e.g. torch.save({{'state_dict': model.state_dict(), ...}})")


def safe_load(path: str | Path, *, mmap: bool = False) -> Any:
    """torch.load(weights_only=True) on CPU. CheckpointError for a missing or unreadable file
    (a TorchScript archive included), UnsafeCheckpoint when more than tensors and plain values
    would have to be unpickled."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if mmap and "mmap" in str(exc):  # legacy (non-zip) format cannot be mapped
                return torch.load(path, map_location="cpu", weights_only=True)
            raise
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a refused object: a damaged or foreign file
            raise CheckpointError(f"{path}: not a readable torch file ({_unpickling_reason(exc)})") from None
        raise _refused(path, exc) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable torch file ({clean(exc)})") from None


class _Opaque:
    """Stands in for a global the weights_only unpickler refuses: keeps its name and arguments,
    calls nothing."""
    refused_name = "?"

    def __new__(cls, *args, **kwargs):
        made = object.__new__(cls)
        made.args = args
        return made

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<not loaded: {self.refused_name}>"


@dataclass
class Checkpoint:
    """A checkpoint read safely: the loaded object, and the refused globals that were read as
    inert stand-ins (a Lightning .ckpt's hyper-parameters; empty for every other file)."""
    path: Path
    obj: Any
    stand_ins: list[str] = field(default_factory=list)

    @property
    def is_lightning(self) -> bool:
        """True for a pytorch-lightning checkpoint (it has `pytorch-lightning_version`)."""
        return isinstance(self.obj, dict) and LIGHTNING_KEY in self.obj


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Checkpoint:
    """safe_load, plus Lightning's .ckpt with refused objects among its hyper-parameters (see the
    module docstring). UnsafeCheckpoint for any other file that needs them."""
    import torch

    path = Path(path)
    try:
        return Checkpoint(path, safe_load(path, mmap=mmap))
    except UnsafeCheckpoint as refusal:
        try:
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # not a zip checkpoint: nothing more to try
            raise refusal from None
        stand_ins = [(type("Opaque", (_Opaque,), {"refused_name": name}), name) for name in names]
        try:
            with _STUB_LOCK, torch.serialization.safe_globals(stand_ins):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise refusal from None
        checkpoint = Checkpoint(path, obj, names)
        if not checkpoint.is_lightning or not is_state_dict(obj.get("state_dict")):
            raise refusal from None
        return checkpoint


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty dict of str -> torch.Tensor."""
    import torch

    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def find_state_dict(obj: Any, where: str = "checkpoint") -> tuple[dict, str]:
    """(the state dict of a loaded checkpoint, the key path it was under, "" for the object
    itself): the object, else the first of STATE_DICT_KEYS holding one, one level deeper too
    ({"model": {"state_dict": ...}}). CheckpointError otherwise."""
    if is_state_dict(obj):
        return obj, ""
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if is_state_dict(obj.get(key)):
                return obj[key], key
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict):
                for sub in STATE_DICT_KEYS:
                    if is_state_dict(inner.get(sub)):
                        return inner[sub], f"{key}.{sub}"
    keys = ", ".join(repr(k) for k in list(obj)[:8]) if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(f"{where}: no state dict found (a dict of tensors, or one under "
                          f"{', '.join(STATE_DICT_KEYS[:5])}, ...; the file holds {keys})")


@dataclass
class FitReport:
    """How a state dict was made to fit a model: the prefix stripped from every key ("" none),
    and the keys left out because they sit outside that prefix (e.g. a Lightning module's loss
    weights next to `model.*`)."""
    prefix: str = ""
    left_out: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What was changed, in words, for the conversion report."""
        notes = [f"stripped the key prefix {self.prefix!r}"] if self.prefix else []
        if self.left_out:
            more = len(self.left_out) - 5
            shown = ", ".join(self.left_out[:5]) + (f" (+{more} more)" if more > 0 else "")
            notes.append(f"left out {len(self.left_out)} keys outside {self.prefix!r}: {shown}")
        return notes


def _candidates(state: dict) -> list[tuple[str, dict, list[str]]]:
    """(prefix, keys under it with the prefix stripped, keys left out) for every dotted prefix
    path a group of keys shares, shortest first, starting with the state dict as it is."""
    found = [("", state, [])]
    frontier = [("", state)]
    while frontier:
        prefix, current = frontier.pop(0)
        heads = {key.split(".", 1)[0] for key in current if "." in key}
        for head in sorted(heads):
            inner = {key[len(head) + 1:]: value for key, value in current.items() if key.startswith(head + ".")}
            if len(prefix) > 60 or not inner:
                continue
            full = prefix + head + "."
            left_out = sorted(k for k in state if not k.startswith(full))
            found.append((full, inner, left_out))
            frontier.append((full, inner))
    return found


def fit_state_dict(model, state: dict, where: str = "checkpoint", model_name: str = "the model") -> FitReport:
    """Load `state` into `model` strictly, after choosing the key prefix that fits best (see the
    module docstring); returns what was changed. CheckpointError naming the missing, unexpected
    and mismatched keys when no choice fits."""
    wanted = model.state_dict()
    ranked = sorted(_candidates(state), key=lambda c: (-len(set(c[1]) & set(wanted)), len(c[2]), len(c[0])))
    prefix, chosen, left_out = ranked[0]
    missing = [k for k in wanted if k not in chosen]
    unexpected = [k for k in chosen if k not in wanted]
    mismatched = [f"{k} {tuple(chosen[k].shape)} vs {tuple(wanted[k].shape)}" for k in wanted
                  if k in chosen and tuple(chosen[k].shape) != tuple(wanted[k].shape)]
    if missing or unexpected or mismatched:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"missing {len(missing)}: {names(missing)}" if missing else "",
                 f"unexpected {len(unexpected)}: {names(unexpected)}" if unexpected else "",
                 f"shape mismatch {len(mismatched)}: {names(mismatched)}" if mismatched else ""]
        tried = f" (after stripping {prefix!r})" if prefix else ""
        raise CheckpointError(f"{where}: its weights do not fit {model_name}{tried}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(chosen, strict=True)
    return FitReport(prefix, left_out)
