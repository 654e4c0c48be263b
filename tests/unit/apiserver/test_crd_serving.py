"""CRDs served in process: the controller's reconcile, registry entries, versions in storage,
status and generation, discovery and OpenAPI, and deletion of a CRD with its objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.resources import default_registry, version_priority
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authz, discovery, openapi
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.crd.codec import CustomResourceCodec
from controlplane.apiserver.crd.controller import CRDController
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

CRD_NAME = "widgets.example.com"
BASE = "/apis/example.com"


class AllowAll:
    async def authorize(self, attrs: authz.Attributes) -> authz.Decision:
        return authz.Decision(True)


def widget_crd(*, columns: list[dict[str, Any]] | None = None, description: str = "") -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    v1_schema: dict[str, Any] = {"openAPIV3Schema": dict(schema["openAPIV3Schema"])}
    if description:
        v1_schema["openAPIV3Schema"]["description"] = description
    v1: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": v1_schema,
        "subresources": {
            "status": {},
            "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
        },
    }
    if columns is not None:
        v1["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1beta1", "served": True, "storage": False, "schema": schema},
                v1,
            ],
        },
    }


@pytest.fixture
async def ctx() -> AsyncIterator[ServerContext]:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    ips = ServiceIPAllocator(storage, "10.96.0.0/24")
    codec = CustomResourceCodec()
    context = ServerContext(
        registry=default_registry(),
        storage=storage,
        store=ObjectStore(storage, codec),
        services=ServiceAllocation(ips, NodePortAllocator(storage)),
    )
    codec.ctx = context
    await _bootstrap(context, ips.kubernetes_service_ip, 6443)
    yield context
    await storage.close()


@pytest.fixture
async def client(ctx: ServerContext) -> AsyncIterator[TestClient[Any, Any]]:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    test_client: TestClient[Any, Any] = TestClient(TestServer(app_module.create_app(ctx, settings)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def install(client: TestClient[Any, Any], ctx: ServerContext) -> CRDController:
    resp = await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=widget_crd())
    assert resp.status == 201, await resp.text()
    controller = CRDController(ctx)
    await controller.reconcile(CRD_NAME)
    return controller


async def test_an_established_crd_is_served_in_every_served_version(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    await install(client, ctx)
    crd = await (
        await client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
    ).json()
    assert crd["status"]["storedVersions"] == ["v1"]
    assert [c["type"] for c in crd["status"]["conditions"]] == ["NamesAccepted", "Established"]
    assert crd["spec"]["conversion"] == {"strategy": "None"}
    group = await (await client.get(BASE)).json()
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    resources = await (await client.get(f"{BASE}/v1")).json()
    names = {r["name"]: r for r in resources["resources"]}
    assert set(names) == {"widgets", "widgets/scale", "widgets/status"}
    assert names["widgets"]["shortNames"] == ["wd"]
    assert names["widgets"]["categories"] == ["all"]
    # Every version hashes the storage version, as upstream.
    v1beta1 = await (await client.get(f"{BASE}/v1beta1")).json()
    assert v1beta1["resources"][0]["storageVersionHash"] == discovery.storage_version_hash(
        "example.com", "v1", "Widget"
    )


async def test_objects_are_stored_in_the_storage_version_and_read_in_any(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    await install(client, ctx)
    body = {
        "apiVersion": "example.com/v1beta1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"a": 1},
    }
    resp = await client.post(f"{BASE}/v1beta1/namespaces/default/widgets", json=body)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["apiVersion"] == "example.com/v1beta1"
    stored = await ctx.storage.get("/registry/example.com/widgets/default/w")
    assert stored is not None and orjson.loads(stored.value)["apiVersion"] == "example.com/v1"
    got = await (await client.get(f"{BASE}/v1beta1/namespaces/default/widgets/w")).json()
    assert got["apiVersion"] == "example.com/v1beta1"
    listed = await (await client.get(f"{BASE}/v1beta1/widgets")).json()
    assert [i["apiVersion"] for i in listed["items"]] == ["example.com/v1beta1"]
    selected = await (await client.get(f"{BASE}/v1beta1/widgets?labelSelector=x!=y")).json()
    assert [i["apiVersion"] for i in selected["items"]] == ["example.com/v1beta1"]


async def test_watch_events_carry_the_watched_version(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    await install(client, ctx)
    info = ctx.registry.get("example.com", "v1beta1", "widgets")
    assert info is not None
    watch = await ctx.store.watch(info, None, revision=await ctx.store.current_revision())
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert (await client.post(f"{BASE}/v1/namespaces/default/widgets", json=body)).status == 201
    event = await asyncio.wait_for(watch.__aiter__().__anext__(), 5)
    assert orjson.loads(event.kv.value)["apiVersion"] == "example.com/v1beta1"
    await watch.close()


async def test_status_is_a_subresource_and_generation_follows_spec(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    await install(client, ctx)
    url = f"{BASE}/v1/namespaces/default/widgets/w"
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"replicas": 1},
        "status": {"replicas": 5},
    }
    created = await (await client.post(f"{BASE}/v1/namespaces/default/widgets", json=body)).json()
    assert "status" not in created  # status is dropped on create
    assert created["metadata"]["generation"] == 1
    merge = {"Content-Type": "application/merge-patch+json"}
    patched = await (
        await client.patch(f"{url}/status", data=b'{"status":{"replicas":2}}', headers=merge)
    ).json()
    assert patched["status"] == {"replicas": 2}
    assert patched["metadata"]["generation"] == 1
    ignored = await (await client.patch(url, data=b'{"status":{"replicas":9}}', headers=merge)).json()
    assert ignored["status"] == {"replicas": 2}
    scaled = await client.patch(f"{url}/scale", data=b'{"spec":{"replicas":4}}', headers=merge)
    assert (await scaled.json())["spec"]["replicas"] == 4
    after = await (await client.get(url)).json()
    assert after["spec"]["replicas"] == 4
    assert after["metadata"]["generation"] == 2
    smp = await client.patch(
        url, data=b"{}", headers={"Content-Type": "application/strategic-merge-patch+json"}
    )
    assert smp.status == 415


async def test_table_columns_come_from_the_crd(client: TestClient[Any, Any], ctx: ServerContext) -> None:
    await install(client, ctx)
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    await client.post(f"{BASE}/v1/namespaces/default/widgets", json=body)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    table = await (await client.get(f"{BASE}/v1/widgets", headers=accept)).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


async def test_updating_the_crd_changes_only_its_own_openapi_documents(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    controller = await install(client, ctx)
    apps = openapi.v3_group_version_bytes(ctx.registry, "apps", "v1")
    before = openapi.v3_group_version_bytes(ctx.registry, "example.com", "v1")
    assert apps is not None and before is not None
    column = {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 1}
    crd_url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    current = await (await client.get(crd_url)).json()
    updated = widget_crd(columns=[column], description="A widget.")
    updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    assert (await client.put(crd_url, json=updated)).status == 200
    await controller.reconcile(CRD_NAME)
    after = openapi.v3_group_version_bytes(ctx.registry, "example.com", "v1")
    assert after is not None and after[1] != before[1]
    assert openapi.v3_group_version_bytes(ctx.registry, "apps", "v1") == apps
    info = ctx.registry.get("example.com", "v1", "widgets")
    assert info is not None and info.extra["additionalPrinterColumns"] == [column]


async def test_deleting_a_crd_deletes_its_objects_first(
    client: TestClient[Any, Any], ctx: ServerContext
) -> None:
    controller = await install(client, ctx)
    for name, finalizers in (("a", []), ("b", ["example.com/hold"])):
        body = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name, "finalizers": finalizers},
        }
        assert (await client.post(f"{BASE}/v1/namespaces/default/widgets", json=body)).status == 201
    crd_url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    deleted = await (await client.delete(crd_url)).json()
    assert deleted["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    assert await controller.reconcile(CRD_NAME) is True  # "b" still holds on
    crd = await (await client.get(crd_url)).json()
    terminating = next(c for c in crd["status"]["conditions"] if c["type"] == "Terminating")
    assert terminating["reason"] == "InstanceDeletionInProgress"
    refused = await client.post(
        f"{BASE}/v1/namespaces/default/widgets",
        json={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "c"}},
    )
    assert refused.status == 405
    assert (await refused.json())[
        "message"
    ] == "create not allowed while custom resource definition is terminating"
    await client.patch(
        f"{BASE}/v1/namespaces/default/widgets/b",
        data=b'{"metadata":{"finalizers":null}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert await controller.reconcile(CRD_NAME) is False
    assert (await client.get(crd_url)).status == 404
    await controller.reconcile(CRD_NAME)
    assert ctx.registry.get("example.com", "v1", "widgets") is None
    assert (await client.get(BASE)).status == 404


async def test_stored_crds_are_served_at_start_up(client: TestClient[Any, Any], ctx: ServerContext) -> None:
    await install(client, ctx)
    fresh = ServerContext(
        registry=default_registry(), storage=ctx.storage, store=ctx.store, services=ctx.services
    )
    await CRDController(fresh).sync_all()
    info = fresh.registry.get("example.com", "v1beta1", "widgets")
    assert info is not None and info.storage_version == "v1"


def test_versions_sort_in_kube_aware_order() -> None:
    versions = ["v1alpha1", "foo10", "v2", "v1beta1", "v11beta2", "v1", "v12alpha1", "foo1", "v10beta3"]
    assert sorted(versions, key=version_priority) == [
        "v2",
        "v1",
        "v11beta2",
        "v10beta3",
        "v1beta1",
        "v12alpha1",
        "v1alpha1",
        "foo1",
        "foo10",
    ]
