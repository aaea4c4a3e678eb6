"""Dual logging for training scripts: TensorBoard + MLflow + vtm progress lines.

    with TrainingLogger(params=vars(args)) as tl:
        for epoch in range(1, epochs + 1):
            ...
            tl.log_epoch(epoch, epochs, {"train_loss": 0.4, "val_accuracy": 0.8})

mlflow and torch are imported when the logger starts, never at module import, so
`import vtm_tui.train` stays cheap for code that only wants the class.

Training never dies of its tracking server: every MLflow call is bounded, and what MLflow does
not take is spooled to the run's folder and delivered later (see mlflow_link.py).
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

from vtm_tui.core.runs.progress import format_meta, format_progress
from vtm_tui.settings import Settings
from vtm_tui.train.mlflow_link import RETRY_INTERVAL, MlflowLink

DEFAULT_EXPERIMENT = "void-train-manager"
DEFAULT_TB_DIR = os.path.join(".", "outputs", "tensorboard", "{run_name}")
RUN_ID_TAG = "vtm.run_id"


class TrainingTerminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so the run unwinds like Ctrl-C and ends KILLED."""


def _raise_terminated(signum, frame):
    raise TrainingTerminated(f"received signal {signum}")


def tb_tag(name: str) -> str:
    """'val_accuracy' -> 'val/accuracy': TensorBoard groups scalars by the part before '/'."""
    return name.replace("_", "/", 1)


def _as_float(name: str, value: Any) -> float:
    if hasattr(value, "item"):  # torch / numpy scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}")
    return float(value)


