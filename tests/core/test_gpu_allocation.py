"""The GPU queue's rule (core/gpus/allocation.py): pure functions, so every case is a table."""
from __future__ import annotations

import pytest

from vtm_tui.core.gpus.allocation import (
    DeviceState,
    GpuRequest,
    Waiter,
    check_request,
    parse_request,
    plan,
    queue_order,
)
from vtm_tui.errors import UserError

ANY1 = GpuRequest(count=1)
BUSY_MB = 1024


def free(*indices: int) -> list[DeviceState]:
    return [DeviceState(index) for index in indices]


def assigned(placements) -> dict[int, tuple[int, ...] | None]:
    return {p.run_id: p.devices for p in placements}


def test_three_one_gpu_runs_on_two_gpus_two_start_on_disjoint_devices_one_waits():
    waiters = [Waiter(run, ANY1, queued_at=run) for run in (1, 2, 3)]
    placements = plan(waiters, free(0, 1), BUSY_MB)
    assert assigned(placements) == {1: (0,), 2: (1,), 3: None}
    assert [p.place for p in placements] == [1, 2, 3]
    assert placements[2].waits_for == ("1 GPU: 0 free of 2", "GPU 0: for run 1, ahead in the queue",
                                       "GPU 1: for run 2, ahead in the queue")
    # Once 1 and 2 hold their devices, 3 waits for them; when run 1 ends it gets GPU 0, the freed one.
    held = [DeviceState(0, held_by=1), DeviceState(1, held_by=2)]
    assert plan([waiters[2]], held, BUSY_MB)[0].waits_for == ("1 GPU: 0 free of 2", "GPU 0: held by run 1",
                                                             "GPU 1: held by run 2")
    assert assigned(plan([waiters[2]], [DeviceState(0), DeviceState(1, held_by=2)], BUSY_MB)) == {3: (0,)}


def test_a_run_waiting_for_gpu_1_leaves_a_free_gpu_0_to_the_runs_behind_it():
    waiters = [Waiter(1, GpuRequest(devices=(1,)), queued_at=1), Waiter(2, ANY1, queued_at=2)]
    devices = [DeviceState(0), DeviceState(1, held_by=7)]
    placements = plan(waiters, devices, BUSY_MB)
    assert assigned(placements) == {1: None, 2: (0,)}
    assert placements[0].waits_for == ("GPU 1: held by run 7",)
    # Alone in the queue, it still does not take GPU 0.
    assert assigned(plan(waiters[:1], devices, BUSY_MB)) == {1: None}


def test_a_waiting_run_keeps_the_free_devices_it_can_use_so_small_runs_cannot_starve_it():
    waiters = [Waiter(1, GpuRequest(count=2), queued_at=1), Waiter(2, ANY1, queued_at=2),
               Waiter(3, GpuRequest(devices=(0, 1)), queued_at=3), Waiter(4, GpuRequest(devices=(2,)), queued_at=4)]
    devices = [DeviceState(0), DeviceState(1, held_by=9), DeviceState(2, held_by=8)]
    placements = plan(waiters, devices, BUSY_MB)
    # 1 needs two and keeps GPU 0, the free one: the 1-GPU run 2 behind it does not get it.
    assert assigned(placements) == {1: None, 2: None, 3: None, 4: None}
    assert placements[0].waits_for == ("2 GPUs: 1 free of 3", "GPU 1: held by run 9", "GPU 2: held by run 8")
    assert placements[1].waits_for == ("1 GPU: 0 free of 3", "GPU 0: for run 1, ahead in the queue",
                                       "GPU 1: held by run 9", "GPU 2: held by run 8")
    assert placements[2].waits_for == ("GPU 0: for run 1, ahead in the queue", "GPU 1: held by run 9")
    assert placements[3].waits_for == ("GPU 2: held by run 8",)
    # Run 9 ends: run 1 takes both; run 8 ends: 4 takes its GPU 2 while 2 and 3 still wait.
    devices = [DeviceState(0), DeviceState(1), DeviceState(2, held_by=8)]
    assert assigned(plan(waiters, devices, BUSY_MB)) == {1: (0, 1), 2: None, 3: None, 4: None}
    assert assigned(plan(waiters, free(0, 1, 2), BUSY_MB)) == {1: (0, 1), 2: (2,), 3: None, 4: None}
    assert assigned(plan(waiters[2:], free(0, 1, 2), BUSY_MB)) == {3: (0, 1), 4: (2,)}


