"""Pod workers against an in-memory API and a fake clock: status writes, completion, deletion."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from controlplane.api import errors
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.agent.config import AgentConfig
from node_bootstrap.agent.kube import PODS
from node_bootstrap.agent.logs import LogStore
from node_bootstrap.agent.node import SimNode, identities
from node_bootstrap.agent.pods import Backoff
from node_bootstrap.agent.podworker import PodWorker
from node_bootstrap.agent.watch import Reflector
from tests.unit.node_bootstrap.fakes import FakeApi, settle, tick

Obj = dict[str, Any]


@dataclass
class Harness:
    api: FakeApi
    clock: FakeClock
    node: SimNode
    logs: LogStore
    workers: dict[str, PodWorker] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self.workers:
            self.workers[uid].update(pod)
            return
        worker = PodWorker(
            pod, host=self.node, api=self.api, clock=self.clock, logs=self.logs, backoff=Backoff()
        )
        self.workers[uid] = worker
        self.tasks.append(asyncio.create_task(worker.run()))

    def on_delete(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.remove()

    def create_pod(self, name: str, annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
        return self.api.put_object(
            "pods",
            {
                "metadata": {"name": name, "namespace": "ns", "annotations": annotations or {}},
                "spec": {
                    "nodeName": "n1",
                    "restartPolicy": "Always",
                    "containers": [{"name": "web", "image": "nginx:1.25"}],
                    **spec,
                },
                "status": {"phase": "Pending"},
            },
        )

    def pod(self, name: str) -> Obj | None:
        return self.api.obj("pods", name, "ns")

    def status_writes(self, name: str) -> list[Any]:
        return [c[3] for c in self.api.calls if c[1] == "pods/status" and c[2] == name]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    api, clock = FakeApi(), FakeClock()
    config = AgentConfig(node_names=("n1",), node_ip="10.0.0.5")
    node = SimNode(config, identities(config)[0], api=api, clock=clock, port=1)
    api.put_object("nodes", {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}})
    await node.register()
    h = Harness(api, clock, node, LogStore())
    reflector = Reflector(
        api,
        PODS,
        params={"fieldSelector": "spec.nodeName=n1"},
        on_upsert=h.on_pod,
        on_delete=h.on_delete,
        clock=clock,
    )
    watch = asyncio.create_task(reflector.run())
    await settle()
    yield h
    watch.cancel()
    for task in h.tasks:
        task.cancel()
    await asyncio.gather(watch, *h.tasks, return_exceptions=True)


async def test_pod_goes_pending_then_running_with_an_ip_from_the_pod_cidr(harness: Harness) -> None:
    harness.create_pod("web")
    await settle(60)
    writes = harness.status_writes("web")
    assert [w["status"]["phase"] for w in writes] == ["Pending", "Running"]
    assert writes[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert all(w["metadata"]["resourceVersion"] for w in writes)
    pod = harness.pod("web")
    assert pod is not None
    status = pod["status"]
    assert status["phase"] == "Running"
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.244.1.0/24")
    assert status["hostIP"] == "10.0.0.5"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    lines = [line.text for line in harness.logs.get("ns", "web").buffer("web").lines()]  # type: ignore[union-attr]
    assert any('Pulling image "nginx:1.25"' in line for line in lines)
    assert any("Started container web" in line for line in lines)
    # Nothing more to say: no further writes while time passes.
    await tick(harness.clock, 30, step=10)
    assert len(harness.status_writes("web")) == 2


async def test_two_pods_get_distinct_addresses(harness: Harness) -> None:
    harness.create_pod("a")
    harness.create_pod("b")
    await settle(80)
    ips = {harness.pod(n)["status"]["podIP"] for n in ("a", "b")}  # type: ignore[index]
    assert len(ips) == 2


async def test_run_seconds_pod_succeeds_and_frees_its_address(harness: Harness) -> None:
    harness.create_pod("job", {"sim.pinnace.dev/run-seconds": "2"}, restartPolicy="Never")
    await settle(60)
    assert harness.pod("job")["status"]["phase"] == "Running"  # type: ignore[index]
    await tick(harness.clock, 2)
    await settle(60)
    status = harness.pod("job")["status"]  # type: ignore[index]
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert harness.node._ipam is not None and harness.node._ipam.in_use() == 0


async def test_readiness_annotation_change_takes_effect(harness: Harness) -> None:
    harness.create_pod("web")
    await settle(60)
    harness.api.modify(
        "pods", "web", "ns", lambda o: o["metadata"]["annotations"].update({"sim.pinnace.dev/ready": "false"})
    )
    await settle(60)
    conds = {c["type"]: c for c in harness.pod("web")["status"]["conditions"]}  # type: ignore[index]
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["message"] == "containers with unready status: [web]"


async def test_graceful_deletion_ends_with_a_uid_conditional_delete(harness: Harness) -> None:
    created = harness.create_pod("web")
    await settle(60)

    def mark(o: Obj) -> None:
        o["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z"
        o["metadata"]["deletionGracePeriodSeconds"] = 30

    harness.api.modify("pods", "web", "ns", mark)
    await settle(80)
    assert harness.pod("web") is None
    (delete,) = harness.api.calls_of("delete", "pods")
    assert delete[3] == {"gracePeriodSeconds": 0, "preconditions": {"uid": created["metadata"]["uid"]}}
    final = harness.status_writes("web")[-1]["status"]
    assert final["phase"] == "Succeeded"
    assert final["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert harness.logs.get("ns", "web") is None
    assert harness.node._ipam is not None and harness.node._ipam.in_use() == 0


async def test_ignore_sigterm_holds_the_pod_for_its_grace_period(harness: Harness) -> None:
    harness.create_pod("stubborn", {"sim.pinnace.dev/ignore-sigterm": "true"})
    await settle(60)

    def mark(o: Obj) -> None:
        o["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:05Z"
        o["metadata"]["deletionGracePeriodSeconds"] = 5

    harness.api.modify("pods", "stubborn", "ns", mark)
    await settle(60)  # the agent sees the deletion now; the grace period runs from here
    await tick(harness.clock, 4)
    assert harness.pod("stubborn") is not None
    await tick(harness.clock, 1)
    await settle(60)
    assert harness.pod("stubborn") is None


async def test_a_conflicting_status_write_is_recomputed_and_retried(harness: Harness) -> None:
    harness.api.fail_next["patch pods"] = errors.Conflict.modified("pods", "", "web")
    harness.create_pod("web")
    await settle(80)
    assert harness.pod("web")["status"]["phase"] == "Running"  # type: ignore[index]
    assert any(c[0] == "get" and c[1] == "pods" for c in harness.api.calls)


async def test_a_status_someone_else_changed_is_written_again(harness: Harness) -> None:
    harness.create_pod("web")
    await settle(60)
    assert len(harness.status_writes("web")) == 2

    def mark_not_ready(o: Obj) -> None:  # what the node lifecycle controller does to a lost node's pods
        for cond in o["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond["status"], cond["reason"] = "False", "NodeNotReady"

    harness.api.modify("pods", "web", "ns", mark_not_ready)
    await settle(60)
    conds = {c["type"]: c for c in harness.pod("web")["status"]["conditions"]}  # type: ignore[index]
    assert conds["Ready"]["status"] == "True" and "reason" not in conds["Ready"]
    assert len(harness.status_writes("web")) == 3
    # An unrelated change (a label) writes nothing.
    harness.api.modify(
        "pods", "web", "ns", lambda o: o["metadata"].setdefault("labels", {}).update({"a": "b"})
    )
    await settle(60)
    assert len(harness.status_writes("web")) == 3
