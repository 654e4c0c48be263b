"""The thin kopf glue: the login from our kubeconfig, and watch events routed to the queues."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from ccm.provisioning import api
from ccm.provisioning.context import NodeIndex
from ccm.provisioning.operator import Bridge, build_registry, connection_info
from controlplane.controllers.runtime import WorkQueue


def test_connection_info_comes_from_the_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "k.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "me@pinnace",
                "contexts": [{"name": "me@pinnace", "context": {"cluster": "pinnace", "user": "me"}}],
                "clusters": [
                    {
                        "name": "pinnace",
                        "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="},
                    }
                ],
                "users": [
                    {"name": "me", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}
                ],
            }
        )
    )
    info = connection_info(path)
    assert info.server == "https://127.0.0.1:6443"
    assert (info.ca_data, info.certificate_data, info.private_key_data) == ("Q0E=", "Q0VSVA==", "S0VZ")
    assert info.token is None and info.default_namespace == "default"


async def test_events_reach_the_right_queues(tmp_path: Path) -> None:
    machines, pools, nodes = WorkQueue(), WorkQueue(), NodeIndex()
    bridge = Bridge(asyncio.get_running_loop(), machines, pools, nodes)
    machine = {
        "metadata": {"name": "p-abcde", "labels": {api.LABEL_NODE_POOL: "p"}},
        "status": {"providerID": "local:///z/i-1"},
    }
    bridge.machine_event("ADDED", machine)
    bridge.pool_event("q")
    await asyncio.sleep(0)
    assert [await pools.get(), await pools.get()] == ["p", "q"]
    assert await machines.get() == "p-abcde"
    # Its Node changes while it is being reconciled: it is looked at again afterwards.
    bridge.node_event("MODIFIED", {"metadata": {"name": "i-1"}, "spec": {"providerID": "local:///z/i-1"}})
    await asyncio.sleep(0)
    machines.done("p-abcde")
    assert await asyncio.wait_for(machines.get(), 1) == "p-abcde"
    assert nodes.nodes["local:///z/i-1"]["metadata"]["name"] == "i-1"
    bridge.node_event("DELETED", {"metadata": {"name": "i-1"}, "spec": {"providerID": "local:///z/i-1"}})
    await asyncio.sleep(0)
    assert nodes.nodes == {}
    registry = build_registry(bridge, tmp_path / "unused")
    assert registry is not None


def _node(ready: str, *, heartbeat: str = "t0", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "i-1"},
        "spec": {"providerID": "local:///z/i-1", "unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]},
    }


def _drain(queue: WorkQueue) -> list[str]:
    """Everything queued now, each key handed back as handled."""
    out = []
    while len(queue):
        key = queue._queue.popleft()
        queue._dirty.discard(key)
        out.append(key)
    return out


async def test_every_machine_change_wakes_it_and_its_pool_at_once() -> None:
    machines, pools, nodes = WorkQueue(), WorkQueue(), NodeIndex()
    bridge = Bridge(asyncio.get_running_loop(), machines, pools, nodes)
    machine: dict[str, Any] = {
        "metadata": {"name": "p-abcde", "labels": {api.LABEL_NODE_POOL: "p"}},
        "spec": {"nodePool": "p"},
        "status": {"phase": "Running", "providerID": "local:///z/i-1"},
    }
    bridge.machine_event("ADDED", machine)
    await asyncio.sleep(0)
    assert (_drain(machines), _drain(pools)) == (["p-abcde"], ["p"])
    # A scale-down or `pinnace down` sets the deletionTimestamp: the finalizer starts now, not
    # at the Machine's next resync.
    deleted = {**machine, "metadata": {**machine["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    bridge.machine_event("MODIFIED", deleted)
    await asyncio.sleep(0)
    assert (_drain(machines), _drain(pools)) == (["p-abcde"], ["p"])
    # A phase change (the Node turned Ready) moves the pool's ready count: the pool looks again.
    bridge.machine_event("MODIFIED", {**machine, "status": {**machine["status"], "phase": "Failed"}})
    await asyncio.sleep(0)
    assert (_drain(machines), _drain(pools)) == (["p-abcde"], ["p"])
    # Gone: nothing left to reconcile, but the pool recounts (and may replace it).
    bridge.machine_event("DELETED", deleted)
    await asyncio.sleep(0)
    assert (_drain(machines), _drain(pools)) == ([], ["p"])
    assert nodes.machines == {} and nodes.pools == {}


async def test_only_node_changes_that_matter_wake_the_machine_and_its_pool() -> None:
    machines, pools, nodes = WorkQueue(), WorkQueue(), NodeIndex()
    bridge = Bridge(asyncio.get_running_loop(), machines, pools, nodes)
    bridge.machine_event(
        "ADDED",
        {
            "metadata": {"name": "p-abcde", "labels": {api.LABEL_NODE_POOL: "p"}},
            "status": {"providerID": "local:///z/i-1"},
        },
    )
    await asyncio.sleep(0)
    _drain(machines), _drain(pools)

    async def woken(kind: str, node: dict[str, Any]) -> tuple[list[str], list[str]]:
        bridge.node_event(kind, node)
        await asyncio.sleep(0)
        return _drain(machines), _drain(pools)

    assert await woken("ADDED", _node("Unknown")) == (["p-abcde"], ["p"])  # it joined
    assert await woken("MODIFIED", _node("True")) == (["p-abcde"], ["p"])  # Ready
    # Heartbeats and cordoning change nothing the Machine decides on.
    assert await woken("MODIFIED", _node("True", heartbeat="t1")) == ([], [])
    assert await woken("MODIFIED", _node("True", unschedulable=True)) == ([], [])
    assert await woken("MODIFIED", _node("False")) == (["p-abcde"], ["p"])  # NotReady
    assert nodes.node_ready("local:///z/i-1") is False
    assert await woken("DELETED", _node("False")) == (["p-abcde"], ["p"])  # gone
    assert nodes.node_ready("local:///z/i-1") is None
    # A Node of no known Machine wakes nothing.
    other = {**_node("True"), "spec": {"providerID": "local:///z/i-9"}}
    assert await woken("ADDED", other) == ([], [])
