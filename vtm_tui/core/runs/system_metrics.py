"""A run's system metrics, as its supervisor takes them: every VTM_SYSTEM_METRICS_INTERVAL
seconds a daemon thread samples the run's process tree (everything below the supervisor, which
is a subreaper: the script, its workers, what it daemonized) and its GPUs (core/gpus/sampling.py),
keeps the sample for the run store (the supervisor's loop takes them, `take`) and sends it to the
run's MLflow run as MLflow's `system/...` metrics, over REST (core/tracking/metrics_rest.py: no
mlflow import in the supervisor).

MLflow gets them only from an http(s) tracking server, once the script has an MLflow run (the
samples wait until then) and while tracking is on; a server that does not answer keeps the points
for the next try (the last MAX_PENDING of them); one that refuses (e.g. the run was deleted)
gets no more, and `problem` says why; so does a poster that cannot be made (an unreadable
MLFLOW_TRACKING_SERVER_CERT_PATH). Works for any script: nothing is asked of it.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence

from vtm_tui.core.gpus.sampling import SystemSample, SystemSampler, process_tree
from vtm_tui.core.tracking.failures import TrackingError, TrackingUnavailable
from vtm_tui.core.tracking.metrics_rest import MetricPoint, MetricsPoster

MAX_PENDING = 20_000  # metric points kept for MLflow while it does not answer


class SystemMetrics:
    """Samples a run every `interval` seconds in a daemon thread (start/stop). mlflow_run_id:
    gives the run's MLflow run id once known (None before); tracking_uri: where to send (None or
    a non-http URI: the run store only); environ: the MLflow client's credential variables."""

    def __init__(self, interval: float, gpus: Sequence[int] = (), *, mlflow_run_id: Callable[[], str | None],
                 tracking_uri: str | None = None, environ: Mapping[str, str] | None = None,
                 root: int | None = None) -> None:
        root = os.getpid() if root is None else root
        self.interval = interval
        self.sampler = SystemSampler(lambda: process_tree(root, include_root=False), gpus)
        self.poster: MetricsPoster | None = None
        self.problem: str | None = None
        if tracking_uri and tracking_uri.startswith(("http://", "https://")):
            try:
                self.poster = MetricsPoster(tracking_uri, environ)
            except TrackingError as exc:  # e.g. a CA file that is not there: the run store still gets them
                self.problem = f"system metrics not sent to MLflow: {exc}"
        self._mlflow_run_id = mlflow_run_id
        self._taken: list[tuple[float, dict]] = []
        self._pending: list[MetricPoint] = []
        self._step = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)

    def start(self) -> None:
        """Start sampling (the first sample after one interval)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and send what MLflow has not got yet (one try)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 15)
        self._send()

    def take(self) -> list[tuple[float, dict]]:
        """The samples since the last call, for the run store: (time, {system/... name: value})."""
        with self._lock:
            taken, self._taken = self._taken, []
        return taken

    def sample_once(self) -> SystemSample:
        """Take one sample now: keep it for the store and queue it for MLflow."""
        sample = self.sampler.sample()
        metrics = sample.metrics()
        with self._lock:
            self._taken.append((sample.time, metrics))
        if self.poster is not None and self.problem is None:
            stamp = int(sample.time * 1000)
            self._pending.extend(MetricPoint(name, value, stamp, self._step) for name, value in metrics.items())
            self._pending = self._pending[-MAX_PENDING:]
        self._step += 1
        return sample

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample_once()
                self._send()
            except Exception as exc:  # never let sampling end the supervisor's watch
                self.problem = f"system metrics: {exc}"

    def _send(self) -> None:
        run_id = self._mlflow_run_id()
        if self.poster is None or not self._pending or not run_id or self.problem:
            return
        points = list(self._pending)
        try:
            self.poster.log_batch(run_id, points)
        except TrackingUnavailable:
            return  # kept for the next try
        except TrackingError as exc:
            self.problem = f"MLflow refused the run's system metrics: {exc}"
            self._pending = []
            return
        self._pending = self._pending[len(points):]
