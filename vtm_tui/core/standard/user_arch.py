"""Building a user's network from `MODULE_OR_FILE:CALLABLE` and keyword arguments.

    torchvision.models:resnet50          an importable module (the working directory is on the path)
    ./models.py:UNet                     a file of the user's own tree (relative to base_dir)
    src/nets.py:factories.make_unet      a dotted attribute path inside the module
    SmallCNN, TinySegNet                 vtm's own example architectures

This runs the user's code (importing their module, calling their constructor): it happens at
conversion time, on the machine of the user who asked for it, and never when a standard program
is loaded. A file is imported under a private module name with its own folder on sys.path while
it executes, so its sibling imports (`from blocks import ...`) work as they do in train.py.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from vtm_tui.core.standard.checkpoint import clean
from vtm_tui.errors import UserError

EXAMPLES = ("SmallCNN", "TinySegNet")


class ArchitectureError(UserError):
    """An architecture reference that cannot be imported, found or called (exit code 2)."""


def is_example(ref: str | None) -> bool:
    """True for the name of one of vtm's example architectures."""
    return ref in EXAMPLES


def split_ref(ref: str) -> tuple[str, str]:
    """`MODULE_OR_FILE:CALLABLE` -> (module or file, callable path); ArchitectureError otherwise.
    The last colon splits, so a Windows drive letter in the file part survives."""
    where, _, name = ref.rpartition(":")
    if not where or not name or not all(part.isidentifier() for part in name.split(".")):
        raise ArchitectureError(f"--arch {ref!r}: expected MODULE_OR_FILE:CALLABLE, e.g. "
                                f"torchvision.models:resnet50 or ./models.py:UNet")
    return where, name


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


@contextmanager
def _on_path(folder: Path):
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


def _import(where: str, base_dir: Path, ref: str):
    if _is_file(where):
        path = Path(where).expanduser()
        path = (path if path.is_absolute() else base_dir / path).resolve()
        if not path.is_file():
            raise ArchitectureError(f"--arch {ref!r}: no such file {path}")
        name = "vtm_user_arch_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up by name
        try:
            with _on_path(path.parent):
                spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(name, None)
            raise ArchitectureError(f"--arch {ref!r}: importing {path} failed: "
                                    f"{type(exc).__name__}: {clean(exc, 200)}") from None
        return module
    try:
        with _on_path(base_dir):
            return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ArchitectureError(f"--arch {ref!r}: cannot import {where!r} ({clean(exc, 200)}); "
                                f"install it, or name a file (./models.py:Net)") from None
    except Exception as exc:
        raise ArchitectureError(f"--arch {ref!r}: importing {where!r} failed: "
                                f"{type(exc).__name__}: {clean(exc, 200)}") from None


def load_callable(ref: str, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """The callable `ref` names (see the module docstring); ArchitectureError when the module
    or file cannot be imported or has no such callable."""
    where, name = split_ref(ref)
    target: Any = _import(where, Path(base_dir or Path.cwd()), ref)
    for part in name.split("."):
        if not hasattr(target, part):
            raise ArchitectureError(f"--arch {ref!r}: {where} has no {name!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ArchitectureError(f"--arch {ref!r}: {name} is not callable")
    return target


def build_network(ref: str, kwargs: dict | None = None, *, num_classes: int | None = None,
                  image_size: int | None = None, base_dir: str | Path | None = None):
    """A fresh torch.nn.Module: `CALLABLE(**kwargs)` for `MODULE_OR_FILE:CALLABLE`, or an example
    architecture (which needs num_classes; image_size defaults to 32). num_classes is passed
    to a callable that takes a `num_classes` parameter when kwargs do not set it.
    ArchitectureError when it cannot be built or does not return a module."""
    from torch import nn

    kwargs = dict(kwargs or {})
    if is_example(ref):
        from vtm_tui.core.standard.architectures import build_model

        classes = kwargs.get("num_classes", num_classes)
        if classes is None:
            raise ArchitectureError(f"{ref} needs the number of classes: give --num-classes")
        return build_model(ref, int(classes), int(kwargs.get("image_size", image_size or 32)))
    factory = load_callable(ref, base_dir)
    if num_classes is not None and "num_classes" not in kwargs:
        try:
            if "num_classes" in inspect.signature(factory).parameters:
                kwargs["num_classes"] = int(num_classes)
        except (TypeError, ValueError):  # builtins and C callables may have no signature
            pass
    try:
        model = factory(**kwargs)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ArchitectureError(f"--arch {ref!r}: {split_ref(ref)[1]}({shown}) failed: "
                                f"{type(exc).__name__}: {clean(exc, 200)}") from None
    if not isinstance(model, nn.Module):
        raise ArchitectureError(f"--arch {ref!r}: returned {type(model).__name__}, not a torch.nn.Module")
    return model
