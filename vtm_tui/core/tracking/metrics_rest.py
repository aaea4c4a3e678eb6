"""Metrics to an MLflow tracking server over its REST API, without importing mlflow.

For the run supervisor, which sends a run's system metrics every few seconds: importing mlflow
costs it ~2 s of CPU and ~145 MB of memory per run (measured, benchmarks/README.md), one
log-batch request over urllib a few milliseconds. Only http(s) tracking URIs have a REST API;
for a database or file store the caller uses mlflow itself.

Request (MLflow REST API reference, "Log Batch"): POST <uri>/api/2.0/mlflow/runs/log-batch with
{"run_id": ..., "metrics": [{"key", "value", "timestamp" (ms since the epoch), "step"}]}, at most
1000 metrics per request. Credentials as the MLflow client takes them: MLFLOW_TRACKING_TOKEN
(Bearer) or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (Basic); TLS checks off with
MLFLOW_TRACKING_INSECURE_TLS=true, another CA with MLFLOW_TRACKING_SERVER_CERT_PATH.
"""
from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vtm_tui.core.formatting import redact_url
from vtm_tui.core.tracking.failures import TrackingError, TrackingUnavailable

MAX_METRICS = 1000  # MLflow's limit on the metrics of one log-batch request
TIMEOUT = 10.0  # seconds; a supervisor never waits longer on the tracking server


@dataclass(frozen=True)
class MetricPoint:
    """One metric value: key, value, timestamp (milliseconds since the epoch), step."""
    key: str
    value: float
    timestamp: int
    step: int = 0


class MetricsPoster:
    """Posts metrics to the MLflow server at `uri` (http or https). environ: where the MLflow
    client's credential variables are read (the supervisor hands in its run's environment).
    TrackingError (naming the variable) when MLFLOW_TRACKING_SERVER_CERT_PATH cannot be read."""

    def __init__(self, uri: str, environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT) -> None:
        env = environ or {}
        self.uri, self.timeout = uri.rstrip("/"), timeout
        self.headers = {"Content-Type": "application/json"}
        if env.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = "Bearer " + env["MLFLOW_TRACKING_TOKEN"]
        elif env.get("MLFLOW_TRACKING_USERNAME"):
            pair = f"{env['MLFLOW_TRACKING_USERNAME']}:{env.get('MLFLOW_TRACKING_PASSWORD', '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self.context = None
        if uri.startswith("https://"):
            if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
                self.context = ssl._create_unverified_context()
            elif env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
                cafile = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
                try:
                    self.context = ssl.create_default_context(cafile=cafile)
                except OSError as exc:  # missing or unreadable file, or no certificate in it
                    raise TrackingError(f"MLFLOW_TRACKING_SERVER_CERT_PATH {cafile}: "
                                        f"{getattr(exc, 'strerror', None) or exc}", uri) from None

    def log_batch(self, run_id: str, metrics: Sequence[MetricPoint]) -> None:
        """Log the metrics to MLflow run `run_id`, in requests of at most 1000. TrackingUnavailable
        when the server does not answer; TrackingError (with MLflow's error_code, e.g.
        RESOURCE_DOES_NOT_EXIST) when it refuses."""
        for start in range(0, len(metrics), MAX_METRICS):
            body = {"run_id": run_id, "metrics": [
                {"key": point.key, "value": point.value, "timestamp": point.timestamp, "step": point.step}
                for point in metrics[start:start + MAX_METRICS]]}
            self._post("/api/2.0/mlflow/runs/log-batch", body)

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(self.uri + path, data=json.dumps(body).encode(), headers=self.headers,
                                         method="POST")
        where = redact_url(self.uri)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read() or b"{}")
            except ValueError:
                error = {}
            code = error.get("error_code")
            if exc.code >= 500 and code in (None, "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"):
                raise TrackingUnavailable(f"the MLflow tracking server at {where} answered {exc.code}", self.uri,
                                          code) from None
            message = error.get("message") or exc.reason
            raise TrackingError(f"MLflow at {where} refused {path}: {message}", self.uri, code) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailable(f"cannot reach the MLflow tracking server at {where}: {reason}",
                                      self.uri) from None
