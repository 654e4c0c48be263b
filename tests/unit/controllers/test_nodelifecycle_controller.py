"""The node lifecycle controller's passes against a fake API on a fake clock: NotReady and
Unknown nodes get their NoExecute taint at the zone's pace, pods are marked not ready, and
disruption modes stop the tainting."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, cast

from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventRecorder,
    FakeClock,
    InformerFactory,
    rfc3339,
)

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


class FakeAPI:
    """Nodes and pods, with the writes the controller makes: node patches (resourceVersion
    preconditions honoured) and status PUTs. Every write is mirrored into the informers."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 100
        self.ctrl: NodeLifecycleController | None = None

    def put(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        event = "MODIFIED" if (plural, key) in self.objects else "ADDED"
        self.objects[(plural, key)] = obj
        if self.ctrl is not None:
            informer = self.ctrl.nodes if plural == "nodes" else self.ctrl.pods
            informer.apply(event, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        key = f"{namespace}/{name}" if namespace else name
        if (rp.plural, key) not in self.objects:
            raise errors.NotFound(message="not found")
        return copy.deepcopy(self.objects[(rp.plural, key)])

    async def patch(
        self, rp: ResourcePath, name: str, patch: Any, namespace: str | None = None, **_: Any
    ) -> Any:
        obj = copy.deepcopy(self.objects[(rp.plural, name)])
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="modified")
        for section, values in patch.items():
            if section == "metadata":
                obj["metadata"].setdefault("labels", {}).update(values.get("labels") or {})
                continue
            for k, v in values.items():
                if v is None:
                    obj.setdefault(section, {}).pop(k, None)
                else:
                    obj.setdefault(section, {})[k] = v
        return self.put(rp.plural, obj)

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        assert method == "PUT" and path.endswith("/status"), (method, path)
        plural = "pods" if "/pods/" in path else "nodes"
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
        current = self.objects[(plural, key)]
        if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="modified")
        return self.put(plural, {**copy.deepcopy(current), "status": copy.deepcopy(body["status"])})


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append((reason, message))


def make(config: ControllerConfig) -> tuple[NodeLifecycleController, FakeAPI, Events, FakeClock]:
    api, events, clock = FakeAPI(), Events(), FakeClock()
    client = cast(Client, api)
    ctx = ControllerContext(
        client=client,
        informers=InformerFactory(client),
        recorder=cast(EventRecorder, events),
        clock=clock,
        config=config,
    )
    ctrl = NodeLifecycleController(ctx)
    api.ctrl = ctrl
    return ctrl, api, events, clock


def add_node(api: FakeAPI, name: str, ready: str, now: datetime, zone: str = "z") -> None:
    stamp = rfc3339(now)
    api.put(
        "nodes",
        {
            "metadata": {
                "name": name,
                "uid": f"uid-{name}",
                "creationTimestamp": stamp,
                "labels": {"topology.kubernetes.io/zone": zone},
            },
            "spec": {},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready,
                        "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp,
                    }
                ]
            },
        },
    )


def heartbeat(api: FakeAPI, name: str, now: datetime) -> None:
    node = copy.deepcopy(api.objects[("nodes", name)])
    for cond in node["status"]["conditions"]:
        cond["lastHeartbeatTime"] = rfc3339(now)
    api.put("nodes", node)


def taints(api: FakeAPI, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["key"], t["effect"]): t for t in api.objects[("nodes", name)]["spec"].get("taints") or []}


async def passes(ctrl: NodeLifecycleController) -> None:
    await ctrl.monitor_node_health()
    await ctrl.no_execute_tainting_pass()


CONFIG = ControllerConfig(node_monitor_grace_period=40, node_startup_grace_period=60, node_eviction_rate=0.1)