def test_priority_goes_first_then_first_come_first_served():
    waiters = [Waiter(1, ANY1, priority=0, queued_at=10.0), Waiter(2, ANY1, priority=5, queued_at=30.0),
               Waiter(3, ANY1, priority=0, queued_at=20.0), Waiter(4, ANY1, priority=5, queued_at=25.0),
               Waiter(5, ANY1, priority=-1, queued_at=1.0), Waiter(6, ANY1, priority=0, queued_at=10.0)]
    assert [w.run_id for w in queue_order(waiters)] == [4, 2, 1, 6, 3, 5]
    placements = plan(waiters, free(0), BUSY_MB)
    assert [(p.run_id, p.place, p.devices) for p in placements][:2] == [(4, 1, (0,)), (2, 2, None)]


def test_a_device_others_use_beyond_the_threshold_is_busy():
    others = DeviceState(0, foreign_mb=3200.0, foreign=("pid 4242 python",))
    light = DeviceState(1, foreign_mb=300.0, foreign=("pid 77 Xorg",))
    placements = plan([Waiter(1, GpuRequest(devices=(0,))), Waiter(2, ANY1, queued_at=1)], [others, light], BUSY_MB)
    assert assigned(placements) == {1: None, 2: (1,)}
    assert placements[0].waits_for == ("GPU 0: 3.2 GB used by other processes (pid 4242 python)",)
    assert assigned(plan([Waiter(1, ANY1)], [light], busy_mb=0)) == {1: None}  # VTM_GPU_BUSY_MB=0: any use


def test_memory_nvml_cannot_attribute_counts_as_other_processes():
    from vtm_tui.core.gpus.host import ActiveRun, device_states
    from vtm_tui.core.gpus.inventory import GpuDevice, GpuProcess, Inventory

    inventory = Inventory((
        GpuDevice(0, "A", memory_used_mb=70_000, processes=None),  # NVML cannot list its processes
        GpuDevice(1, "A", memory_used_mb=70_000, processes=(GpuProcess(10, None, "python"),)),  # no figure
        GpuDevice(2, "A", memory_used_mb=30_500, processes=(GpuProcess(20, 30_000, "python"),  # run 7's own
                                                            GpuProcess(21, None, "python"))),
        GpuDevice(3, "A", memory_used_mb=900, processes=(GpuProcess(30, 300, "Xorg"),)),  # all known
        GpuDevice(4, "A", memory_used_mb=None, processes=None),  # no NVML: nothing known
    ), "nvml")
    holder = ActiveRun(7, "t", "running", devices=(2,))
    states = {state.index: state for state in device_states(inventory, [holder], owners={20: 7})}
    assert [states[i].foreign_mb for i in range(5)] == [70_000, 70_000, 500, 300, 0]
    assert [states[i].busy(BUSY_MB) for i in (0, 1, 3, 4)] == [True, True, False, False]
    assert states[0].why_busy() == "70.0 GB used by other processes"
    assert states[1].why_busy() == "70.0 GB used by other processes (pid 10 python)"
    waiting = plan([Waiter(1, ANY1)], [states[0], states[1], states[3]], BUSY_MB)
    assert assigned(waiting) == {1: (3,)}


def test_specific_devices_are_given_in_the_order_asked():
    placements = plan([Waiter(1, GpuRequest(devices=(2, 0)))], free(0, 1, 2), BUSY_MB)
    assert placements[0].devices == (2, 0) and placements[0].waits_for == ()


