"""Admission inside the write pipeline, in process (memory storage, no TLS): what each plugin
does to a real request, dry runs, and quota under concurrent creates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authz
from controlplane.apiserver.admission import default_admission
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.server import _bootstrap, bootstrap_priority_classes
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

PODS = "/api/v1/namespaces/default/pods"
QUOTAS = "/api/v1/namespaces/default/resourcequotas"
LIMITS = "/api/v1/namespaces/default/limitranges"
CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"


class AllowAll:
    async def authorize(self, attrs: authz.Attributes) -> authz.Decision:
        return authz.Decision(True)


Client = TestClient[Any, Any]


@pytest.fixture
async def ctx() -> AsyncIterator[ServerContext]:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    ips = ServiceIPAllocator(storage, "10.96.0.0/24")
    context = ServerContext(
        registry=default_registry(),
        storage=storage,
        store=ObjectStore(storage),
        services=ServiceAllocation(ips, NodePortAllocator(storage)),
        admission=default_admission(not_ready_toleration_seconds=30, unreachable_toleration_seconds=60),
    )
    await _bootstrap(context, ips.kubernetes_service_ip, 6443)
    await bootstrap_priority_classes(context)
    # What the serviceaccount controller would make: the ServiceAccount plugin requires it.
    accounts = context.registry.get("", "v1", "serviceaccounts")
    assert accounts is not None
    await context.store.create(
        accounts,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "default", "uid": "sa-uid"},
        },
    )
    yield context
    await storage.close()


@pytest.fixture
async def client(ctx: ServerContext) -> AsyncIterator[Client]:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    test_client: Client = TestClient(TestServer(app_module.create_app(ctx, settings)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "c", "image": "nginx:1.27"}])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


async def create(
    client: Client, path: str, body: dict[str, Any], *, dry_run: bool = False
) -> tuple[int, dict[str, Any]]:
    response = await client.post(path + ("?dryRun=All" if dry_run else ""), json=body)
    return response.status, await response.json()


async def test_a_plain_pod_gets_every_default(client: Client) -> None:
    status, created = await create(client, PODS, pod())
    assert status == 201
    spec = created["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and "projected" in volume
    assert spec["containers"][0]["volumeMounts"] == [
        {
            "name": volume["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    ]
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in spec
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        },
    ]
    # A replace without the admission-set fields keeps them (Priority carries them over).
    body = {**created, "spec": {k: v for k, v in spec.items() if k not in ("priority", "preemptionPolicy")}}
    replaced = await client.put(f"{PODS}/p", json=body)
    assert replaced.status == 200, await replaced.text()
    assert (await replaced.json())["spec"]["priority"] == 0


async def test_priority_classes(client: Client) -> None:
    listed = await (await client.get(CLASSES)).json()
    values = {pc["metadata"]["name"]: pc["value"] for pc in listed["items"]}
    assert values == {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}

    status, critical = await create(client, PODS, pod("crit", priorityClassName="system-node-critical"))
    assert status == 201 and critical["spec"]["priority"] == 2000001000

    status, refused = await create(client, PODS, pod("unknown", priorityClassName="gold"))
    assert status == 403
    assert refused["reason"] == "Forbidden"
    assert refused["message"] == 'pods "unknown" is forbidden: no PriorityClass with name gold was found'
    assert refused["details"] == {"name": "unknown", "kind": "pods"}

    generated = pod("")
    generated["metadata"] = {"generateName": "web-"}
    generated["spec"]["priorityClassName"] = "gold"
    status, refused = await create(client, PODS, generated)
    assert status == 403 and refused["message"].startswith('pods "web-" is forbidden')

    status, refused = await create(client, PODS, pod("liar", priority=7))
    assert status == 403 and "the integer value of priority (7) must not be provided" in refused["message"]

    base = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "value": 1000,
        "globalDefault": True,
    }
    status, _ = await create(
        client, CLASSES, {**base, "metadata": {"name": "base"}, "preemptionPolicy": "Never"}
    )
    assert status == 201
    status, second = await create(client, CLASSES, {**base, "metadata": {"name": "other"}})
    assert status == 403
    assert second["message"] == (
        'priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass base is already marked as '
        "default. Only one default can exist"
    )
    assert second["details"] == {"name": "other", "group": "scheduling.k8s.io", "kind": "priorityclasses"}

    status, defaulted = await create(client, PODS, pod("d"))
    assert status == 201
    assert defaulted["spec"]["priorityClassName"] == "base"
    assert defaulted["spec"]["priority"] == 1000 and defaulted["spec"]["preemptionPolicy"] == "Never"


async def test_limit_ranges_default_and_bound_containers(client: Client, ctx: ServerContext) -> None:
    limit_range = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "lr"},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "max": {"cpu": "1"},
                    "default": {"cpu": "500m"},
                    "defaultRequest": {"cpu": "100m"},
                }
            ]
        },
    }
    assert (await create(client, LIMITS, limit_range))[0] == 201
    status, created = await create(client, PODS, pod("small"))
    assert status == 201
    assert created["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m"},
        "requests": {"cpu": "100m"},
    }
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    )
    big = pod("big", containers=[{"name": "c", "image": "i", "resources": {"limits": {"cpu": "2"}}}])
    status, refused = await create(client, PODS, big)
    assert status == 403
    assert (
        refused["message"] == 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    )
    # A dry run shows the defaults and stores nothing.
    status, dry = await create(client, PODS, pod("dry"), dry_run=True)
    assert status == 201 and dry["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m"}
    assert (await client.get(f"{PODS}/dry")).status == 404


async def test_quota_refuses_past_hard_and_records_usage(client: Client) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "1", "configmaps": "1"}},
    }
    assert (await create(client, QUOTAS, quota))[0] == 201

    # A dry run is checked but charges nothing.
    assert (await create(client, PODS, pod("a"), dry_run=True))[0] == 201
    untouched = await (await client.get(f"{QUOTAS}/q")).json()
    assert (untouched.get("status") or {}).get("used") is None

    assert (await create(client, PODS, pod("a")))[0] == 201
    recorded = await (await client.get(f"{QUOTAS}/q")).json()
    assert recorded["status"]["used"]["pods"] == "1"
    assert recorded["status"]["hard"] == {"pods": "1", "configmaps": "1"}

    status, refused = await create(client, PODS, pod("b"))
    assert status == 403
    assert (
        refused["message"]
        == 'pods "b" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1'
    )

    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}}
    assert (await create(client, "/api/v1/namespaces/default/configmaps", cm))[0] == 201
    status, refused = await create(
        client, "/api/v1/namespaces/default/configmaps", {**cm, "metadata": {"name": "two"}}
    )
    assert status == 403 and "used: configmaps=1, limited: configmaps=1" in refused["message"]

    # A finished pod no longer counts against `pods`.
    finished = await client.patch(
        f"{PODS}/a/status",
        json={"status": {"phase": "Succeeded"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert finished.status == 200
    assert (await create(client, PODS, pod("b")))[0] == 201


class RacingStore(ObjectStore):
    """Pod listings that wait (briefly) for a second reader: two quota checks then see the same
    count, unless something serializes them."""

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self.readers = 0
        self.second_reader = asyncio.Event()

    async def list(self, info: Any, namespace: Any, **kwargs: Any) -> Any:
        page = await super().list(info, namespace, **kwargs)
        if info.plural == "pods":
            self.readers += 1
            if self.readers >= 2:
                self.second_reader.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.second_reader.wait(), 0.05)
        return page


async def test_concurrent_creates_cannot_share_the_last_slot(client: Client, ctx: ServerContext) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "3"}},
    }
    assert (await create(client, QUOTAS, quota))[0] == 201
    assert (await create(client, PODS, pod("first")))[0] == 201
    assert (await create(client, PODS, pod("second")))[0] == 201
    ctx.store = RacingStore(ctx.storage)
    results = await asyncio.gather(*(create(client, PODS, pod(f"racer-{i}")) for i in range(8)))
    assert sorted(status for status, _ in results) == [201] + [403] * 7
    listed = await (await client.get(PODS)).json()
    assert len(listed["items"]) == 3


async def test_quota_requires_compute_resources_it_limits(client: Client) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "compute"},
        "spec": {"hard": {"limits.cpu": "2"}},
    }
    assert (await create(client, QUOTAS, quota))[0] == 201
    status, refused = await create(client, PODS, pod("bare"))
    assert status == 403
    assert (
        refused["message"]
        == 'pods "bare" is forbidden: failed quota: compute: must specify limits.cpu for: c'
    )
    sized = pod("sized", containers=[{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1500m"}}}])
    assert (await create(client, PODS, sized))[0] == 201
    status, refused = await create(client, PODS, {**sized, "metadata": {"name": "sized2"}})
    assert status == 403
    assert refused["message"].endswith(
        "requested: limits.cpu=1500m, used: limits.cpu=1500m, limited: limits.cpu=2"
    )


async def test_malformed_quantity_in_a_quota_checked_pod_is_a_bad_request(client: Client) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "2"}},
    }
    assert (await create(client, QUOTAS, quota))[0] == 201
    bad = pod("bad", containers=[{"name": "c", "image": "i", "resources": {"requests": {"cpu": "lots"}}}])
    status, body = await create(client, PODS, bad)
    assert status == 400 and body["message"].startswith("quantities must match the regular expression")
