"""Pod GC decisions: the terminated-pod threshold, the orphan quarantine, unscheduled pods."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.podgc import PodGCController, oldest_terminated_beyond_threshold
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    rfc3339,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(
    name: str, phase: str = "Running", *, node: str = "", age: int = 0, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "resourceVersion": "1",
        "creationTimestamp": rfc3339(T0 - timedelta(minutes=age)),
    }
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}


def node(name: str, *, ready: bool = True, taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"},
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_threshold_keeps_the_newest_terminated_pods() -> None:
    pods = [
        pod("running", age=100),
        pod("old", "Succeeded", age=50),
        pod("b-mid", "Failed", age=20),
        pod("a-mid", "Succeeded", age=20),
        pod("new", "Failed", age=1),
    ]
    victims = oldest_terminated_beyond_threshold(pods, 2)
    assert [p["metadata"]["name"] for p in victims] == ["old", "a-mid"]
    assert oldest_terminated_beyond_threshold(pods, 4) == []


class FakeClient:
    def __init__(self) -> None:
        self.nodes: set[str] = set()
        self.calls: list[tuple[Any, ...]] = []

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", rp.plural, name))
        if rp.plural == "nodes" and name in self.nodes:
            return node(name)
        raise errors.NotFound(message=f'{rp.plural} "{name}" not found')

    async def patch(
        self, rp: ResourcePath, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Any:
        self.calls.append(("patch", name, copy.deepcopy(patch), kw.get("subresource")))
        return {}

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> None:
        self.calls.append(("delete", name, options))


def controller(client: FakeClient, clock: FakeClock, threshold: int = 100) -> PodGCController:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("podgc"),  # type: ignore[arg-type]
        clock=clock,
        config=ControllerConfig(
            terminated_pod_gc_threshold=threshold, orphaned_pod_grace=40.0, pod_gc_period=20.0
        ),
    )
    return PodGCController(ctx)


def deleted(client: FakeClient) -> list[str]:
    return [c[1] for c in client.calls if c[0] == "delete"]


async def test_orphans_wait_out_the_quarantine_and_a_live_get() -> None:
    client = FakeClient()
    clock = FakeClock(T0)
    gc = controller(client, clock)
    gc.nodes.apply("ADDED", node("alive"))
    for p in (pod("on-alive", node="alive"), pod("on-gone", node="gone"), pod("on-late", node="late")):
        gc.pods.apply("ADDED", p)
    client.nodes.add("late")  # exists, but the informer has not seen it yet
    assert await gc.reconcile("podgc") == 20.0
    assert deleted(client) == []
    clock.advance(20)
    await gc.reconcile("podgc")
    assert deleted(client) == []
    clock.advance(20)
    await gc.reconcile("podgc")
    assert deleted(client) == ["on-gone"]
    patch = next(c for c in client.calls if c[0] == "patch")
    assert patch[3] == "status"
    status = patch[2]["status"]
    assert status["phase"] == "Failed"
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "DisruptionTarget",
        "True",
        "DeletionByPodGC",
        "PodGC: node no longer exists",
    )
    assert ("get", "nodes", "late") in client.calls
    assert next(c for c in client.calls if c[0] == "delete")[2] == {"gracePeriodSeconds": 0}


async def test_terminated_unscheduled_and_out_of_service_pods() -> None:
    client = FakeClient()
    clock = FakeClock(T0)
    gc = controller(client, clock, threshold=1)
    tainted = node(
        "broken", ready=False, taints=[{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]
    )
    gc.nodes.apply("ADDED", tainted)
    gc.nodes.apply("ADDED", node("fine"))
    for p in (
        pod("done-old", "Succeeded", node="fine", age=10),
        pod("done-new", "Succeeded", node="fine", age=1),
        pod("stuck", deleting=True),
        pod("leaving", node="broken", deleting=True),
        pod("leaving-fine", node="fine", deleting=True),
    ):
        gc.pods.apply("ADDED", p)
    await gc.reconcile("podgc")
    assert sorted(deleted(client)) == ["done-old", "leaving", "stuck"]
    # An already terminal pod is deleted without a status write.
    patched = [c[1] for c in client.calls if c[0] == "patch"]
    assert sorted(patched) == ["leaving", "stuck"]
