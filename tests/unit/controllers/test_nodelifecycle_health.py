"""The node health state machine, zone states, the tainting queue and taint arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from controlplane.controllers.nodelifecycle_health import (
    NodeHealth,
    RateLimitedTimedQueue,
    TimedValue,
    ZoneState,
    add_or_update_taint,
    compute_zone_state,
    no_schedule_taints,
    remove_taints,
    taint_set_diff,
    try_update_node_health,
    zone_key,
)
from controlplane.controllers.podutil import status_condition
from controlplane.controllers.runtime import FakeClock, rfc3339

GRACE = 40.0
STARTUP = 60.0


def node(heartbeat: datetime | None, *, status: str = "True", created: datetime) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "n1", "creationTimestamp": rfc3339(created)},
        "spec": {},
        "status": {},
    }
    if heartbeat is not None:
        obj["status"]["conditions"] = [
            {
                "type": "Ready",
                "status": status,
                "lastHeartbeatTime": rfc3339(heartbeat),
                "lastTransitionTime": rfc3339(created),
                "reason": "KubeletReady",
            },
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": rfc3339(heartbeat)},
        ]
    return obj


def lease(renew: datetime) -> dict[str, Any]:
    return {"spec": {"renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


class Monitor:
    """The controller's bookkeeping around try_update_node_health, on a fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.health: NodeHealth | None = None

    def look(self, obj: dict[str, Any], lease_obj: dict[str, Any] | None = None) -> Any:
        update = try_update_node_health(
            obj, self.health, lease_obj, self.clock.now(), monitor_grace=GRACE, startup_grace=STARTUP
        )
        self.health = update.health_after_write if update.write is not None else update.health
        return update


def test_heartbeats_keep_a_node_healthy_and_silence_makes_it_unknown() -> None:
    m = Monitor()
    start = m.clock.now()
    assert m.look(node(start, created=start)).write is None
    for _ in range(5):
        m.clock.advance(10)
        assert m.look(node(m.clock.now(), created=start)).write is None
    last_beat = m.clock.now()
    m.clock.advance(GRACE)  # exactly the grace period: still fine
    assert m.look(node(last_beat, created=start)).write is None
    m.clock.advance(1)
    update = m.look(node(last_beat, created=start))
    assert update.write is not None
    assert update.observed_ready["status"] == "True"
    ready = status_condition(update.write["status"], "Ready")
    assert ready is not None
    assert ready["status"] == "Unknown"
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert ready["lastTransitionTime"] == rfc3339(m.clock.now())
    for type_ in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        cond = status_condition(update.write["status"], type_)
        assert cond is not None and cond["status"] == "Unknown"
    # Conditions that were never posted say so.
    disk = status_condition(update.write["status"], "DiskPressure")
    assert disk is not None and disk["reason"] == "NodeStatusNeverUpdated"


def test_a_renewed_lease_is_a_heartbeat() -> None:
    m = Monitor()
    start = m.clock.now()
    m.look(node(start, created=start), lease(start))
    for _ in range(10):
        m.clock.advance(10)
        update = m.look(node(start, created=start), lease(m.clock.now()))
        assert update.write is None, "renewed lease, stale condition: still healthy"
    m.clock.advance(GRACE + 1)
    assert (
        m.look(node(start, created=start), lease(m.clock.now() - timedelta(seconds=GRACE + 1))).write
        is not None
    )


def test_a_node_that_never_reported_gets_the_startup_grace_from_creation() -> None:
    m = Monitor()
    created = m.clock.now()
    m.clock.advance(GRACE + 5)
    update = m.look(node(None, created=created))
    assert update.write is None and update.grace_period == STARTUP
    m.clock.advance(STARTUP)
    update = m.look(node(None, created=created))
    assert update.write is not None
    ready = status_condition(update.write["status"], "Ready")
    assert ready is not None and ready["reason"] == "NodeStatusNeverUpdated"
    assert ready["lastHeartbeatTime"] == rfc3339(created)


