"""What a prediction can be asked of: the one target grammar of `vtm predict TARGET` and the
Serving tab's target field.

    http://HOST:PORT, https://...     a model server: its /invocations        -> ServerTarget
    models:/NAME@ALIAS                the MLflow alias ALIAS (= registry stage): a running native
    NAME@STAGE[:VERSION], NAME         server for models:/NAME@ALIAS, else the registry bundle of NAME
                                       in that stage (bare NAME: stage release; VERSION pins a
                                       registry version, which only the bundle serves) -> ModelTarget
    models:/NAME/VERSION              exactly that model: only through a running server for exactly
    runs:/RUN_ID/PATH                  that URI                                -> PinnedTarget
    ./model.pt2, dir/, /abs/path,     a local model file or pulled bundle folder, run here: any path
    x.pt2 | .pt | .pth | .ckpt         with a `/`, or a name with a model file's suffix -> FileTarget

A target that fits none of these is a one-line UserError (exit code 2) saying what is expected.
(`models:/NAME` with neither alias nor version reads as NAME, as the Serving tab always did.)
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from vtm_tui.errors import UserError

EXPECTED = ("http://HOST:PORT, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH, "
            "a registry NAME@STAGE[:VERSION] or a local model file (./model.pt2)")
MODEL_FILE_SUFFIXES = (".pt2", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class ServerTarget:
    """A model server at `url` (http:// or https://)."""
    url: str


@dataclass(frozen=True)
class ModelTarget:
    """Registry model `name` in `stage` (also the MLflow alias served natively), at `version`
    ("latest", or a version number as text, which skips native serving)."""
    name: str
    stage: str = "release"
    version: str = "latest"

    @property
    def model_uri(self) -> str:
        """The MLflow URI a native server for this target serves: models:/NAME@STAGE."""
        return f"models:/{self.name}@{self.stage}"


@dataclass(frozen=True)
class PinnedTarget:
    """Exactly one MLflow model (`models:/NAME/VERSION` or `runs:/RUN_ID/PATH`), served only by a
    running model server for that very URI."""
    uri: str


@dataclass(frozen=True)
class FileTarget:
    """A local model file or pulled bundle folder (`path`), loaded and run here."""
    path: str


Target = ServerTarget | ModelTarget | PinnedTarget | FileTarget


def _bad(text: str, why: str) -> UserError:
    return UserError(f"predict target {text!r}: {why}; expected {EXPECTED}")


def parse_target(text: str) -> Target:
    """The typed target a target string names (see the module docstring); UserError otherwise."""
    target = text.strip()
    if not target:
        raise UserError(f"give a predict target: {EXPECTED}")
    if any(c.isspace() for c in target):
        raise _bad(target, "no spaces")
    if target.startswith(("http://", "https://")):
        try:
            parts = urlsplit(target)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise _bad(target, f"not a server URL ({exc})") from None
        if not parts.hostname:
            raise _bad(target, "the URL names no host")
        return ServerTarget(target)
    if "://" in target:
        raise _bad(target, f"unknown scheme {target.split('://', 1)[0]!r}")
    if target.startswith("models:/"):
        rest = target.removeprefix("models:/")
        if "@" in rest:
            name, _, alias = rest.partition("@")
            if not name or not alias or "/" in name or "/" in alias:
                raise _bad(target, "models:/NAME@ALIAS needs a name and an alias")
            return ModelTarget(name, alias)
        if "/" in rest:
            name, _, version = rest.partition("/")
            if not name or not version or "/" in version:
                raise _bad(target, "models:/NAME/VERSION needs a name and a version")
            return PinnedTarget(target)
        if not rest:
            raise _bad(target, "no model name")
        return ModelTarget(rest)
    if target.startswith("runs:/"):
        run_id, _, path = target.removeprefix("runs:/").partition("/")
        if not run_id or not path.strip("/"):
            raise _bad(target, "runs:/RUN_ID/PATH needs a run id and an artifact path")
        return PinnedTarget(target)
    if "/" in target or target.startswith("~") or target.lower().endswith(MODEL_FILE_SUFFIXES):
        return FileTarget(target)
    name, at, rest = target.partition("@")
    stage, colon, version = rest.partition(":")
    if not name or any(c in name for c in "/:"):
        raise _bad(target, "a registry target is NAME@STAGE[:VERSION]")
    if at and not stage:
        raise _bad(target, "no stage after '@'")
    if colon and not (version == "latest" or (version.isdigit() and int(version) > 0)):
        raise _bad(target, "VERSION is a number or latest")
    return ModelTarget(name, stage or "release", version if colon else "latest")
