"""Node registration, Lease heartbeat and NodeStatus, against an in-memory API and a fake clock."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from node_bootstrap.agent.clock import FakeClock, parse_time
from node_bootstrap.agent.config import AgentConfig
from node_bootstrap.agent.node import NodeIdentity, SimNode, identities, initial_node, node_conditions
from tests.unit.node_bootstrap.fakes import FakeApi, settle, tick


def make_node(api: FakeApi, clock: FakeClock, **overrides: Any) -> SimNode:
    config = AgentConfig(node_names=("n1",), **overrides)
    return SimNode(config, identities(config)[0], api=api, clock=clock, port=12345)


def test_initial_node_carries_labels_taints_and_provider_id() -> None:
    config = AgentConfig(
        node_names=("a", "b"),
        node_ip="10.0.0.10",
        labels={"tier": "web", "kubernetes.io/os": "custom"},
        taints=({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},),
        provider_id="aws:///{name}/i-{index}",
        instance_type="m5.large",
        zone="eu-west-1a",
        region="eu-west-1",
        cloud_provider="external",
    )
    ident = identities(config)[1]
    assert ident == NodeIdentity("b", 1, "10.0.0.11", "aws:///b/i-1")
    node = initial_node(config, ident)
    assert node["metadata"]["labels"] == {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": "b",
        "kubernetes.io/os": "custom",  # --node-labels win, as upstream
        "node.kubernetes.io/instance-type": "m5.large",
        "topology.kubernetes.io/zone": "eu-west-1a",
        "topology.kubernetes.io/region": "eu-west-1",
        "tier": "web",
    }
    assert node["spec"]["providerID"] == "aws:///b/i-1"
    assert node["spec"]["taints"] == [
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"},
    ]
    assert node["metadata"]["annotations"]["alpha.kubernetes.io/provided-node-ip"] == "10.0.0.11"


def test_node_conditions_follow_annotations() -> None:
    healthy = {c["type"]: c for c in node_conditions({})}
    assert healthy["Ready"]["reason"] == "KubeletReady"
    assert healthy["Ready"]["message"] == "kubelet is posting ready status"
    assert healthy["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert healthy["DiskPressure"]["message"] == "kubelet has no disk pressure"
    assert healthy["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    sick = {
        c["type"]: c
        for c in node_conditions(
            {"sim.pinnace.dev/ready": "false", "sim.pinnace.dev/memory-pressure": "true"}
        )
    }
    assert sick["Ready"]["status"] == "False" and sick["Ready"]["reason"] == "KubeletNotReady"
    assert sick["MemoryPressure"]["status"] == "True"
    assert sick["MemoryPressure"]["message"] == "kubelet has insufficient memory available"


async def test_register_creates_the_node_and_reports_status() -> None:
    api, clock = FakeApi(), FakeClock()
    node = make_node(api, clock, capacity={"cpu": "8", "memory": "16Gi", "pods": "50"})
    await node.register()
    stored = api.obj("nodes", "n1")
    assert stored is not None
    status = stored["status"]
    assert status["capacity"] == {
        "cpu": "8",
        "memory": "16Gi",
        "pods": "50",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    assert status["allocatable"] == status["capacity"]
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": "n1"},
    ]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 12345}}
    assert status["nodeInfo"]["kubeletVersion"] == "v1.33.0"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.7.")
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]
    assert all(c["lastHeartbeatTime"] == "2026-01-01T00:00:00Z" for c in status["conditions"])
    assert node.uid == stored["metadata"]["uid"]


async def test_register_adopts_an_existing_node() -> None:
    api, clock = FakeApi(), FakeClock()
    api.put_object(
        "nodes",
        {
            "metadata": {
                "name": "n1",
                "uid": "old-uid",
                "labels": {"kubernetes.io/hostname": "wrong", "team": "a"},
            },
            "spec": {"podCIDR": "10.244.3.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "NetworkUnavailable", "status": "False"}]},
        },
    )
    node = make_node(api, clock, taints=({"key": "new", "effect": "NoExecute"},))
    await node.register()
    stored = api.obj("nodes", "n1")
    assert stored is not None
    assert stored["metadata"]["uid"] == "old-uid"
    assert stored["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert stored["metadata"]["labels"]["team"] == "a"
    # Registration taints apply to a new Node only, as upstream.
    assert stored["spec"]["taints"] == [{"key": "k", "effect": "NoSchedule"}]
    types = [c["type"] for c in stored["status"]["conditions"]]
    assert "NetworkUnavailable" in types and "Ready" in types
    assert node.pod_cidrs() == ["10.244.3.0/24"]


async def test_lease_is_created_owned_by_the_node_and_renewed_every_ten_seconds() -> None:
    api, clock = FakeApi(), FakeClock()
    node = make_node(api, clock)
    await node.register()
    task = asyncio.create_task(node.lease_loop())
    try:
        await settle()
        lease = api.obj("leases", "n1", "kube-node-lease")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "n1"
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
        assert lease["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": node.uid}
        ]
        renewals: list[float] = []
        for _ in range(3):
            await tick(clock, 10, step=10)
            current = api.obj("leases", "n1", "kube-node-lease")
            assert current is not None
            renewals.append(parse_time(current["spec"]["renewTime"]) or 0.0)
        assert [b - a for a, b in itertools.pairwise(renewals)] == [10.0, 10.0]
        assert len(api.calls_of("put", "leases")) == 3
        # Someone else wrote the lease: the cached copy conflicts, the agent re-reads and renews.
        api.modify(
            "leases", "n1", "kube-node-lease", lambda o: o["metadata"].setdefault("labels", {"x": "y"})
        )
        await tick(clock, 10, step=10)
        current = api.obj("leases", "n1", "kube-node-lease")
        assert current is not None and parse_time(current["spec"]["renewTime"]) == renewals[-1] + 10
        assert current["metadata"]["labels"] == {"x": "y"}
    finally:
        task.cancel()


async def test_status_is_reported_when_due_or_changed() -> None:
    api, clock = FakeApi(), FakeClock()
    node = make_node(api, clock, node_status_update_frequency=10.0, node_status_report_frequency=60.0)
    await node.register()
    task = asyncio.create_task(node.status_loop())
    try:

        def writes() -> int:
            return len(api.calls_of("patch", "nodes/status"))

        assert writes() == 1
        await tick(clock, 50)
        assert writes() == 1  # nothing changed, report not due
        await tick(clock, 20)
        assert writes() == 2  # due after 60 s
        stored = api.obj("nodes", "n1")
        assert stored is not None
        heartbeat = parse_time(stored["status"]["conditions"][-1]["lastHeartbeatTime"])
        assert heartbeat is not None and heartbeat > 1767225600 + 59
        api.modify(
            "nodes",
            "n1",
            "",
            lambda o: o["metadata"].setdefault("annotations", {}).update({"sim.pinnace.dev/ready": "false"}),
        )
        await settle()
        node.observe(api.obj("nodes", "n1") or {})
        await tick(clock, 10)
        assert writes() == 3
        stored = api.obj("nodes", "n1")
        assert stored is not None
        ready = next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
        assert ready["lastTransitionTime"] == ready["lastHeartbeatTime"]
    finally:
        task.cancel()


async def test_pod_ips_wait_for_the_pod_cidr() -> None:
    api, clock = FakeApi(), FakeClock()
    node = make_node(api, clock, pod_cidr_wait=5.0)
    await node.register()
    waiter = asyncio.create_task(node.pod_ips("uid-1"))
    await tick(clock, 2)
    assert not waiter.done()
    node.observe(api.modify("nodes", "n1", "", lambda o: o["spec"].update({"podCIDR": "10.244.7.0/24"})))
    await settle()
    assert waiter.done()
    assert waiter.result() == (["10.244.7.2"], "")


async def test_pod_ips_fall_back_after_the_wait() -> None:
    api, clock = FakeApi(), FakeClock()
    config = AgentConfig(node_names=("a", "b"), pod_cidr_wait=5.0)
    node = SimNode(config, identities(config)[1], api=api, clock=clock, port=1)
    await node.register()
    waiter = asyncio.create_task(node.pod_ips("uid-1"))
    await tick(clock, 6)
    ips, note = waiter.result()
    assert ips == ["100.64.1.2"]
    assert "no spec.podCIDR" in note and "100.64.1.0/24" in note
    # Later pods do not wait again.
    second = asyncio.create_task(node.pod_ips("uid-2"))
    await settle()
    assert second.result()[0] == ["100.64.1.3"]


async def test_the_first_renewal_after_the_lease_comes_at_a_random_part_of_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nodes simulated together must not renew in step (a burst of PUTs every 10 s): the first
    wait is a random fraction of the interval, the later ones the interval itself."""
    monkeypatch.setattr("node_bootstrap.agent.node.random.random", lambda: 0.25)
    api, clock = FakeApi(), FakeClock()
    node = make_node(api, clock)
    await node.register()
    task = asyncio.create_task(node.lease_loop())
    try:
        await settle()
        assert api.obj("leases", "n1", "kube-node-lease") is not None  # the lease exists at once
        assert len(api.calls_of("put", "leases")) == 0
        await tick(clock, 2, step=1)
        assert len(api.calls_of("put", "leases")) == 0
        await tick(clock, 1, step=1)  # 2.5 s in
        assert len(api.calls_of("put", "leases")) == 1
        await tick(clock, 9, step=1)
        assert len(api.calls_of("put", "leases")) == 1
        await tick(clock, 1, step=1)  # 12.5 s in
        assert len(api.calls_of("put", "leases")) == 2
    finally:
        task.cancel()