def test_an_unknown_node_is_written_once() -> None:
    m = Monitor()
    start = m.clock.now()
    m.look(node(start, created=start))
    m.clock.advance(GRACE + 1)
    update = m.look(node(start, created=start))
    assert update.write is not None
    m.clock.advance(5)
    # The API now holds the Unknown status: nothing more to write.
    assert m.look(update.write).write is None


def test_zone_states() -> None:
    ready, not_ready = {"status": "True"}, {"status": "False"}
    assert compute_zone_state([ready, not_ready], 0.55) == (1, ZoneState.NORMAL)
    assert compute_zone_state([not_ready, None], 0.55) == (2, ZoneState.FULL_DISRUPTION)
    assert compute_zone_state([ready, not_ready, not_ready, not_ready], 0.55) == (
        3,
        ZoneState.PARTIAL_DISRUPTION,
    )
    assert compute_zone_state([ready, ready, not_ready, not_ready, not_ready, ready, ready], 0.55)[1] == (
        ZoneState.NORMAL
    )
    labelled = {
        "metadata": {"labels": {"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z"}}
    }
    assert zone_key(labelled) == "r:\x00:z"
    assert zone_key({"metadata": {}}) == ""


async def test_tainting_queue_is_paced_by_its_token_bucket() -> None:
    clock = FakeClock()
    queue = RateLimitedTimedQueue(1.0, clock.monotonic)
    for name in ("a", "b", "c"):
        assert queue.add(name)
    assert not queue.add("a")
    done: list[str] = []

    async def taint(value: TimedValue) -> tuple[bool, float]:
        done.append(value.value)
        return True, 0.0

    await queue.try_process(taint)
    assert done == ["a"]  # burst of one
    clock.advance(0.5)
    await queue.try_process(taint)
    assert done == ["a"]
    clock.advance(0.6)
    await queue.try_process(taint)
    assert done == ["a", "b"]
    assert not queue.add("a"), "processed values stay known until removed"
    assert queue.remove("a") and queue.add("a")
    queue.swap_limiter(0)
    clock.advance(100)
    await queue.try_process(taint)
    assert done == ["a", "b"], "a zero rate stops tainting"


async def test_failed_taints_are_retried_later() -> None:
    clock = FakeClock()
    queue = RateLimitedTimedQueue(100.0, clock.monotonic)
    queue.add("a")
    attempts: list[float] = []

    async def fail(value: TimedValue) -> tuple[bool, float]:
        attempts.append(clock.monotonic())
        return False, 1.0

    await queue.try_process(fail)
    assert len(attempts) == 1
    clock.advance(0.5)
    await queue.try_process(fail)
    assert len(attempts) == 1
    clock.advance(0.6)
    await queue.try_process(fail)
    assert len(attempts) == 2


def test_taint_arithmetic() -> None:
    taints = [
        {"key": "a", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
    ]
    same, changed = add_or_update_taint(taints, {"key": "a", "effect": "NoSchedule"})
    assert not changed and same == taints
    stamped, changed = add_or_update_taint(taints, {"key": "a", "effect": "NoSchedule", "timeAdded": "t"})
    assert changed and stamped[0]["timeAdded"] == "t" and len(stamped) == 2
    kept, removed = remove_taints(taints, [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    assert removed and kept == [taints[0]]


def test_no_schedule_taints_follow_conditions_and_cordon() -> None:
    obj = {
        "spec": {
            "unschedulable": True,
            "taints": [
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
                {"key": "user", "effect": "NoSchedule"},
            ],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "DiskPressure", "status": "True"},
                {"type": "MemoryPressure", "status": "False"},
            ]
        },
    }
    wanted = no_schedule_taints(obj)
    assert {t["key"] for t in wanted} == {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/unschedulable",
    }
    add, remove = taint_set_diff(wanted, obj)
    assert {t["key"] for t in add} == {t["key"] for t in wanted}
    assert remove == [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
