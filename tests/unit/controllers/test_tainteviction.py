"""Taint eviction timing: who goes at once, who after tolerationSeconds, who stays, and cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventRecorder,
    FakeClock,
    InformerFactory,
    rfc3339,
)
from controlplane.controllers.tainteviction import TaintEvictionController
from controlplane.controllers.tainteviction_schedule import EvictionSchedule, decide, tolerates

UNREACHABLE = "node.kubernetes.io/unreachable"


def taint(added: str | None = None, key: str = UNREACHABLE) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "effect": "NoExecute"}
    if added:
        t["timeAdded"] = added
    return t


def toleration(seconds: int | None = None, key: str = UNREACHABLE) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


def test_toleration_matching() -> None:
    assert tolerates({"operator": "Exists"}, taint())
    assert tolerates({"key": UNREACHABLE, "operator": "Equal", "value": ""}, taint())
    assert not tolerates({"key": UNREACHABLE, "operator": "Equal", "value": "x"}, taint())
    assert not tolerates({"key": UNREACHABLE, "effect": "NoSchedule", "operator": "Exists"}, taint())
    assert not tolerates({"key": "other", "operator": "Exists"}, taint())


def test_decisions() -> None:
    clock = FakeClock()
    now = clock.now()
    added = rfc3339(now - timedelta(seconds=10))
    assert decide([], [toleration(5)], now).action == "cancel"
    assert decide([taint(added)], [], now) == decide([taint(added)], [], now)
    assert decide([taint(added)], [], now).at == now, "not tolerated: at once"
    assert decide([taint(added)], [toleration()], now).action == "never"
    at = decide([taint(added)], [toleration(300)], now).at
    assert at == now - timedelta(seconds=10) + timedelta(seconds=300), "counted from timeAdded"
    assert decide([taint()], [toleration(30)], now).at == now + timedelta(seconds=30), (
        "no timeAdded: from now"
    )
    assert decide([taint(added)], [toleration(0)], now).at == now
    two = [taint(added), taint(added, key="node.kubernetes.io/not-ready")]
    mixed = [toleration(), toleration(60, key="node.kubernetes.io/not-ready")]
    assert decide(two, mixed, now).at == now - timedelta(seconds=10) + timedelta(seconds=60)
    assert decide(two, [toleration()], now).at == now, "one taint not tolerated"


def test_schedule_bookkeeping() -> None:
    clock = FakeClock()
    now = clock.now()
    schedule = EvictionSchedule()
    assert schedule.add("ns/a", now, now + timedelta(seconds=2))
    assert not schedule.add("ns/a", now, now)
    assert schedule.due(now) == []
    assert schedule.next_fire() == now + timedelta(seconds=2)
    assert schedule.due(now + timedelta(seconds=2)) == ["ns/a"]
    assert schedule.next_fire() is None
    schedule.finish("ns/a", ok=True)
    assert "ns/a" in schedule and not schedule.add("ns/a", now, now), "evicted once"
    assert not schedule.cancel("ns/a"), "nothing pending to cancel"
    assert schedule.add("ns/a", now, now)
    assert schedule.cancel("ns/a")
    schedule.add("ns/b", now, now)
    schedule.due(now)
    schedule.finish("ns/b", ok=False)
    assert "ns/b" not in schedule, "a failed eviction may be scheduled again"


class FakePods:
    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        key = f"{namespace}/{name}"
        if key not in self.pods:
            raise errors.NotFound(message=f'pods "{name}" not found')
        return copy.deepcopy(self.pods[key])

    async def patch(
        self, rp: ResourcePath, name: str, patch: Any, namespace: str | None = None, **_: Any
    ) -> Any:
        pod = self.pods[f"{namespace}/{name}"]
        pod.setdefault("status", {}).setdefault("conditions", []).extend(patch["status"]["conditions"])
        return copy.deepcopy(pod)

    async def delete(self, rp: ResourcePath, name: str, namespace: str | None = None, **_: Any) -> Any:
        self.deleted.append(f"{namespace}/{name}")
        return self.pods.pop(f"{namespace}/{name}")


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append((reason, message))


def pod(name: str, tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": {"nodeName": "n1", "tolerations": tolerations},
        "status": {},
    }


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[TaintEvictionController, FakePods, Events, FakeClock]]:
    api, events, clock = FakePods(), Events(), FakeClock()
    client = cast(Client, api)
    ctx = ControllerContext(
        client=client,
        informers=InformerFactory(client),
        recorder=cast(EventRecorder, events),
        clock=clock,
        config=ControllerConfig(),
    )
    ctrl = TaintEvictionController(ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(ctrl.run_extra(stop))
    try:
        yield ctrl, api, events, clock
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_evictions_happen_on_time_and_removing_the_taint_cancels_them() -> None:
    async with running() as (ctrl, api, events, clock):
        pods = {
            "now": pod("now", []),
            "short": pod("short", [toleration(2)]),
            "later": pod("later", [toleration(30)]),
            "forever": pod("forever", [toleration()]),
        }
        for p in pods.values():
            api.pods[f"ns/{p['metadata']['name']}"] = copy.deepcopy(p)
            ctrl.pods.apply("ADDED", p)
        node = {"metadata": {"name": "n1"}, "spec": {"taints": [taint(rfc3339(clock.now()))]}}
        ctrl.nodes.apply("ADDED", node)
        await ctrl.reconcile("n1")
        await settle()
        assert api.deleted == ["ns/now"]
        assert ("TaintManagerEviction", "Marking for deletion Pod ns/now") in events.seen

        clock.advance(1.9)
        await settle()
        assert api.deleted == ["ns/now"]
        clock.advance(0.1)
        await settle()
        assert api.deleted == ["ns/now", "ns/short"]

        # The node recovers: its taint goes, and so does the pending eviction.
        ctrl.nodes.apply("MODIFIED", {"metadata": {"name": "n1"}, "spec": {}})
        await ctrl.reconcile("n1")
        clock.advance(60)
        await settle()
        assert api.deleted == ["ns/now", "ns/short"]
        assert ("TaintManagerEviction", "Cancelling deletion of Pod ns/later") in events.seen
        assert not any("forever" in message for _, message in events.seen)


async def test_deleted_pods_get_the_disruption_target_condition_first() -> None:
    async with running() as (ctrl, api, _events, clock):
        p = pod("victim", [])
        conditions_at_delete: list[Any] = []
        original_delete = api.delete

        async def delete(rp: ResourcePath, name: str, namespace: str | None = None, **kw: Any) -> Any:
            conditions_at_delete.extend(api.pods[f"{namespace}/{name}"]["status"]["conditions"])
            return await original_delete(rp, name, namespace, **kw)

        api.delete = delete  # type: ignore[method-assign]
        api.pods["ns/victim"] = copy.deepcopy(p)
        ctrl.pods.apply("ADDED", p)
        ctrl.nodes.apply(
            "ADDED", {"metadata": {"name": "n1"}, "spec": {"taints": [taint(rfc3339(clock.now()))]}}
        )
        await ctrl.reconcile("n1")
        await settle()
        assert conditions_at_delete == [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": rfc3339(clock.now()),
            }
        ]


async def test_a_pod_scheduled_onto_a_tainted_node_is_handled_too() -> None:
    async with running() as (ctrl, api, _events, clock):
        ctrl.nodes.apply(
            "ADDED", {"metadata": {"name": "n1"}, "spec": {"taints": [taint(rfc3339(clock.now()))]}}
        )
        await ctrl.reconcile("n1")
        p = pod("late", [toleration(5)])
        api.pods["ns/late"] = copy.deepcopy(p)
        ctrl.pods.apply("ADDED", p)
        await ctrl.reconcile("ns/late")
        clock.advance(5)
        await settle()
        assert api.deleted == ["ns/late"]
