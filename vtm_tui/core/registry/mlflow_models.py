"""Models MLflow logged, as registry content: a run's logged PyTorch model (MLflow 3 writes it
with torch.export as `data/model.pt2` by default) becomes the bundle's standard program, so the
registry copy of any MLflow-logged model serves locally with no conversion.

    vtm registry publish runs:/RUN_ID/model --model clf        # publish_logged_model
    vtm registry publish-best --task classification            # publish_best uses logged_model_folder

Where MLflow keeps it: `mlflow.pytorch.log_model(name="model")` stores a LoggedModel whose
artifacts (MLmodel, data/model.pt2, ...) `MlflowClient.download_artifacts(run_id, "model", dst)`
and `mlflow.artifacts.download_artifacts("runs:/RUN_ID/model")` fetch
(https://mlflow.org/docs/latest/ml/model/ : the MLmodel format). The pickle format
(`data/model.pth`) is converted only with allow_pickle: loading it runs the file's code.
"""
from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from vtm_tui.core.registry.base import Progress, RegistryUsageError
from vtm_tui.core.registry.model_files import BundleContent
from vtm_tui.core.registry.results import PublishResult

MLFLOW_URI_PREFIXES = ("runs:/", "models:/")


def is_mlflow_uri(text: str) -> bool:
    """True for `runs:/...` and `models:/...` (what publish takes instead of a local file)."""
    return str(text).startswith(MLFLOW_URI_PREFIXES)


def logged_model_folder(tracking, run_id: str, name: str, dst: Path) -> Path | None:
    """The local copy of the run's logged model `name` (a folder with MLmodel), or None when the
    run logged no model there. TrackingError when the tracking server fails otherwise."""
    from mlflow.exceptions import MlflowException

    from vtm_tui.core.tracking.failures import is_unreachable

    try:
        folder = Path(tracking.client.download_artifacts(run_id, name, str(dst)))
    except (MlflowException, OSError) as exc:
        if is_unreachable(exc):
            raise tracking.error(exc, f"download the logged model {name!r} of run {run_id}") from exc
        return None
    return folder if (folder / "MLmodel").is_file() else None


def standard_content(folder: Path, work: Path, request, content: BundleContent | None = None) -> BundleContent:
    """Add the standard program of an MLflow model folder (its pt2 checked pickle-free and saved
    with a spec; the pickle format only with request.allow_pickle) to content."""
    from vtm_tui.core.registry.model_files import convert_into
    from vtm_tui.core.standard.spec import ConvertRequest

    return convert_into(content or BundleContent(), folder, work, request or ConvertRequest())


def publish_logged_model(registry, settings, uri: str, model: str, stage: str = "dev", *, request=None,
                         version=None, set_latest: bool = False, tracking_uri: str | None = None,
                         progress: Progress | None = None, cancel: threading.Event | None = None) -> PublishResult:
    """Publish an MLflow model (`runs:/RUN_ID/PATH` or `models:/NAME/VERSION|@ALIAS`) as a bundle
    holding its standard program (model-standard.pt2), with the URI in the manifest's source.
    RegistryUsageError when the URI names no PyTorch model."""
    import mlflow.artifacts

    from vtm_tui.core.registry import layout
    from vtm_tui.core.tracking.uri import open_tracking

    layout.check_model(model), layout.check_stage(stage)
    number = None if version in (None, "", "auto") else layout.check_version(version)
    tracking = open_tracking(settings, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="vtm-mlflow-") as tmp:
        with tracking.calling(f"download {uri}"):
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                              tracking_uri=tracking.uri))
        if not (folder / "MLmodel").is_file():
            raise RegistryUsageError(f"{uri}: not an MLflow model (no MLmodel file)")
        work = Path(tmp) / "standard"
        work.mkdir()
        content = standard_content(folder, work, request)
        source = {"type": "mlflow_model", "uri": uri, "tracking_uri": tracking.display_uri}
        if uri.startswith("runs:/"):
            source["run_id"] = uri.removeprefix("runs:/").split("/", 1)[0]
        return registry.publish_content(content, model, stage, version=number, set_latest=set_latest,
                                        source=source, progress=progress, cancel=cancel)
