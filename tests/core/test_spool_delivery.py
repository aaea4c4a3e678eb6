"""Delivering a spool to a real MLflow server: several MLflow runs in one spool, and a delivery
interrupted after MLflow took a step but before the spool recorded it (sent again: nothing
doubled)."""
from __future__ import annotations

import uuid

from vtm_tui.core.tracking.delivery import deliver
from vtm_tui.core.tracking.spool import Spool


def _history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_two_runs_in_one_spool_and_an_interrupted_delivery_sent_again(tmp_path, embedded_server):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(embedded_server.uri)
    experiment = f"spool-{uuid.uuid4().hex[:8]}"
    spool = Spool(tmp_path / "mlflow-spool")
    first = spool.start(tracking_uri=embedded_server.uri, experiment_name=experiment, run_name="first",
                        tags={"who": "first"}, start_time=1_000)
    second = spool.start(tracking_uri=embedded_server.uri, experiment_name=experiment, run_name="second",
                         start_time=2_000)
    for step in (1, 2, 3):  # two loggers' records, interleaved
        spool.append({"kind": "metrics", "step": step, "timestamp": 10_000 + step, "metrics": {"loss": 1 / step},
                      "spool_id": first})
        spool.append({"kind": "metrics", "step": step, "timestamp": 20_000 + step, "metrics": {"loss": 2 / step},
                      "spool_id": second})
    spool.append({"kind": "params", "params": {"lr": 0.1}, "spool_id": second})
    spool.append({"kind": "end", "status": "FAILED", "end_time": 30_000, "spool_id": first})
    spool.append({"kind": "end", "status": "FINISHED", "end_time": 31_000, "spool_id": second})

    result = deliver(spool)
    assert (result.delivered, result.pending, result.points) == (11, 0, 6)
    one, two = client.get_run(result.run_ids[first]), client.get_run(result.run_ids[second])
    assert (one.info.run_name, one.info.status, one.data.tags["who"]) == ("first", "FAILED", "first")
    assert (two.info.run_name, two.info.status, two.data.params) == ("second", "FINISHED", {"lr": "0.1"})
    assert one.info.start_time == 1_000 and two.info.end_time == 31_000
    assert _history(client, one.info.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert _history(client, two.info.run_id, "loss") == [(1, 2.0), (2, 1.0), (3, 2 / 3)]

    # MLflow took everything, then the record of it was lost: the delivery starts over.
    state = spool.state()
    state.lines = 0
    state.runs = {}
    spool.save_state(state)
    again = deliver(spool)
    assert (again.points, again.duplicates) == (0, 6)
    assert again.run_ids == result.run_ids  # the runs are found again by their spool_id tag
    assert len(client.get_metric_history(one.info.run_id, "loss")) == 3
    assert deliver(spool).delivered == 0
