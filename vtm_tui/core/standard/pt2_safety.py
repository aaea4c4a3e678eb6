"""Is a .pt2 archive free of pickle payloads? The check that runs before every `torch.export.load`.

`torch.export.load` unpickles with weights_only=False whatever the archive marks as pickled
(weights or constants with `use_pickle: true`, `custom_obj_*` and `opaque_obj_*` constants, and
sample inputs when the safe unpickler refuses them) and dlopens bundled AOTInductor libraries:
a crafted archive runs code on load. So, before loading, every record must be one of

- a short text record (version, archive_format, archive_version, byteorder, serialization_id)
  whose content is `[A-Za-z0-9._-]{1,64}` with at most one newline;
- UTF-8 JSON (the graph, the payload configs, vtm's spec);
- a raw tensor record (`weight_*` / `tensor_*`) that a `data/(weights|constants)/*_config.json`
  marks `use_pickle: false` and no config entry marks pickled;
- a torch.save zip whose pickles reference no global added with
  `torch.serialization.add_safe_globals` (a static pickletools scan) and that loads with
  `torch.load(weights_only=True)`;

anything else refuses the archive (UnsafeProgram). This is the rule MLflow 3.17 applies before
loading a pt2 model (mlflow/pytorch/__init__.py, `_validate_pt2_archive_is_pickle_free`), written
again here because importing mlflow.pytorch takes seconds and that function is private.
Archive layout: torch/export/pt2_archive (PT2 archive format).
"""
from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from pathlib import Path

from vtm_tui.core.standard.checkpoint import CheckpointError

TEXT_RECORD_NAMES = frozenset({"version", "archive_format", "archive_version", "byteorder", "serialization_id"})
TEXT_RECORD_CONTENT = re.compile(r"[A-Za-z0-9._-]{1,64}\n?")
PAYLOAD_CONFIG_RECORD = re.compile(r"(?:^|/)data/(?:weights|constants)/[^/]+_config\.json$")
RAW_TENSOR_PREFIXES = ("weight_", "tensor_")
_STRING_OPCODES = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
                             "BINUNICODE", "BINUNICODE8"})
_MEMO_OPCODES = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


class UnsafeProgram(CheckpointError):
    """A .pt2 archive with a record that could run code when torch.export.load reads it."""


def _json(content: bytes) -> tuple[bool, object]:
    try:
        return True, json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def raw_tensor_records(configs: list[tuple[str, bytes]]) -> set[str]:
    """The records the payload configs, (record name, content) pairs, mark as raw tensor bytes
    (use_pickle false, a weight_ or tensor_ name) and that no entry of any config marks pickled."""
    raw, pickled = set(), set()
    for name, content in configs:
        ok, config = _json(content)
        if not ok or not isinstance(config, dict) or not isinstance(config.get("config"), dict):
            continue
        folder = name.rsplit("/", 1)[0]
        for entry in config["config"].values():
            path_name = entry.get("path_name") if isinstance(entry, dict) else None
            if not isinstance(path_name, str) or "/" in path_name:
                continue
            record = f"{folder}/{path_name}"
            if entry.get("use_pickle") is False and path_name.startswith(RAW_TENSOR_PREFIXES):
                raw.add(record)
            else:
                pickled.add(record)
    return raw - pickled


def pickle_globals(data: bytes) -> set[str]:
    """The `module.name` globals a pickle stream references, found without unpickling it;
    ValueError when a STACK_GLOBAL operand is not a literal (the caller fails closed)."""
    found: set[str] = set()
    strings: list[str] = []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, name = arg.split(" ", 1)
            found.add(f"{module}.{name}")
        elif opcode.name == "STACK_GLOBAL":
            if len(strings) < 2:
                raise ValueError("STACK_GLOBAL operands are not string literals")
            found.add(f"{strings[-2]}.{strings[-1]}")
            strings = []
        elif opcode.name in _STRING_OPCODES:
            strings.append(arg)
        elif opcode.name not in _MEMO_OPCODES:
            strings = []
    return found


def _user_safe_globals(torch) -> set[str]:
    names = set()
    for entry in torch.serialization.get_safe_globals():
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str):
            names.add(entry[1])
        else:
            names.add(f"{entry.__module__}.{entry.__qualname__}")
    return names


def _tensor_zip_is_safe(content: bytes, torch, user_globals: set[str]) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as inner:
            pickles = [n for n in inner.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
            if not pickles or any(pickle_globals(inner.read(n)) & user_globals for n in pickles):
                return False
        torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    # a record zipfile cannot read (bad CRC, encrypted, a compression it lacks) refuses the archive
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, ValueError, OSError,
            EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsafeProgram(f"{path}: record {info.filename} cannot be read ({reason}); the .pt2 archive is "
                            f"damaged or not torch's: export or download it again") from None


def unsafe_records(path: str | Path) -> list[str]:
    """The names of the archive's records that fail the rule (see the module docstring); [] for
    a pickle-free archive. UnsafeProgram when the file is not a zip archive at all, when a record
    cannot be read (bad CRC, encrypted, unsupported compression) or when two records share a name
    (torch never writes one; readers disagree on which one counts)."""
    import torch

    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise UnsafeProgram(f"{path}: not a .pt2 archive ({exc})") from None
    bad = []
    user_globals = _user_safe_globals(torch)
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                raise UnsafeProgram(f"{path}: refused: record {info.filename} appears twice in the archive "
                                    f"(torch never writes one; a reader could take either)")
            seen.add(info.filename)
        configs = [(i.filename, _read(archive, i, path)) for i in infos if PAYLOAD_CONFIG_RECORD.search(i.filename)]
        raw = raw_tensor_records(configs)
        for info in infos:
            if info.filename in raw:
                continue
            content = _read(archive, info, path)  # one record at a time
            if info.filename.rsplit("/", 1)[-1] in TEXT_RECORD_NAMES and TEXT_RECORD_CONTENT.fullmatch(
                    content.decode("ascii", errors="replace")):
                continue
            if _json(content)[0] or _tensor_zip_is_safe(content, torch, user_globals):
                continue
            bad.append(info.filename)
    return bad


def check_pt2_archive(path: str | Path) -> None:
    """UnsafeProgram (one line naming the first offending records) unless the archive passes the
    rule; nothing in the archive is unpickled or run while checking."""
    bad = unsafe_records(path)
    if bad:
        shown = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
        raise UnsafeProgram(f"{path}: refused: record {shown} is not plain metadata or tensors (it could run code "
                            f"when loaded); vtm loads only pickle-free .pt2 archives, as MLflow does")
