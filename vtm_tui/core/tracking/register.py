"""Register a run's logged model in the MLflow model registry and point an alias at it.

MLflow 3 stores `mlflow.<flavor>.log_model(name="model")` as a LoggedModel with its own artifact
location (`models:/m-<id>`), linked to the run by `source_run_id`; the run's own artifacts do not
hold it. So the model of a run at an artifact path is found by searching logged models of the
run's experiment by source_run_id and name (MLflow 2 layouts, with `<artifact_path>/MLmodel`
among the run's artifacts, still work). Versions are created from `models:/m-<id>`, so
`models:/NAME@ALIAS` loads exactly that model and the version records the run.

Aliases (`dev`, `release`, ...) are used, never the deprecated stages.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from vtm_tui.core.tracking.client import Tracking, TrackingError, TrackingUnavailable
from vtm_tui.errors import UserError

ALIAS_PATTERN = re.compile(r"^[\w-]+$")
AWAIT_SECONDS = 300


def validate_alias(alias: str) -> str:
    """MLflow's alias rules, checked before anything is registered."""
    if not alias or not ALIAS_PATTERN.match(alias) or len(alias) > 255:
        raise UserError(f"invalid alias {alias!r}: use letters, digits, _ and - (e.g. dev, release)")
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise UserError(f"alias {alias!r} is reserved by MLflow (latest and v<number> name versions)")
    return alias


def validate_model_name(name: str) -> str:
    """`name` when MLflow can register a model under it (not empty, no / : '); UserError
    otherwise."""
    if not name or not name.strip() or any(c in name for c in "/:") or "'" in name:
        raise UserError(f"invalid registered model name {name!r}: it cannot be empty or hold / : '")
    return name


def _check_artifact_path(path: str) -> str:
    path = (path or "").strip().strip("/")
    if not path or "'" in path or ".." in path.split("/"):
        raise UserError(f"invalid artifact path {path!r}")
    return path


@dataclass
class LoggedModelRef:
    """Where a run's logged model is: the run, its artifact path, the source a model version is
    created from, and the LoggedModel id (MLflow 3; None for an MLflow 2 run artifact)."""
    run_id: str
    artifact_path: str
    source: str  # what the model version is created from
    model_id: str | None  # the LoggedModel id (MLflow 3); None for an MLflow 2 run artifact

    @property
    def model_uri(self) -> str:
        """`models:/<model id>` (MLflow 3), else `runs:/RUN_ID/PATH`."""
        return f"models:/{self.model_id}" if self.model_id else f"runs:/{self.run_id}/{self.artifact_path}"


@dataclass
class Registration:
    """A registered model version: name, version, the run and source it came from, the alias set
    (if any), whether it was created now (False: this run's model was registered already), and
    the version's aliases."""
    model_name: str
    version: str
    run_id: str
    source: str
    logged_model_id: str | None
    alias: str | None = None
    created: bool = True  # False: this run's model was already registered, that version was reused
    aliases: list[str] = field(default_factory=list)

    @property
    def model_uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return f"models:/{self.model_name}/{self.version}"

    @property
    def alias_uri(self) -> str | None:
        """`models:/NAME@ALIAS`, or None without an alias."""
        return f"models:/{self.model_name}@{self.alias}" if self.alias else None

    def summary(self) -> str:
        """One line: what was registered from which run, and the alias it got."""
        verb = "registered" if self.created else "already registered as"
        text = f"{verb} {self.model_uri} from run {self.run_id}"
        return text + (f"; alias {self.alias!r} -> version {self.version} ({self.alias_uri})"
                       if self.alias else "")

    def to_json(self) -> dict:
        """Every field plus model_uri and alias_uri: the `vtm mlflow register --json` object."""
        return {**asdict(self), "model_uri": self.model_uri, "alias_uri": self.alias_uri}


@dataclass
class ModelVersionInfo:
    """A version of a registered model: version, run, status, source, aliases, creation time (ms
    since the epoch), LoggedModel id."""
    model_name: str
    version: str
    run_id: str | None
    status: str
    source: str
    aliases: list[str]
    creation_time: int | None
    model_id: str | None = None

    def to_json(self) -> dict:
        """Every field, as JSON."""
        return asdict(self)


def _logged_models(tracking: Tracking, experiment_id: str, filter_string: str) -> list:
    models, token = [], None
    while True:
        with tracking.calling("search logged models"):
            page = tracking.client.search_logged_models([experiment_id], filter_string=filter_string,
                                                        page_token=token)
        models += list(page)
        token = page.token
        if not token:
            return models


