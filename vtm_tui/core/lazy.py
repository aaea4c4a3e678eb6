"""Package surfaces that cost nothing to import: a package's public names, each imported from its
submodule on first use (PEP 562 module `__getattr__`).

For packages on a start-up path: the TUI's first frame imports runs.store and
serving.predict_io, the run supervisor imports core.runs, a status line imports tracking.server;
importing those must not import the rest of their package.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: exports maps a submodule's name to the public names
    it provides; any other name is an AttributeError."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return __getattr__
