"""Services, namespaces and nodes against a real `pinnace server` running no controllers of its
own: the endpoints, endpointslice, namespace, serviceaccount, nodeipam, nodelifecycle,
taint-eviction and resourcequota controllers run in-process, and a small in-test "kubelet"
registers nodes, renews their Leases, binds pods through pods/<name>/binding and reports their
readiness through pods/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpointslice import EndpointSliceController
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.nodeipam import NodeIPAMController
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.resourcequota import ResourceQuotaController
from controlplane.controllers.runtime import ControllerConfig, R, rfc3339
from controlplane.controllers.serviceaccount import ServiceAccountController
from controlplane.controllers.tainteviction import TaintEvictionController
from tests.integration.conftest import ServerProcess, kubectl_binaries
from tests.integration.controller_harness import client_for, eventually, running

pytestmark = pytest.mark.timeout(120)

UNREACHABLE = "node.kubernetes.io/unreachable"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def now_text() -> str:
    return rfc3339(datetime.now(UTC))


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kubelet:
    """Plays the kubelet for test nodes: registers them Ready, renews their Leases while they are
    alive, and finishes graceful deletion of pods on live nodes."""

    def __init__(self, client: Client, period: float = 0.3) -> None:
        self.client = client
        self.period = period
        self.alive: dict[str, bool] = {}

    async def register(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self.client.create(
            R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}}
        )
        await self.report_ready(name)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()},
        }
        await self.client.create(R.LEASES, lease, "kube-node-lease")
        self.alive[name] = True

    async def report_ready(self, name: str) -> None:
        now = now_text()

        def cond(type_: str, status: str, reason: str) -> dict[str, str]:
            return {
                "type": type_,
                "status": status,
                "reason": reason,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        status = {
            "conditions": [
                cond("Ready", "True", "KubeletReady"),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
        }
        await self.client.patch(R.NODES, name, {"status": status}, subresource="status")

    async def run(self) -> None:
        while True:
            for name, alive in list(self.alive.items()):
                if not alive:
                    continue
                with contextlib.suppress(errors.StatusError):
                    await self.client.patch(
                        R.LEASES, name, {"spec": {"renewTime": micro_now()}}, "kube-node-lease"
                    )
                    pods = await self.client.list(R.PODS, params={"fieldSelector": f"spec.nodeName={name}"})
                    for pod in pods.get("items") or []:
                        if pod["metadata"].get("deletionTimestamp"):
                            await self.client.delete(
                                R.PODS,
                                pod["metadata"]["name"],
                                pod["metadata"]["namespace"],
                                options={"gracePeriodSeconds": 0},
                            )
            await asyncio.sleep(self.period)


@contextlib.asynccontextmanager
async def kubelet(server: ServerProcess) -> AsyncIterator[Kubelet]:
    client = client_for(server, "test-kubelet")
    agent = Kubelet(client)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def make_namespace(client: Client, prefix: str) -> str:
    name = unique(prefix)
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def make_pod(
    client: Client,
    ns: str,
    name: str,
    node: str,
    ip: str,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}
            ],
            "tolerations": tolerations or [],
        },
    }
    await client.create(R.PODS, pod, ns)
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"kind": "Node", "name": node},
    }
    await client.request("POST", R.PODS.url(ns, name, "binding"), body=binding)
    await set_ready(client, ns, name, ip, ready)


async def set_ready(client: Client, ns: str, name: str, ip: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "192.0.2.10",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_text()},
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now_text()},
        ],
    }
    await client.patch(R.PODS, name, {"status": status}, ns, subresource="status")


async def get_or_none(
    client: Client, rp: ResourcePath, name: str, ns: str | None = None
) -> dict[str, Any] | None:
    try:
        return await client.get(rp, name, ns)
    except errors.NotFound:
        return None


# -- Services ---------------------------------------------------------------------------------


async def test_service_gets_endpoints_and_slices_with_exactly_the_ready_pods(
    bare_server: ServerProcess,
) -> None:
    async with (
        running(bare_server, [EndpointsController, EndpointSliceController]) as (client, _),
        kubelet(bare_server) as agent,
    ):
        ns = await make_namespace(client, "svc")
        node = unique("svc-node")
        await agent.register(node, {"topology.kubernetes.io/zone": "zone-a"})
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
        await client.create(R.SERVICES, service, ns)
        await make_pod(client, ns, "web-0", node, "10.9.0.10")
        await make_pod(client, ns, "web-1", node, "10.9.0.11")
        await make_pod(client, ns, "web-2", node, "10.9.0.12", ready=False)
        await make_pod(client, ns, "other", node, "10.9.0.13", labels={"app": "other"})
        # Hand-managed Endpoints of a Service without a selector stay as they are.
        await client.create(
            R.SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "manual"},
                "spec": {"ports": [{"port": 80}]},
            },
            ns,
        )
        manual = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "192.0.2.99"}], "ports": [{"port": 80}]}],
        }
        await client.create(R.ENDPOINTS, manual, ns)

        async def endpoints_are(ready: list[str], not_ready: list[str]) -> dict[str, Any]:
            ep = await get_or_none(client, R.ENDPOINTS, "web", ns)
            assert ep is not None
            subsets = ep.get("subsets") or []
            got_ready = sorted(a["ip"] for s in subsets for a in s.get("addresses") or [])
            got_not_ready = sorted(a["ip"] for s in subsets for a in s.get("notReadyAddresses") or [])
            assert (got_ready, got_not_ready) == (ready, not_ready)
            return ep

        async def slices_are(ready: list[str], not_ready: list[str]) -> list[dict[str, Any]]:
            found = await client.list(
                R.ENDPOINTSLICES, ns, params={"labelSelector": "kubernetes.io/service-name=web"}
            )
            items = found.get("items") or []
            endpoints = [e for s in items for e in s.get("endpoints") or []]
            got_ready = sorted(e["addresses"][0] for e in endpoints if e["conditions"]["ready"])
            got_not_ready = sorted(e["addresses"][0] for e in endpoints if not e["conditions"]["ready"])
            assert (got_ready, got_not_ready) == (ready, not_ready)
            return list(items)

        ep = await eventually(lambda: endpoints_are(["10.9.0.10", "10.9.0.11"], ["10.9.0.12"]))
        assert ep["metadata"]["labels"] == {"tier": "front"}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
        subset = ep["subsets"][0]
        assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert {a["targetRef"]["name"] for a in subset["addresses"]} == {"web-0", "web-1"}
        assert all(a["nodeName"] == node for a in subset["addresses"])

        slices = await eventually(lambda: slices_are(["10.9.0.10", "10.9.0.11"], ["10.9.0.12"]))
        assert len(slices) == 1
        es = slices[0]
        assert es["metadata"]["name"].startswith("web-")
        assert (
            es["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
            == "endpointslice-controller.k8s.io"
        )
        assert es["metadata"]["labels"]["tier"] == "front"
        assert es["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert es["addressType"] == "IPv4"
        assert es["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert {e["zone"] for e in es["endpoints"]} == {"zone-a"}

        # A pod made unready moves to notReadyAddresses / ready=false, in the same slice.
        await set_ready(client, ns, "web-1", "10.9.0.11", ready=False)
        await eventually(lambda: endpoints_are(["10.9.0.10"], ["10.9.0.11", "10.9.0.12"]))
        after = await eventually(lambda: slices_are(["10.9.0.10"], ["10.9.0.11", "10.9.0.12"]))
        assert [s["metadata"]["name"] for s in after] == [es["metadata"]["name"]]

        # A deleted pod leaves both.
        await client.delete(R.PODS, "web-0", ns, options={"gracePeriodSeconds": 0})
        await eventually(lambda: endpoints_are([], ["10.9.0.11", "10.9.0.12"]))
        await eventually(lambda: slices_are([], ["10.9.0.11", "10.9.0.12"]))

        # Deleting the Service deletes its Endpoints; the manual ones were never touched.
        await client.delete(R.SERVICES, "web", ns)

        async def endpoints_gone() -> bool:
            return await get_or_none(client, R.ENDPOINTS, "web", ns) is None

        await eventually(endpoints_gone)
        kept = await client.get(R.ENDPOINTS, "manual", ns)
        assert kept["subsets"][0]["addresses"] == [{"ip": "192.0.2.99"}]


# -- Namespaces -------------------------------------------------------------------------------


def kubectl_env(server: ServerProcess, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return env


async def test_kubectl_delete_namespace_returns_once_everything_is_gone(
    bare_server: ServerProcess, tmp_path: Path
) -> None:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl installed")
    kubectl = next((b for b in binaries if b.endswith("kubectl.1.33")), binaries[0])
    config = ControllerConfig(extra={"namespace_deletion_grace_period": 0.2})
    async with (
        running(bare_server, [NamespaceController, ServiceAccountController], config=config) as (
            client,
            _,
        ),
        kubelet(bare_server) as agent,
    ):
        ns = await make_namespace(client, "doomed")

        async def default_account() -> dict[str, Any] | None:
            return await get_or_none(client, R.SERVICEACCOUNTS, "default", ns)

        first = await eventually(default_account)
        await client.delete(R.SERVICEACCOUNTS, "default", ns)

        async def recreated() -> bool:
            again = await default_account()
            return again is not None and again["metadata"]["uid"] != first["metadata"]["uid"]

        await eventually(recreated)

        node = unique("ns-node")
        await agent.register(node)
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "app"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        await client.create(R.DEPLOYMENTS, deployment, ns)
        await client.create(
            R.CONFIGMAPS,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}},
            ns,
        )
        await client.create(
            R.SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "svc"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            },
            ns,
        )
        await make_pod(client, ns, "running", node, "10.9.1.10")  # bound: deleted gracefully
        await client.create(
            R.PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "pending"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
            ns,
        )

        started = time.monotonic()
        result = await asyncio.to_thread(
            subprocess.run,
            [kubectl, "delete", "namespace", ns, "--timeout=60s"],
            capture_output=True,
            text=True,
            env=kubectl_env(bare_server, tmp_path),
            timeout=90,
            check=False,
        )
        took = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert f'namespace "{ns}" deleted' in result.stdout
        # kubectl waited: by the time it returned, the namespace and everything in it was gone.
        assert await get_or_none(client, R.NAMESPACES, ns) is None
        for rp in (R.DEPLOYMENTS, R.CONFIGMAPS, R.SERVICES, R.PODS, R.SERVICEACCOUNTS):
            left = [i["metadata"]["name"] for i in (await client.list(rp, ns)).get("items") or []]
            # Content outliving its namespace means the namespace went before it was finalized
            # (an update to a terminating namespace must not delete it while spec.finalizers
            # still lists "kubernetes").
            assert left == [], f"{rp.plural} outlived namespace {ns}: {left}"
        assert took < 30


# -- Node IPAM --------------------------------------------------------------------------------


async def test_nodes_get_distinct_pod_cidrs_and_a_restart_never_double_allocates(
    bare_server: ServerProcess,
) -> None:
    cluster = ipaddress.ip_network("10.210.0.0/16")
    config = ControllerConfig(cluster_cidr=str(cluster), node_cidr_mask_size=24)
    names = [unique("ipam") for _ in range(4)]

    async def cidr_of(client: Client, name: str) -> str:
        node = await client.get(R.NODES, name)
        spec = node.get("spec") or {}
        assert spec.get("podCIDRs"), f"{name} has no podCIDRs yet"
        assert spec["podCIDRs"] == [spec["podCIDR"]]
        return str(spec["podCIDR"])

    async with running(bare_server, [NodeIPAMController], config=config) as (client, _):
        for name in names[:3]:
            await client.create(R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        first = [await eventually(lambda n=name: cidr_of(client, n)) for name in names[:3]]  # type: ignore[misc]
    assert len(set(first)) == 3
    assert all(ipaddress.ip_network(c).subnet_of(cluster) for c in first)  # type: ignore[arg-type]

    # A fresh controller rebuilds its map from the nodes before allocating.
    async with running(bare_server, [NodeIPAMController], config=config) as (client, _):
        await client.create(R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": names[3]}})
        fourth = await eventually(lambda: cidr_of(client, names[3]))
        assert fourth not in first
        for name in names:
            await client.delete(R.NODES, name)


# -- Node lifecycle and taint eviction --------------------------------------------------------


async def test_silent_node_goes_unknown_is_tainted_and_its_pods_evicted_by_toleration(
    bare_server: ServerProcess,
) -> None:
    config = ControllerConfig(
        node_monitor_period=0.2,
        node_monitor_grace_period=1.5,
        node_startup_grace_period=1.5,
        node_eviction_rate=50.0,
    )
    zone = unique("zone")
    controllers = [NodeLifecycleController, TaintEvictionController]
    async with running(bare_server, controllers, config=config) as (client, _), kubelet(bare_server) as agent:
        ns = await make_namespace(client, "evict")
        dying, healthy = unique("dying"), unique("healthy")
        for name in (dying, healthy):
            await agent.register(name, {"topology.kubernetes.io/zone": zone})

        def tolerate(seconds: int | None) -> list[dict[str, Any]]:
            t: dict[str, Any] = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
            if seconds is not None:
                t["tolerationSeconds"] = seconds
            return [t]

        await make_pod(client, ns, "short", dying, "10.9.2.10", tolerations=tolerate(2))
        await make_pod(client, ns, "forever", dying, "10.9.2.11", tolerations=tolerate(None))
        await make_pod(client, ns, "later", dying, "10.9.2.12", tolerations=tolerate(600))
        await asyncio.sleep(1.0)  # the controller sees both nodes healthy first

        # Cordoning is a NoSchedule taint.
        await client.patch(R.NODES, healthy, {"spec": {"unschedulable": True}})

        async def cordoned() -> bool:
            node = await client.get(R.NODES, healthy)
            return any(
                t["key"] == "node.kubernetes.io/unschedulable" and t["effect"] == "NoSchedule"
                for t in (node.get("spec") or {}).get("taints") or []
            )

        await eventually(cordoned)

        agent.alive[dying] = False  # the kubelet dies: no more Lease renewals

        async def unreachable() -> dict[str, Any]:
            node = await client.get(R.NODES, dying)
            taints = (node.get("spec") or {}).get("taints") or []
            no_execute = [t for t in taints if t["key"] == UNREACHABLE and t["effect"] == "NoExecute"]
            assert no_execute, taints
            return node

        node = await eventually(unreachable, timeout=15)
        tainted_at = time.monotonic()
        conditions = {c["type"]: c for c in node["status"]["conditions"]}
        for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            assert conditions[type_]["status"] == "Unknown"
            assert conditions[type_]["reason"] == "NodeStatusUnknown"
            assert conditions[type_]["message"] == "Kubelet stopped posting node status."
        taints = {(t["key"], t["effect"]): t for t in node["spec"]["taints"]}
        assert "timeAdded" in taints[(UNREACHABLE, "NoExecute")]
        assert (UNREACHABLE, "NoSchedule") in taints or await eventually(
            lambda: _has_taint(client, dying, UNREACHABLE, "NoSchedule")
        )

        async def pods_not_ready() -> bool:
            for name in ("forever", "later"):
                pod = await client.get(R.PODS, name, ns)
                ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
                assert ready["status"] == "False", name
            return True

        await eventually(pods_not_ready)

        async def short_deleted() -> dict[str, Any]:
            pod = await client.get(R.PODS, "short", ns)
            assert pod["metadata"].get("deletionTimestamp"), "not deleted yet"
            return pod

        short = await eventually(short_deleted, timeout=10)
        waited = time.monotonic() - tainted_at
        # timeAdded has second precision, so the 2 s run from up to a second before we saw the taint.
        assert 0.5 <= waited <= 4.5, waited
        target = next(c for c in short["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"]) == ("True", "DeletionByTaintManager")
        assert target["message"] == "Taint manager: deleting due to NoExecute taint"

        await asyncio.sleep(1.0)
        for name in ("forever", "later"):
            pod = await client.get(R.PODS, name, ns)
            assert not pod["metadata"].get("deletionTimestamp"), name

        # The kubelet comes back: the taints go, and the pending eviction with them.
        agent.alive[dying] = True
        await agent.report_ready(dying)

        async def untainted() -> bool:
            node = await client.get(R.NODES, dying)
            return not [t for t in (node.get("spec") or {}).get("taints") or [] if t["key"] == UNREACHABLE]

        await eventually(untainted, timeout=15)

        async def eviction_events() -> list[str]:
            events = await client.list(R.EVENTS, ns)
            messages = [
                e["message"] for e in events.get("items") or [] if e["reason"] == "TaintManagerEviction"
            ]
            assert f"Cancelling deletion of Pod {ns}/later" in messages, messages
            return messages

        messages = await eventually(eviction_events)
        assert f"Marking for deletion Pod {ns}/short" in messages
        assert not any("forever" in m for m in messages)
        later = await client.get(R.PODS, "later", ns)
        assert not later["metadata"].get("deletionTimestamp")

        for name in (dying, healthy):
            await client.delete(R.NODES, name)


async def _has_taint(client: Client, node: str, key: str, effect: str) -> bool:
    obj = await client.get(R.NODES, node)
    return any(t["key"] == key and t["effect"] == effect for t in (obj.get("spec") or {}).get("taints") or [])


# -- ResourceQuota ----------------------------------------------------------------------------


async def test_quota_status_tracks_usage(bare_server: ServerProcess) -> None:
    async with running(bare_server, [ResourceQuotaController]) as (client, _):
        ns = await make_namespace(client, "quota")
        quota = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {
                "hard": {"pods": "10", "requests.cpu": "4", "configmaps": "20", "count/deployments.apps": "5"}
            },
        }
        await client.create(R.RESOURCEQUOTAS, quota, ns)
        for i in range(2):
            await client.create(
                R.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}}, ns
            )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "250m"}}}]
            },
        }
        await client.create(R.PODS, pod, ns)
        configmaps = len((await client.list(R.CONFIGMAPS, ns)).get("items") or [])

        async def used_is(expected: dict[str, str]) -> bool:
            q = await client.get(R.RESOURCEQUOTAS, "q", ns)
            status = q.get("status") or {}
            assert status.get("hard") == {
                "configmaps": "20",
                "count/deployments.apps": "5",
                "pods": "10",
                "requests.cpu": "4",
            }
            assert status.get("used") == expected, status.get("used")
            return True

        await eventually(
            lambda: used_is(
                {
                    "configmaps": str(configmaps),
                    "count/deployments.apps": "0",
                    "pods": "1",
                    "requests.cpu": "250m",
                }
            )
        )
        await client.delete(R.CONFIGMAPS, "c0", ns)
        await client.delete(R.PODS, "p", ns)
        await eventually(
            lambda: used_is(
                {
                    "configmaps": str(configmaps - 1),
                    "count/deployments.apps": "0",
                    "pods": "0",
                    "requests.cpu": "0",
                }
            )
        )
