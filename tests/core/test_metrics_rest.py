"""System metrics to MLflow over REST (core/tracking/metrics_rest.py), against the session's real
MLflow server: what is posted is what MLflow's own client reads back."""
from __future__ import annotations

import time

import pytest
from fixtures.vtm import free_port

from vtm_tui.core.tracking.failures import TrackingError, TrackingUnavailable
from vtm_tui.core.tracking.metrics_rest import MAX_METRICS, MetricPoint, MetricsPoster


def test_posted_metrics_are_what_mlflow_reads_back(embedded_server):
    from mlflow import MlflowClient

    client = MlflowClient(embedded_server.uri)
    experiment = client.create_experiment(f"rest-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    points = [MetricPoint("system/process_cpu_utilization_percentage", 50.0 + step, now + step * 1000, step)
              for step in range(MAX_METRICS + 5)]  # two requests
    points.append(MetricPoint("system/gpu_0_memory_usage_megabytes", 3200.5, now, 0))
    MetricsPoster(embedded_server.uri + "/").log_batch(run_id, points)
    history = client.get_metric_history(run_id, "system/process_cpu_utilization_percentage")
    assert len(history) == MAX_METRICS + 5
    assert sorted((m.step, m.value, m.timestamp) for m in history)[:2] == [(0, 50.0, now), (1, 51.0, now + 1000)]
    assert client.get_run(run_id).data.metrics["system/gpu_0_memory_usage_megabytes"] == 3200.5


def test_a_refusal_and_a_dead_server_are_told_apart(embedded_server):
    with pytest.raises(TrackingError) as refused:
        MetricsPoster(embedded_server.uri).log_batch("0" * 32, [MetricPoint("system/x", 1.0, 0)])
    assert not isinstance(refused.value, TrackingUnavailable)
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST" and "refused" in str(refused.value)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnavailable, match=f"cannot reach the MLflow tracking server at {dead}"):
        MetricsPoster(dead, timeout=2).log_batch("0" * 32, [MetricPoint("system/x", 1.0, 0)])


def test_credentials_are_taken_as_mlflows_client_takes_them():
    token = MetricsPoster("https://m.example", {"MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_USERNAME": "u"})
    assert token.headers["Authorization"] == "Bearer t0k" and token.context is None
    basic = MetricsPoster("https://m.example", {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw",
                                                "MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert basic.headers["Authorization"] == "Basic YW5uOnB3" and basic.context.verify_mode == 0
    assert "Authorization" not in MetricsPoster("http://m.example").headers


def test_the_supervisors_sampler_keeps_points_while_mlflow_is_down(embedded_server):
    from mlflow import MlflowClient

    from vtm_tui.core.runs.system_metrics import SystemMetrics

    client = MlflowClient(embedded_server.uri)
    run_id = client.create_run(client.create_experiment(f"sys-{time.time_ns()}")).info.run_id
    known = {"id": None}
    metrics = SystemMetrics(60, mlflow_run_id=lambda: known["id"], tracking_uri=f"http://127.0.0.1:{free_port()}")
    metrics.poster.timeout = 2
    metrics.sample_once()
    metrics._send()  # no MLflow run yet: kept
    known["id"] = run_id
    metrics.sample_once()
    metrics._send()  # the server does not answer: kept
    assert metrics.problem is None and len(metrics.take()) == 2
    metrics.poster = MetricsPoster(embedded_server.uri)  # it answers again
    metrics.stop()
    history = client.get_metric_history(run_id, "system/process_cpu_utilization_percentage")
    assert sorted(m.step for m in history) == [0, 1]
    metrics.poster = MetricsPoster(embedded_server.uri)
    known["id"] = "0" * 32  # a run MLflow does not have: refused, no more tries
    metrics.sample_once()
    metrics._send()
    assert "MLflow refused the run's system metrics" in metrics.problem and not metrics._pending
