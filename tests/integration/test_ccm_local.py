"""Done-when 2 of the cloud issue: the CCM of a real `pinnace server --cloud-provider local`,
against instances this test launches in the same simulated cloud (a shared state file).

Nodes register as a kubelet with `--cloud-provider=external` does (the uninitialized taint, the
providerID of their instance, the provided node IP) and are initialised; each pod CIDR the
server's node IPAM assigns gets a route; a LoadBalancer Service gets an ingress (`kubectl get svc`
shows it) that follows port and node changes, and leaves nothing in the cloud once deleted;
terminating an instance deletes its Node; a bad annotation gives a Warning Event.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from providers.config import CloudConfig, load_cloud_config
from providers.local import LocalCloud, open_cloud, provider_for, split_provider_id
from providers.model import Instance, InstanceSpec, Owner
from tests.integration.conftest import ServerProcess, kubectl_binaries, start_server
from tests.integration.controller_harness import client_for, eventually
from tests.integration.kubectl_helpers import Kubectl, parse_table, row_named

CLUSTER = "itest"
STRATEGIC = "application/strategic-merge-patch+json"


@pytest.fixture(scope="module")
def cloud_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ccm-local")
    path = base / "cloud.yaml"
    doc = {"clusterID": CLUSTER, "qps": 200, "burst": 200, "local": {"stateFile": str(base / "cloud.db")}}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def ccm_server(tmp_path_factory: pytest.TempPathFactory, cloud_config: Path) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("ccm-server") / "data",
        "--cloud-provider",
        "local",
        "--cloud-config",
        str(cloud_config),
        "--disable-scheduler",
    )
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest.fixture
async def client(ccm_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(ccm_server) as c:
        yield c


@pytest.fixture
def local(cloud_config: Path) -> Iterator[tuple[LocalCloud, CloudProvider, CloudConfig]]:
    """The same cloud the server's CCM drives, opened by the test as the node operator would."""
    config = load_cloud_config(cloud_config)
    cloud = open_cloud(config)
    yield cloud, provider_for(cloud), config
    cloud.close()


@pytest.fixture
def kubectl(ccm_server: ServerProcess, tmp_path: Path) -> Kubectl:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl")
    env = {**os.environ, "KUBECONFIG": str(ccm_server.kubeconfig), "HOME": str(tmp_path)}
    return Kubectl(binaries[-1], env)


async def launch(provider: CloudProvider, name: str) -> Instance:
    assert provider.instances is not None
    spec = InstanceSpec(
        name=name, owner=Owner(kind="Machine", name=name), instance_type="local.medium", image="img"
    )
    return await provider.instances.create_instance(CLUSTER, spec)


def internal_ip(instance: Instance) -> str:
    return next(a.address for a in instance.addresses if a.type == "InternalIP")


