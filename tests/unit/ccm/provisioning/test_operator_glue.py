"""The thin kopf glue: the login from our kubeconfig, and watch events routed to the queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
