"""The scheduler's loop and event handlers, with informer events applied by hand and the API
faked: no network."""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import FakeClock, InformerFactory
from controlplane.controllers.runtime import resources as R
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import PermitPlugin, PluginSpec, ReservePlugin
from controlplane.scheduler.plugins import DEFAULT_PLUGINS
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.scheduler import Scheduler
from controlplane.scheduler.status import Code, Status
from tests.unit.scheduler.builders import FakeAPI, FakeRecorder, node, pod


class _Broadcaster:
    def __init__(self) -> None:
        self.recorders: dict[str, FakeRecorder] = {}

    def recorder(self, name: str) -> FakeRecorder:
        return self.recorders.setdefault(name, FakeRecorder())


def _scheduler(
    profiles: tuple[str, ...] = ("default-scheduler",),
) -> tuple[Scheduler, InformerFactory, FakeAPI, _Broadcaster, FakeClock]:
    client: Any = object.__new__(Client)  # never used: informers are fed by hand
    factory = InformerFactory(client)
    api = FakeAPI()
    broadcaster = _Broadcaster()
    clock = FakeClock()
    sched = Scheduler(factory, api, broadcaster, profiles=profiles, clock=clock)  # type: ignore[arg-type]
    return sched, factory, api, broadcaster, clock


async def _drain(sched: Scheduler) -> int:
    """Run scheduling attempts until the active queue is empty; returns how many ran."""
    count = 0
    while sched.queue.pending()["active"]:
        qpi = await asyncio.wait_for(sched.queue.pop(), 1)
        await sched.schedule_one(qpi)
        count += 1
    await asyncio.sleep(0)
    return count


async def test_binds_and_records_scheduled() -> None:
    sched, factory, api, broadcaster, _ = _scheduler()
    factory.informer(R.NODES).apply("ADDED", node("n1"))
    factory.informer(R.PODS).apply("ADDED", pod("p", cpu="100m"))
    assert await _drain(sched) == 1
    assert api.bound == [("p", "n1")]
    assert broadcaster.recorders["default-scheduler"].events == [
        ("p", "Normal", "Scheduled", "Successfully assigned default/p to n1")
    ]
    # Assumed until the informer confirms the binding.
    assert sched.cache.is_assumed("uid-default-p")
    factory.informer(R.PODS).apply("MODIFIED", pod("p", cpu="100m", node_name="n1"))
    assert not sched.cache.is_assumed("uid-default-p")
    assert sched.cache.node_info("n1").requested.milli_cpu == 100  # type: ignore[union-attr]


async def test_unschedulable_pod_gets_event_and_condition_then_a_node() -> None:
    sched, factory, api, broadcaster, clock = _scheduler()
    nodes, pods = factory.informer(R.NODES), factory.informer(R.PODS)
    nodes.apply(
        "ADDED", node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    )
    nodes.apply("ADDED", node("w1", cpu="1"))
    nodes.apply("ADDED", node("w2", cpu="1"))
    pods.apply("ADDED", pod("big", cpu="2"))
    await _drain(sched)
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    assert broadcaster.recorders["default-scheduler"].events == [
        ("big", "Warning", "FailedScheduling", message)
    ]
    name, condition, nominating = api.status_patches[0]
    assert (name, condition) == (
        "big",
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message},
    )
    assert nominating is not None and nominating.nominated_node_name == ""
    assert sched.queue.where("uid-default-big") == "unschedulable"
    # A node that fits arrives: the pod is retried after its backoff and bound there.
    nodes.apply("ADDED", node("w3", cpu="4"))
    assert sched.queue.where("uid-default-big") == "backoff"
    clock.advance(1.5)
    sched.queue.flush_backoff_completed()
    await _drain(sched)
    assert api.bound == [("big", "w3")]


async def test_only_pods_for_its_profiles() -> None:
    sched, factory, api, _, _ = _scheduler(("other-scheduler",))
    factory.informer(R.NODES).apply("ADDED", node("n1"))
    factory.informer(R.PODS).apply("ADDED", pod("mine", schedulerName="other-scheduler"))
    factory.informer(R.PODS).apply("ADDED", pod("theirs"))
    await _drain(sched)
    assert api.bound == [("mine", "n1")]
    assert sched.queue.where("uid-default-theirs") == ""


async def test_binding_failure_forgets_and_backs_off() -> None:
    sched, factory, api, broadcaster, _ = _scheduler()
    factory.informer(R.NODES).apply("ADDED", node("n1"))
    factory.informer(R.PODS).apply("ADDED", pod("p", cpu="1"))
    api.fail_bind = errors.InternalError(message="etcd is sad")
    await _drain(sched)
    assert sched.cache.node_info("n1").requested.milli_cpu == 0  # type: ignore[union-attr]
    assert not sched.cache.is_assumed("uid-default-p")
    assert sched.queue.where("uid-default-p") == "backoff"
    events = broadcaster.recorders["default-scheduler"].events
    assert events[-1][:3] == ("p", "Warning", "FailedScheduling")
    assert "etcd is sad" in events[-1][3]
    assert api.status_patches[-1][1]["reason"] == "SchedulerError"