def test_a_request_that_can_never_be_met_says_so():
    placements = plan([Waiter(1, GpuRequest(count=3)), Waiter(2, GpuRequest(devices=(5,)))], free(0, 1), BUSY_MB)
    assert placements[0].waits_for == ("3 GPUs: vtm may hand out 2",)
    assert placements[1].waits_for == ("GPU 5: not one vtm may hand out (VTM_GPUS)",)
    with pytest.raises(UserError, match=r"--num-gpus 3: vtm may hand out 0, 1 \(VTM_GPUS"):
        check_request(GpuRequest(count=3), [0, 1])
    with pytest.raises(UserError, match="--gpus 1,5: GPU 5 is not here; vtm may hand out 0, 1"):
        check_request(GpuRequest(devices=(1, 5)), [0, 1])
    with pytest.raises(UserError, match="vtm may hand out no GPU"):
        check_request(ANY1, [])
    check_request(GpuRequest(devices=(1,)), [0, 1])


@pytest.mark.parametrize("gpus, num_gpus, expected", [
    ("0,2", None, GpuRequest(devices=(0, 2))),
    (" 1 ", None, GpuRequest(devices=(1,))),
    (None, 2, GpuRequest(count=2)),
    (None, "1", GpuRequest(count=1)),
    ("", "3", GpuRequest(count=3)),
    ("cpu", None, None),
    ("", None, None),
    (None, None, None),
    (None, "", None),
])
def test_parse_request(gpus, num_gpus, expected):
    assert parse_request(gpus, num_gpus) == expected


@pytest.mark.parametrize("gpus, num_gpus, message", [
    ("0", 1, "either --gpus LIST or --num-gpus N, not both"),
    (None, 0, "--num-gpus expects a number of GPUs"),
    (None, "two", "--num-gpus expects a number of GPUs"),
    ("0,0", None, "--gpus expects distinct GPU indices"),
    ("gpu0", None, "--gpus expects distinct GPU indices"),
])
def test_parse_request_rejects_with_one_line(gpus, num_gpus, message):
    with pytest.raises(UserError, match=message):
        parse_request(gpus, num_gpus)


def test_requests_round_trip_through_the_store_text_and_describe_themselves():
    for request, text, described in ((GpuRequest(count=2), "count:2", "2 GPUs"), (ANY1, "count:1", "1 GPU"),
                                     (GpuRequest(devices=(0, 2)), "devices:0,2", "GPUs 0,2"),
                                     (GpuRequest(devices=(1,)), "devices:1", "GPU 1")):
        assert request.to_text() == text and GpuRequest.from_text(text) == request
        assert request.describe() == described and request.size == len(request.devices or ()) or request.count
    for bad in ("count:0", "devices:", "devices:a", "gpus:1", ""):
        with pytest.raises(ValueError):
            GpuRequest.from_text(bad)
    with pytest.raises(ValueError):
        GpuRequest()


def test_a_store_from_before_the_queue_gets_its_columns(tmp_path):
    import sqlite3

    from vtm_tui.core.runs.gpu_queue import active_run
    from vtm_tui.core.runs.records import SCHEMA
    from vtm_tui.core.runs.store import RunStore

    old_schema = SCHEMA.replace(",\n    gpu_request TEXT,\n    priority INTEGER NOT NULL DEFAULT 0", "")
    assert "gpu_request" not in old_schema
    db = sqlite3.connect(tmp_path / "runs.db")
    db.executescript(old_schema)
    db.execute("INSERT INTO runs (task, argv, cwd, created_at, gpus) VALUES ('old', '[]', '/', 1.0, '0')")
    db.commit()
    db.close()
    store = RunStore(tmp_path / "runs.db")
    old = store.get(1)
    assert (old.gpu_request, old.priority, active_run(old).request) == (None, 0, None)
    new = store.create(task="t", argv=[], env={}, field_values={}, cwd="/", gpu_request="count:2", priority=3)
    assert (new.gpu_request, new.priority, active_run(new).request) == ("count:2", 3, GpuRequest(count=2))
    assert store.claim_devices(new.id, (1, 0)) and store.get(new.id).gpus == "1,0"
    assert not store.claim_devices(new.id, (1, 0))  # no longer queued: nobody claims for it twice
    cancelled = store.create(task="t", argv=[], env={}, field_values={}, cwd="/", gpu_request="count:1")
    store.request_cancel(cancelled.id)
    assert not store.claim_devices(cancelled.id, (0,)) and store.get(cancelled.id).status == "queued"
