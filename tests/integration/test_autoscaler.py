"""The NodePool autoscaler against a real `pinnace server` and its real scheduler: pods the
scheduler cannot place grow an autoscaling pool within its max; a node left empty for the pool's
scaleDownDelay gets its Machine marked for deletion and the pool shrinks.

No operator runs here: the test plays its part (and the node agents') by creating the Machine and
Node a scale-up asks for, as they would, through the client. The pool's nodes carry a taint of
this test's own, so that pending pods of other tests sharing the server never fit them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ccm.provisioning.api import ANNOTATION_DELETE_MACHINE, LABEL_MACHINE, LABEL_NODE_POOL
from ccm.provisioning.autoscaler import run_autoscaler
from ccm.provisioning.autoscaler.loop import MACHINES_PATH, NODEPOOLS_PATH
from ccm.provisioning.crds import ensure_crds
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import FakeClock, rfc3339
from controlplane.controllers.runtime import resources as R
from tests.integration.conftest import ServerProcess
from tests.integration.controller_harness import client_for, eventually

Obj = dict[str, Any]
INTERVAL = 1.0


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(server, "autoscaler-test") as c:
        await ensure_crds(c)
        yield c


def _node(name: str, pool: str, machine: str, taint: Obj) -> Obj:
    now = rfc3339(datetime.now(UTC))
    resources = {"cpu": "2", "memory": "4Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, LABEL_NODE_POOL: pool, LABEL_MACHINE: machine},
        },
        "spec": {"taints": [taint]},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


async def _join(client: Client, pool: str, machine: str, node: str, taint: Obj) -> None:
    """What the operator and a node agent do for one replica: a Running Machine, its Node."""
    await client.create(
        MACHINES_PATH,
        {
            "apiVersion": "infra.pinnace.dev/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": machine, "labels": {LABEL_NODE_POOL: pool}},
            "spec": {"nodePool": pool, "instanceType": "local.medium"},
        },
    )
    await client.patch(
        MACHINES_PATH, machine, {"status": {"phase": "Running", "nodeName": node}}, subresource="status"
    )
    await client.create(R.NODES, _node(node, pool, machine, taint))


def _pod_spec(cpu: str, pool: str, taint: Obj) -> Obj:
    return {
        "terminationGracePeriodSeconds": 0,
        "nodeSelector": {LABEL_NODE_POOL: pool},
        "tolerations": [
            {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": "NoSchedule"}
        ],
        "containers": [
            {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": cpu}}}
        ],
    }


async def test_pending_pods_grow_the_pool_and_an_emptied_node_goes(client: Client) -> None:
    suffix = uuid.uuid4().hex[:6]
    pool, ns = f"as-{suffix}", f"autoscaler-{suffix}"
    taint = {"key": "autoscaler.pinnace.test/pool", "value": suffix, "effect": "NoSchedule"}
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create(
        NODEPOOLS_PATH,
        {
            "apiVersion": "infra.pinnace.dev/v1alpha1",
            "kind": "NodePool",
            "metadata": {"name": pool},
            "spec": {
                "replicas": 1,
                "instanceType": "local.medium",
                "taints": [taint],
                "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "scaleDownDelay": "10m"},
            },
        },
    )
    nodes = [f"{pool}-n1", f"{pool}-n2"]
    machines = [f"{pool}-m1", f"{pool}-m2"]
    clock = FakeClock()
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await _join(client, pool, machines[0], nodes[0], taint)
        # A pod bound to the pool's one node leaves 500m of its 2 CPUs free.
        filler: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "filler"},
            "spec": {**_pod_spec("1500m", pool, taint), "nodeName": nodes[0]},
        }
        await client.create(R.PODS, filler, ns)
        app = {"app": f"web-{suffix}"}
        await client.create(
            R.DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": app},
                    "template": {"metadata": {"labels": app}, "spec": _pod_spec("1", pool, taint)},
                },
            },
            ns,
        )

        async def unschedulable() -> bool:
            pods = (await client.list(R.PODS, ns, params={"labelSelector": f"app=web-{suffix}"}))["items"]
            return len(pods) == 2 and all(
                any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))
                for p in pods
            )

        await eventually(unschedulable, timeout=15)

        task = asyncio.create_task(run_autoscaler(client, stop, clock=clock, interval=INTERVAL))

        async def replicas(wanted: int) -> bool:
            clock.advance(INTERVAL)
            return bool((await client.get(NODEPOOLS_PATH, pool))["spec"]["replicas"] == wanted)

        # Both 1-CPU pods fit one new 2-CPU node of the pool: one replica more, not two.
        await eventually(lambda: replicas(2), timeout=10, interval=0.1)
        for _ in range(3):  # later passes count the replica on its way and add none
            assert await replicas(2)
            await asyncio.sleep(0.2)

        # The operator creates the Machine, the node joins, the scheduler binds the pods there.
        await _join(client, pool, machines[1], nodes[1], taint)

        async def bound() -> bool:
            pods = (await client.list(R.PODS, ns, params={"labelSelector": f"app=web-{suffix}"}))["items"]
            return len(pods) == 2 and all(p["spec"].get("nodeName") == nodes[1] for p in pods)

        await eventually(bound, timeout=15)

        # The workload goes away: the second node is empty, the first still runs the filler.
        await client.delete(R.DEPLOYMENTS, "web", ns, options={"propagationPolicy": "Background"})
        for pod in (await client.list(R.PODS, ns, params={"labelSelector": f"app=web-{suffix}"}))["items"]:
            with contextlib.suppress(errors.NotFound):
                await client.delete(R.PODS, pod["metadata"]["name"], ns, options={"gracePeriodSeconds": 0})

        async def gone() -> bool:
            pods = (await client.list(R.PODS, ns, params={"labelSelector": f"app=web-{suffix}"}))["items"]
            return not pods

        await eventually(gone, timeout=15)

        async def marks() -> list[str]:
            clock.advance(INTERVAL)
            listed = (await client.list(MACHINES_PATH))["items"]
            return [
                m["metadata"]["name"]
                for m in listed
                if m["metadata"]["name"] in machines
                and ANNOTATION_DELETE_MACHINE in m["metadata"].get("annotations", {})
            ]

        # Within the scaleDownDelay nothing is removed.
        for _ in range(3):
            assert await marks() == []
            await asyncio.sleep(0.2)
        clock.advance(600)
        assert await eventually(marks, timeout=10, interval=0.1) == [machines[1]]
        assert (await client.get(NODEPOOLS_PATH, pool))["spec"]["replicas"] == 1

        async def events() -> set[str]:
            listed = (await client.list(R.EVENTS, "default"))["items"]
            reasons = {e["reason"] for e in listed if e["involvedObject"].get("name") == pool}
            return reasons if {"TriggeredScaleUp", "ScaleDown"} <= reasons else set()

        await eventually(events, timeout=10)
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
        for name in machines:
            with contextlib.suppress(errors.NotFound):
                await client.delete(MACHINES_PATH, name)
        for name in nodes:
            with contextlib.suppress(errors.NotFound):
                await client.delete(R.NODES, name)
        await client.delete(NODEPOOLS_PATH, pool)
        await client.delete(R.NAMESPACES, ns)