async def test_pods_being_deleted_are_skipped() -> None:
    sched, factory, api, broadcaster, _ = _scheduler()
    factory.informer(R.NODES).apply("ADDED", node("n1"))
    doomed = pod("doomed")
    doomed["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    factory.informer(R.PODS).apply("ADDED", doomed)
    await _drain(sched)
    assert api.bound == []
    assert broadcaster.recorders["default-scheduler"].events == [
        ("doomed", "Warning", "FailedScheduling", "skip schedule deleting pod: default/doomed")
    ]


async def test_terminated_pods_free_their_node() -> None:
    sched, factory, api, _, clock = _scheduler()
    nodes, pods = factory.informer(R.NODES), factory.informer(R.PODS)
    nodes.apply("ADDED", node("n1", cpu="1"))
    running = pod("job", cpu="1", node_name="n1")
    pods.apply("ADDED", running)
    pods.apply("ADDED", pod("next", cpu="1"))
    await _drain(sched)
    assert sched.queue.where("uid-default-next") == "unschedulable"
    done = pod("job", cpu="1", node_name="n1")
    done["status"]["phase"] = "Succeeded"
    pods.apply("MODIFIED", done)
    assert sched.cache.node_info("n1").requested.milli_cpu == 0  # type: ignore[union-attr]
    clock.advance(2)
    sched.queue.flush_backoff_completed()
    await _drain(sched)
    assert api.bound == [("next", "n1")]


async def test_priority_class_fallback() -> None:
    sched, factory, _, _, _ = _scheduler()
    factory.informer(R.PRIORITYCLASSES).apply(
        "ADDED", {"metadata": {"name": "high"}, "value": 1000, "kind": "PriorityClass"}
    )
    info = sched.pod_info(pod("p", priorityClassName="high"))
    assert info.priority == 1000
    assert sched.pod_info(pod("q", priorityClassName="high", priority=7)).priority == 7


async def test_preemption_nominates_and_evicts() -> None:
    sched, factory, api, broadcaster, _ = _scheduler()
    nodes, pods = factory.informer(R.NODES), factory.informer(R.PODS)
    nodes.apply("ADDED", node("n1", cpu="1"))
    pods.apply("ADDED", pod("low", cpu="1", node_name="n1", priority=0))
    pods.apply("ADDED", pod("vip", cpu="1", priority=100))
    await _drain(sched)
    assert api.preempted == ["low"]
    _, condition, nominating = api.status_patches[-1]
    assert condition["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert nominating is not None and nominating.nominated_node_name == "n1"
    assert [p.name for p in sched.queue.nominated_pods_for_node("n1")] == ["vip"]
    assert (
        "low",
        "Normal",
        "Preempted",
        "Preempted by pod uid-default-vip on node n1",
    ) in broadcaster.recorders["default-scheduler"].events


class _Gate(ReservePlugin, PermitPlugin):
    """Refuses to reserve pods named "refused" and holds "held" at Permit."""

    name = "TestGate"

    def __init__(self) -> None:
        self.unreserved: list[str] = []

    def reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        if pod.name == "refused":
            return Status.of(Code.UNSCHEDULABLE, "node(s) were refused by the test gate")
        return None

    def unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        self.unreserved.append(pod.name)

    def permit(self, state: CycleState, pod: PodInfo, node: str) -> tuple[Status | None, float]:
        if pod.name == "held":
            return Status(Code.WAIT), 30.0
        return None, 0.0


async def test_reserve_and_permit_extension_points() -> None:
    gate = _Gate()
    client: Any = object.__new__(Client)
    factory = InformerFactory(client)
    api, broadcaster = FakeAPI(), _Broadcaster()
    sched = Scheduler(
        factory,
        api,
        broadcaster,  # type: ignore[arg-type]
        clock=FakeClock(),
        plugins=(*DEFAULT_PLUGINS, PluginSpec("TestGate")),
        out_of_tree={"TestGate": lambda _args, _fw: gate},
    )
    factory.informer(R.NODES).apply("ADDED", node("n1"))
    factory.informer(R.PODS).apply("ADDED", pod("refused", cpu="1"))
    await _drain(sched)
    assert api.bound == []
    assert gate.unreserved == ["refused"]
    assert sched.cache.node_info("n1").requested.milli_cpu == 0  # type: ignore[union-attr]
    assert broadcaster.recorders["default-scheduler"].events[-1][3] == (
        "0/1 nodes are available: 1 node(s) were refused by the test gate."
    )

    factory.informer(R.PODS).apply("ADDED", pod("held", cpu="1"))
    fw = sched.frameworks["default-scheduler"]
    qpi = await asyncio.wait_for(sched.queue.pop(), 1)
    attempt = asyncio.create_task(sched.schedule_one(qpi))

    async def waiting() -> None:
        while "uid-default-held" not in fw.waiting_pods:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(waiting(), 2)
    assert api.bound == []
    # The room stays taken while the pod waits at Permit.
    assert sched.cache.node_info("n1").requested.milli_cpu == 1000  # type: ignore[union-attr]
    fw.waiting_pods["uid-default-held"].allow("TestGate")
    await asyncio.wait_for(attempt, 2)
    assert api.bound == [("held", "n1")]