def find_logged_model(tracking: Tracking, run_id: str, artifact_path: str = "model") -> LoggedModelRef:
    """The model a run logged at `artifact_path` (the `name=` of log_model); UserError if none."""
    artifact_path = _check_artifact_path(artifact_path)
    run = tracking.run(run_id)
    client = tracking.client
    try:
        models = _logged_models(tracking, run.experiment_id, f"source_run_id = '{run.run_id}'")
    except TrackingUnavailable:
        raise
    except TrackingError:  # stores that cannot filter on source_run_id: by name, then by hand
        models = _logged_models(tracking, run.experiment_id, f"name = '{artifact_path}'")
    models = [m for m in models if m.source_run_id == run.run_id]
    at_path = [m for m in models if m.name == artifact_path]
    ready = [m for m in at_path if str(m.status) == "READY"]
    if ready:
        chosen = max(ready, key=lambda m: (m.creation_timestamp or 0, m.model_id))
        return LoggedModelRef(run.run_id, artifact_path, f"models:/{chosen.model_id}", chosen.model_id)
    if at_path:
        raise UserError(f"run {run_id}: the model at {artifact_path!r} is {at_path[0].status}, not READY "
                        "(did the training script finish logging it?)")
    with tracking.calling(f"list artifacts of run {run_id}"):
        files = [a.path for a in client.list_artifacts(run.run_id, artifact_path)]
    if f"{artifact_path}/MLmodel" in files:
        return LoggedModelRef(run.run_id, artifact_path, f"{run.artifact_uri.rstrip('/')}/{artifact_path}", None)
    names = sorted({m.name for m in models})
    hint = (f"; its logged models: {', '.join(names)} (pass --artifact-path)" if names
            else "; it logged no model (log one with mlflow.<flavor>.log_model(model, name=...))")
    raise UserError(f"run {run_id} has no logged model at artifact path {artifact_path!r}{hint}")


def _version_info(mv) -> ModelVersionInfo:
    return ModelVersionInfo(model_name=mv.name, version=str(mv.version), run_id=mv.run_id or None,
                            status=str(mv.status), source=mv.source or "", aliases=list(mv.aliases or []),
                            creation_time=mv.creation_timestamp, model_id=getattr(mv, "model_id", None))


def model_versions(tracking: Tracking, model_name: str) -> list[ModelVersionInfo]:
    """Every version of a registered model, newest first (empty if the model does not exist)."""
    validate_model_name(model_name)
    found, token = [], None
    while True:
        with tracking.calling(f"search versions of {model_name!r}"):
            page = tracking.client.search_model_versions(f"name = '{model_name}'", max_results=1000,
                                                         page_token=token)
        found += [_version_info(mv) for mv in page]
        token = page.token
        if not token:
            return sorted(found, key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True)


def set_alias(tracking: Tracking, model_name: str, alias: str, version: str) -> None:
    """Point alias `alias` of registered model `model_name` at `version`; UserError for a bad
    alias, TrackingError when MLflow refuses."""
    validate_alias(alias)
    with tracking.calling(f"set alias {alias!r} of {model_name!r} to version {version}"):
        tracking.client.set_registered_model_alias(model_name, alias, str(version))


def register_run(tracking: Tracking, run_id: str, model_name: str, artifact_path: str = "model",
                 alias: str | None = None, await_seconds: int = AWAIT_SECONDS) -> Registration:
    """Register the run's model under `model_name` (reusing the version if this very model is
    already registered there) and, given an alias, point it at that version."""
    validate_model_name(model_name)
    if alias is not None:
        validate_alias(alias)
    ref = find_logged_model(tracking, run_id, artifact_path)
    client = tracking.client
    try:
        with tracking.calling(f"create registered model {model_name!r}"):
            client.create_registered_model(model_name)
    except TrackingError as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    with tracking.calling(f"search versions of {model_name!r}"):
        existing = [mv for mv in client.search_model_versions(f"run_id = '{ref.run_id}'", max_results=1000)
                    if mv.name == model_name and mv.source == ref.source and str(mv.status) == "READY"]
    if existing:
        version, created = max(existing, key=lambda mv: int(mv.version)), False
    else:
        with tracking.calling(f"create a version of {model_name!r} from {ref.source}"):
            version = client.create_model_version(model_name, ref.source, run_id=ref.run_id,
                                                  model_id=ref.model_id, await_creation_for=await_seconds)
        created = True
        if str(version.status) != "READY":
            raise TrackingError(f"version {version.version} of {model_name!r} is {version.status}, not READY "
                                f"({version.status_message or 'no message'})", tracking.uri)
        if ref.model_id:
            _link_logged_model(tracking, ref.model_id, model_name, str(version.version))
    number = str(version.version)
    if alias:
        set_alias(tracking, model_name, alias, number)
    aliases = sorted(set(version.aliases or []) | ({alias} if alias else set()))
    return Registration(model_name, number, ref.run_id, ref.source, ref.model_id, alias, created, aliases)


def _link_logged_model(tracking: Tracking, model_id: str, model_name: str, version: str) -> None:
    """Record the version on the LoggedModel, as mlflow.register_model does (the UI shows it)."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    try:
        with tracking.calling("tag the logged model"):
            model = tracking.client.get_logged_model(model_id)
            links = json.loads(model.tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
            links.append({"name": model_name, "version": version})
            tracking.client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(links)})
    except (TrackingError, ValueError):
        pass  # cosmetic: the version itself is registered and complete