async def test_not_ready_node_is_tainted_and_swapped_to_unreachable_when_it_goes_silent() -> None:
    ctrl, api, events, clock = make(CONFIG)
    add_node(api, "bad", "False", clock.now())
    add_node(api, "good", "True", clock.now())
    await passes(ctrl)
    bad = taints(api, "bad")
    assert (NOT_READY, "NoExecute") in bad
    assert bad[(NOT_READY, "NoExecute")]["timeAdded"] == rfc3339(clock.now())
    assert not taints(api, "good")
    assert ("RegisteredNode", "Node bad event: Registered Node bad in Controller") in events.seen

    # "bad" stops posting altogether: Unknown replaces False (after the grace period), and on the
    # next pass the unreachable taint replaces not-ready at once, without waiting for a token.
    for _ in range(10):
        clock.advance(5)
        heartbeat(api, "good", clock.now())
        await passes(ctrl)
    ready = next(c for c in api.objects[("nodes", "bad")]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown"
    bad = taints(api, "bad")
    assert (UNREACHABLE, "NoExecute") in bad and (NOT_READY, "NoExecute") not in bad


async def test_pods_on_a_node_that_goes_down_are_marked_not_ready() -> None:
    ctrl, api, events, clock = make(CONFIG)
    add_node(api, "n1", "True", clock.now())
    add_node(api, "n2", "True", clock.now())
    api.put(
        "pods",
        {
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "x"}]},
        },
    )
    await passes(ctrl)
    for _ in range(9):
        clock.advance(5)
        heartbeat(api, "n2", clock.now())
        await passes(ctrl)
    pod = api.objects[("pods", "ns/p")]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready == {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(clock.now())}
    assert ("NodeNotReady", "Node is not ready") in events.seen
    assert ("NodeNotReady", "Node n1 status is now: NodeNotReady") in events.seen


async def test_tainting_is_paced_per_zone() -> None:
    ctrl, api, _events, clock = make(CONFIG)
    for name in ("a", "b"):
        add_node(api, name, "False", clock.now())
    for name in ("c", "d", "e", "f", "g"):
        add_node(api, name, "True", clock.now())
    await passes(ctrl)
    tainted = [n for n in "ab" if (NOT_READY, "NoExecute") in taints(api, n)]
    assert len(tainted) == 1, "burst of one"
    clock.advance(5)
    for name in "cdefg":
        heartbeat(api, name, clock.now())
    await passes(ctrl)
    tainted = [n for n in "ab" if (NOT_READY, "NoExecute") in taints(api, n)]
    assert len(tainted) == 1, "0.1 per second: not yet"
    clock.advance(6)
    await passes(ctrl)
    assert all((NOT_READY, "NoExecute") in taints(api, n) for n in "ab")


async def test_partial_disruption_of_a_small_zone_stops_tainting() -> None:
    ctrl, api, _events, clock = make(CONFIG)
    for name in ("a", "b", "c"):
        add_node(api, name, "False", clock.now())
    add_node(api, "d", "True", clock.now())
    await ctrl.monitor_node_health()
    assert ctrl.zone_states == {":\x00:z": "PartialDisruption"}
    await ctrl.no_execute_tainting_pass()
    assert not any(taints(api, n) for n in "abc")


async def test_when_every_zone_is_down_the_no_execute_taints_come_off() -> None:
    ctrl, api, _events, clock = make(CONFIG)
    add_node(api, "a", "True", clock.now(), zone="z1")
    add_node(api, "b", "True", clock.now(), zone="z2")
    await passes(ctrl)
    # Zone z1 goes down while z2 is fine: its node is tainted.
    for _ in range(10):
        clock.advance(5)
        heartbeat(api, "b", clock.now())
        await passes(ctrl)
    assert (UNREACHABLE, "NoExecute") in taints(api, "a")
    assert ctrl.zone_states == {":\x00:z1": "FullDisruption", ":\x00:z2": "Normal"}
    # Then z2 goes down too: more likely the control plane's own trouble, so taints come off.
    for _ in range(10):
        clock.advance(5)
        await passes(ctrl)
    for name in "ab":
        assert not [t for t in taints(api, name).values() if t["effect"] == "NoExecute"], name
    assert set(ctrl.zone_states.values()) == {"FullDisruption"}
    assert all(t.limiter.qps == 0 for t in ctrl.tainters.values())


async def test_no_schedule_taints_follow_conditions_and_cordon() -> None:
    ctrl, api, _events, clock = make(CONFIG)
    add_node(api, "n1", "False", clock.now())
    node = copy.deepcopy(api.objects[("nodes", "n1")])
    node["spec"]["unschedulable"] = True
    api.put("nodes", node)
    await ctrl.reconcile("n1")
    assert set(taints(api, "n1")) == {
        (NOT_READY, "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    node = copy.deepcopy(api.objects[("nodes", "n1")])
    node["spec"]["unschedulable"] = False
    node["status"]["conditions"][0]["status"] = "True"
    api.put("nodes", node)
    await ctrl.reconcile("n1")
    assert taints(api, "n1") == {}
