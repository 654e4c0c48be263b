"""The scheduling queue: order, backoff, and requeueing on the events that could help."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.runtime import FakeClock
from controlplane.scheduler.cluster_events import (
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    node_scheduling_properties_change,
)
from controlplane.scheduler.podinfo import PodInfo, QueuedPodInfo
from controlplane.scheduler.queue import SchedulingQueue
from controlplane.scheduler.status import NominatingInfo, NominatingMode
from tests.unit.scheduler.builders import framework, node, pod


def _queue(clock: FakeClock) -> SchedulingQueue:
    return SchedulingQueue({"default-scheduler": framework()}, clock=clock)


async def _pop(q: SchedulingQueue) -> QueuedPodInfo:
    return await asyncio.wait_for(q.pop(), 1)


async def test_pops_by_priority_then_arrival() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("low-early", priority=0)))
    clock.advance(1)
    q.add(PodInfo(pod("high", priority=100)))
    clock.advance(1)
    q.add(PodInfo(pod("low-late", priority=0)))
    q.add(PodInfo(pod("negative", priority=-5)))
    names = [(await _pop(q)).pod_info.name for _ in range(4)]
    assert names == ["high", "low-early", "low-late", "negative"]


async def test_backoff_doubles_from_one_to_ten_seconds() -> None:
    q = _queue(FakeClock())
    qpi = QueuedPodInfo(PodInfo(pod("p")), timestamp=0)
    durations = []
    for attempts in range(1, 8):
        qpi.attempts = attempts
        durations.append(q.backoff_duration(qpi))
    assert durations == [1, 2, 4, 8, 10, 10, 10]


async def _fail(q: SchedulingQueue, plugins: set[str]) -> QueuedPodInfo:
    qpi = await _pop(q)
    qpi.unschedulable_plugins = set(plugins)
    q.add_unschedulable_if_not_present(qpi)
    return qpi


async def test_unschedulable_pod_waits_for_a_node_that_fits() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p", cpu="2")))
    qpi = await _fail(q, {"NodeResourcesFit"})
    assert q.where(qpi.uid) == "unschedulable"
    # A node too small for the pod changes nothing.
    q.move_all_to_active_or_backoff(NODE_ADD, None, node("small", cpu="1"))
    assert q.where(qpi.uid) == "unschedulable"
    # One that fits moves it; it still owes its backoff, then becomes active.
    q.move_all_to_active_or_backoff(NODE_ADD, None, node("big", cpu="4"))
    assert q.where(qpi.uid) == "backoff"
    clock.advance(1.01)
    q.flush_backoff_completed()
    assert q.where(qpi.uid) == "active"


async def test_taint_removal_requeues_only_pods_rejected_by_taints() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("tainted")))
    q.add(PodInfo(pod("big", cpu="64")))
    first = await _fail(q, {"TaintToleration"})
    second = await _fail(q, {"NodeResourcesFit"})
    old = node("n", taints=[{"key": "k", "effect": "NoSchedule"}])
    new = node("n")
    clock.advance(5)
    for event in node_scheduling_properties_change(new, old):
        q.move_all_to_active_or_backoff(event, old, new)
    assert q.where(first.uid) == "active"
    assert q.where(second.uid) == "unschedulable"


async def test_assigned_pod_deletion_requeues_resource_starved_pods() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p", cpu="2")))
    qpi = await _fail(q, {"NodeResourcesFit"})
    clock.advance(2)
    q.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE, PodInfo(pod("gone", node_name="n", cpu="2")), None)
    assert q.where(qpi.uid) == "active"


async def test_errors_go_to_backoff() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p")))
    qpi = await _fail(q, set())
    assert q.where(qpi.uid) == "backoff"


async def test_events_while_in_flight_are_not_lost() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p", cpu="2")))
    qpi = await _pop(q)
    # The node arrives while the pod is being scheduled against a snapshot without it.
    q.move_all_to_active_or_backoff(NODE_ADD, None, node("big", cpu="4"))
    qpi.unschedulable_plugins = {"NodeResourcesFit"}
    q.add_unschedulable_if_not_present(qpi)
    assert q.where(qpi.uid) == "backoff"


async def test_irrelevant_in_flight_events_still_park_the_pod() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p", cpu="2")))
    qpi = await _pop(q)
    q.move_all_to_active_or_backoff(NODE_ADD, None, node("small", cpu="1"))
    qpi.unschedulable_plugins = {"NodeResourcesFit"}
    q.add_unschedulable_if_not_present(qpi)
    assert q.where(qpi.uid) == "unschedulable"


async def test_unschedulable_pods_are_flushed_after_five_minutes() -> None:
    clock = FakeClock()
    q = _queue(clock)
    q.add(PodInfo(pod("p", cpu="2")))
    qpi = await _fail(q, {"NodeResourcesFit"})
    clock.advance(299)
    q.flush_unschedulable_leftover()
    assert q.where(qpi.uid) == "unschedulable"
    clock.advance(2)
    q.flush_unschedulable_leftover()
    assert q.where(qpi.uid) == "active"


async def test_run_flushes_on_the_clock() -> None:
    clock = FakeClock()
    q = _queue(clock)
    stop = asyncio.Event()
    runner = asyncio.create_task(q.run(stop))
    q.add(PodInfo(pod("p")))
    qpi = await _fail(q, set())
    assert q.where(qpi.uid) == "backoff"
    for _ in range(3):
        await asyncio.sleep(0)
        clock.advance(1)
        await asyncio.sleep(0)
    assert q.where(qpi.uid) == "active"
    stop.set()
    await asyncio.wait_for(runner, 1)


async def test_scheduling_gates_hold_pods_until_removed() -> None:
    clock = FakeClock()
    q = _queue(clock)
    gated = PodInfo(pod("g", schedulingGates=[{"name": "example.com/wait"}]))
    q.add(gated)
    assert q.where(gated.uid) == "unschedulable"
    # Cluster events do not release a gated pod.
    q.move_all_to_active_or_backoff(NODE_ADD, None, node("n"))
    assert q.where(gated.uid) == "unschedulable"
    released = PodInfo(pod("g"))
    q.update(gated, released)
    assert q.where(gated.uid) == "active"
    assert (await _pop(q)).pod_info.name == "g"


async def test_updates_to_an_unschedulable_pod_can_make_it_schedulable() -> None:
    clock = FakeClock()
    q = _queue(clock)
    before = PodInfo(pod("p"))
    q.add(before)
    qpi = await _fail(q, {"TaintToleration"})
    clock.advance(2)
    # A label change does not help a taint rejection; a new toleration does.
    relabelled = PodInfo(pod("p", labels={"x": "y"}))
    q.update(before, relabelled)
    assert q.where(qpi.uid) == "unschedulable"
    tolerant = PodInfo(pod("p", labels={"x": "y"}, tolerations=[{"operator": "Exists"}]))
    q.update(relabelled, tolerant)
    assert q.where(qpi.uid) == "active"


async def test_delete_removes_the_pod_everywhere() -> None:
    q = _queue(FakeClock())
    p = PodInfo(pod("p"))
    q.add(p)
    q.delete(p)
    assert q.pending()["active"] == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.pop(), 0.05)


async def test_nominator_keeps_in_memory_nominations_across_updates() -> None:
    q = _queue(FakeClock())
    p = PodInfo(pod("p"))
    q.add_nominated_pod(p, NominatingInfo("n1", NominatingMode.OVERRIDE))
    assert [x.name for x in q.nominated_pods_for_node("n1")] == ["p"]
    # An update that predates the status write keeps the nomination.
    q.update_nominated_pod(p, PodInfo(pod("p", labels={"a": "b"})))
    assert [x.name for x in q.nominated_pods_for_node("n1")] == ["p"]
    q.delete_nominated_pod_if_exists(p)
    assert q.nominated_pods_for_node("n1") == []