async def register(client: Client, name: str, instance: Instance) -> None:
    """What a kubelet with --cloud-provider=external --provider-id=... --node-ip=... does."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {"alpha.kubernetes.io/provided-node-ip": internal_ip(instance)},
        },
        "spec": {
            "providerID": instance.provider_id,
            "taints": [{"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"}],
        },
    }
    await client.create(R.NODES, node)
    await set_ready(client, name, "True")


async def set_ready(client: Client, name: str, status: str) -> None:
    cond = {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady" if status == "True" else "KubeletNotReady",
    }
    await client.patch(
        R.NODES, name, {"status": {"conditions": [cond]}}, subresource="status", patch_type=STRATEGIC
    )


async def namespace(client: Client) -> str:
    name = f"ccm-{uuid.uuid4().hex[:6]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def lb_service(name: str, ports: list[int], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": f"p{p}", "port": p, "targetPort": 8080} for p in ports],
        },
    }


async def test_nodes_routes_load_balancers_and_lifecycle(
    client: Client, local: tuple[LocalCloud, CloudProvider, CloudConfig], kubectl: Kubectl
) -> None:
    cloud, provider, _ = local
    routes, inventory = provider.routes, provider.inventory
    assert routes is not None and inventory is not None
    suffix = uuid.uuid4().hex[:5]
    names = [f"w{i}-{suffix}" for i in range(2)]
    instances = {n: await launch(provider, n) for n in names}
    for name in names:
        await register(client, name, instances[name])

    # -- initialised: labels, addresses (node IP first), the taint gone -------------------------
    async def initialised() -> bool:
        for name in names:
            node = await client.get(R.NODES, name)
            if any(t["key"] == TAINT_UNINITIALIZED for t in node["spec"].get("taints") or []):
                return False
            labels = node["metadata"]["labels"]
            inst = instances[name]
            assert labels["node.kubernetes.io/instance-type"] == "local.medium"
            assert labels["beta.kubernetes.io/instance-type"] == "local.medium"
            assert labels["topology.kubernetes.io/zone"] == inst.zone
            assert labels["failure-domain.beta.kubernetes.io/region"] == inst.region
            addresses = node["status"].get("addresses") or []
            assert addresses and addresses[0] == {"type": "InternalIP", "address": internal_ip(inst)}
            assert {"type": "InternalDNS", "address": inst.addresses[1].address} in addresses
        return True

    await eventually(initialised, timeout=30)

    # -- a route per pod CIDR, NetworkUnavailable False/RouteCreated ---------------------------
    async def routed() -> bool:
        listed = await routes.list_routes(CLUSTER)
        for name in names:
            node = await client.get(R.NODES, name)
            cidrs = node["spec"].get("podCIDRs") or []
            if not cidrs or not all(
                any(r.target_node == name and r.destination_cidr == c for r in listed) for c in cidrs
            ):
                return False
            cond = next((c for c in node["status"]["conditions"] if c["type"] == "NetworkUnavailable"), None)
            if cond is None or (cond["status"], cond["reason"]) != ("False", "RouteCreated"):
                return False
        return True

    await eventually(routed, timeout=40)

    # -- a LoadBalancer Service gets an ingress; kubectl shows it -------------------------------
    ns = await namespace(client)
    svc = await client.create(R.SERVICES, lb_service("web", [80]), ns)
    uid = svc["metadata"]["uid"]

    async def ingress() -> str:
        current = await client.get(R.SERVICES, "web", ns)
        found = (current.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
        if found:
            assert current["metadata"]["finalizers"] == ["service.kubernetes.io/load-balancer-cleanup"]
        return str(found[0]["ip"]) if found else ""

    address = await eventually(ingress, timeout=30)
    table = parse_table(kubectl.run("get", "svc", "web", "-n", ns).stdout)
    assert row_named(table, "web")["EXTERNAL-IP"] == address

    async def balancer() -> Any:
        for record in await cloud.describe_all("load-balancer"):
            if record.tags.get("pinnace.dev/owner-uid") == uid:
                return record
        return None

    async def target_ids(record: Any) -> list[str]:
        groups = {r.id: r for r in await cloud.describe_all("target-group")}
        return sorted(
            {t for li in record.data["listeners"] for t in groups[li["target_group"]].data["targets"]}
        )

    record = await eventually(balancer, timeout=10)
    all_ids = sorted(split_provider_id(i.provider_id)[1] for i in instances.values())
    assert await target_ids(record) == all_ids

    # -- changing ports updates its listeners; excluding a node updates its targets --------------
    current = await client.get(R.SERVICES, "web", ns)
    ports = [*current["spec"]["ports"], {"name": "p443", "port": 443, "targetPort": 8443, "protocol": "TCP"}]
    await client.patch(R.SERVICES, "web", {"spec": {"ports": ports}}, ns)

    async def two_listeners() -> bool:
        rec = await balancer()
        return rec is not None and sorted(li["port"] for li in rec.data["listeners"]) == [80, 443]

    await eventually(two_listeners, timeout=30)
    excluded = names[1]
    label = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
    await client.patch(R.NODES, excluded, {"metadata": {"labels": label}})

    async def one_target() -> bool:
        rec = await balancer()
        return rec is not None and await target_ids(rec) == [
            split_provider_id(instances[names[0]].provider_id)[1]
        ]

    await eventually(one_target, timeout=30)

    # -- a bad annotation: a Warning Event, nothing made ----------------------------------------
    bad = lb_service("bad", [80], {"service.beta.kubernetes.io/load-balancer-source-ranges": "not-a-cidr"})
    await client.create(R.SERVICES, bad, ns)

    async def warned() -> bool:
        events = (await client.list(R.EVENTS, ns)).get("items") or []
        return any(
            e["involvedObject"]["name"] == "bad"
            and e["reason"] == "SyncLoadBalancerFailed"
            and "not-a-cidr" in e["message"]
            for e in events
        )

    await eventually(warned, timeout=30)
    bad_status = (await client.get(R.SERVICES, "bad", ns)).get("status", {})
    assert not (bad_status.get("loadBalancer") or {}).get("ingress")
    (cond,) = [c for c in bad_status.get("conditions") or [] if c["type"] == "LoadBalancerProvisioned"]
    assert cond["status"] == "False" and "not-a-cidr" in cond["message"]

    # -- deleting the Service leaves nothing of it in the cloud ---------------------------------
    await client.delete(R.SERVICES, "web", ns)
    await client.delete(R.SERVICES, "bad", ns)

    async def gone() -> bool:
        try:
            await client.get(R.SERVICES, "web", ns)
            return False
        except errors.NotFound:
            pass
        owned = await inventory.list_owned(CLUSTER)
        return not [
            r for r in owned if r.owner is not None and r.owner.kind == "Service" and r.owner.namespace == ns
        ]

    await eventually(gone, timeout=30)

    # -- a terminated instance takes its (NotReady) Node with it --------------------------------
    victim = names[0]
    await cloud.terminate_instance(split_provider_id(instances[victim].provider_id)[1])
    await set_ready(client, victim, "False")

    async def deleted() -> bool:
        try:
            await client.get(R.NODES, victim)
            return False
        except errors.NotFound:
            return True

    await eventually(deleted, timeout=30)
    events = (await client.list(R.EVENTS, "default")).get("items") or []
    assert any(e["involvedObject"]["name"] == victim and e["reason"] == "DeletingNode" for e in events)

    async def route_gone() -> bool:
        return not [r for r in await routes.list_routes(CLUSTER) if r.target_node == victim]

    await eventually(route_gone, timeout=30)
    await asyncio.sleep(0)