class TrainingLogger:
    """Context manager around one MLflow run and one TensorBoard writer.

    `tb_dir` may hold `{run_name}` / `{run_id}`, filled in once the MLflow run exists (while
    MLflow is unreachable: the run name chosen for it, for both); `tb_dir=None` skips
    TensorBoard. The tracking URI is MLflow's own choice (MLFLOW_TRACKING_URI, else its default).
    `spool_dir`: where what MLflow does not take is kept (default: the vtm run's folder, else
    ./outputs/mlflow-spool/<time>); `mlflow_retry_interval`: seconds between probes of an
    unreachable server. `run_id` is None while the MLflow run does not exist yet.
    """

    def __init__(
        self,
        experiment_name: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tb_dir: str | os.PathLike | None = DEFAULT_TB_DIR,
        tags: Mapping[str, str] | None = None,
        handle_signals: bool = True,
        spool_dir: str | os.PathLike | None = None,
        mlflow_retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.experiment_name = experiment_name
        self.requested_run_name = run_name
        self.params = dict(params or {})
        self._tb_dir_template = None if tb_dir is None else os.fspath(tb_dir)
        self.tags = dict(tags or {})
        self.handle_signals = handle_signals
        self.spool_dir = spool_dir
        self.mlflow_retry_interval = mlflow_retry_interval

        self.run_id: str | None = None
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.tracking_uri: str | None = None
        self.tb_dir: str | None = None
        self.writer = None
        self._link: MlflowLink | None = None
        self._saved_handlers: dict[int, Any] = {}

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> TrainingLogger:
        self._install_signal_handlers()
        try:
            self._start()
        except BaseException:
            self._teardown("FAILED")
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        elif issubclass(exc_type, SystemExit) and exc.code in (None, 0):
            status = "FINISHED"
        else:
            status = "FAILED"
        self._teardown(status)
        return False  # never swallow the exception

    def _start(self) -> None:
        tags = dict(self.tags)
        vtm_run_id = Settings.from_environ().run_id
        if vtm_run_id:
            tags[RUN_ID_TAG] = vtm_run_id
        self._link = link = MlflowLink(experiment_name=self.experiment_name, run_name=self.requested_run_name,
                                       tags=tags, params=self.params, spool_dir=self.spool_dir,
                                       retry_interval=self.mlflow_retry_interval)
        link.start()
        self.tracking_uri = link.tracking_uri
        self._sync_ids()
        if self.run_id is not None:
            print(format_meta({"mlflow_run_id": self.run_id, "experiment_id": self.experiment_id,
                               "tracking_uri": self.tracking_uri, "run_name": self.run_name}), flush=True)

        if self._tb_dir_template is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb_dir = self._tb_dir_template.format(run_name=self.run_name, run_id=self.run_id or self.run_name)
            self.writer = SummaryWriter(log_dir=self.tb_dir)

    def _sync_ids(self) -> None:
        """The MLflow run's ids as the link knows them (a run created later, from the spool)."""
        link = self._link
        self.run_id, self.run_name, self.experiment_id = link.run_id, link.run_name, link.experiment_id

    def _teardown(self, status: str) -> None:
        # A second signal during teardown (vtm escalates SIGINT -> SIGTERM) must not
        # abort end_run halfway; SIGKILL is still there if teardown hangs.
        self._ignore_signals()
        try:
            if self.writer is not None:
                try:
                    self.writer.close()
                finally:
                    self.writer = None
            if self._link is not None and self._link.tracking_uri is not None:
                self._link.end(status)
                self._sync_ids()
        finally:
            self._restore_signal_handlers()

    # -- logging -------------------------------------------------------------------

    def log_epoch(self, epoch: int, total_epochs: int, metrics: Mapping[str, Any]) -> dict:
        """Log one epoch's metrics to TensorBoard, MLflow and stdout; returns the progress record.

        Every sink gets the very same Python float. TensorBoard stores it as float32, so
        a value read back from an event file equals the printed one only up to float32.
        """
        self._require_started()
        values = {name: _as_float(name, value) for name, value in metrics.items()}
        epoch = int(epoch)
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(tb_tag(name), value, global_step=epoch)
            self.writer.flush()
        if values:
            self._link.log_metrics(values, step=epoch)
            self._sync_ids()
        record = {"epoch": epoch, "total_epochs": int(total_epochs), **values}
        print(format_progress(record), flush=True)
        return record

    def log_checkpoint(self, path: str | os.PathLike, artifact_path: str | None = "checkpoints") -> None:
        """Upload a checkpoint file as an artifact of the run (spooled by path while MLflow is away)."""
        self._require_started()
        self._link.log_artifact(os.fspath(path), artifact_path)
        self._sync_ids()

    def log_model(
        self,
        model,
        artifact_path: str = "model",
        input_example=None,
        pip_requirements: list[str] | None = None,
        **kwargs,
    ):
        """mlflow.pytorch.log_model, afterwards loadable as `runs:/<run_id>/<artifact_path>`.

        MLflow 3 calls the location `name` and stores the files as a LoggedModel
        (`models:/<model_id>`); `runs:/` URIs still resolve to it. Its default format on a
        non-Databricks tracking URI is `pt2` (torch.export), which needs an input example
        (batch size > 1 keeps the batch dimension dynamic). Without one, `pickle` is used,
        and MLflow 3 then refuses to load it unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true.
        Either way the loaded object is not the original class (pt2 gives a GraphModule);
        rebuild the class from a checkpoint when that matters. While MLflow is unreachable the
        model is saved into the spool in the same format and None is returned.
        """
        self._require_started()
        import copy

        import torch

        if pip_requirements is None:
            pip_requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        if input_example is None:
            kwargs.setdefault("serialization_format", "pickle")
        # Export a CPU copy in eval mode: the served model must not need the training GPU,
        # and torch.export traces whatever mode the module is in.
        cpu_model = copy.deepcopy(model).to("cpu").eval()
        info = self._link.log_model(cpu_model, artifact_path, input_example=input_example,
                                    pip_requirements=pip_requirements, **kwargs)
        self._sync_ids()
        return info

    def _require_started(self) -> None:
        if self._link is None:
            raise RuntimeError("TrainingLogger is not started; use it as `with TrainingLogger(...) as tl:`")

    # -- signals -------------------------------------------------------------------

    def _can_handle_signals(self) -> bool:
        return self.handle_signals and threading.current_thread() is threading.main_thread()

    def _install_signal_handlers(self) -> None:
        if not self._can_handle_signals():
            return
        self._saved_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_terminated)
        # A process started in the background by a non-interactive shell inherits SIGINT
        # ignored; vtm cancels with SIGINT first, so make it raise KeyboardInterrupt again.
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
            self._saved_handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)

    def _ignore_signals(self) -> None:
        if not self._can_handle_signals():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.signal(signum, signal.SIG_IGN)
            self._saved_handlers.setdefault(signum, previous)

    def _restore_signal_handlers(self) -> None:
        if not self._can_handle_signals():
            return
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._saved_handlers.clear()


__all__ = ["TrainingLogger", "TrainingTerminated", "tb_tag"]
