"""The write pipeline works on its own copies: what it reads from storage and the request body
it retries with are never changed by a write, so a retried write and the next read see the
stored state, not a half-built object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authz
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

PODS = "/api/v1/namespaces/default/pods"
Client = TestClient[Any, Any]


class AllowAll:
    async def authorize(self, attrs: authz.Attributes) -> authz.Decision:
        return authz.Decision(True)


class ConflictOnce(ObjectStore):
    """The first update of each test loses a race: the write pipeline must start over from a
    fresh read and apply the request again."""

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self.conflicts = 0

    async def update(self, info: Any, obj: dict[str, Any], *, expected_revision: int) -> dict[str, Any]:
        if self.conflicts == 0:
            self.conflicts += 1
            # Mutate what we were given, as a buggy writer could: the retry must not see it.
            obj["spec"]["containers"][0]["image"] = "corrupted"
            raise errors.Conflict.modified(info.plural, info.group, obj["metadata"]["name"])
        return await super().update(info, obj, expected_revision=expected_revision)


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
    )
    await _bootstrap(context, ips.kubernetes_service_ip, 6443)
    yield context
    await storage.close()


@pytest.fixture
async def client(ctx: ServerContext) -> AsyncIterator[Client]:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    test_client: Client = TestClient(TestServer(app_module.create_app(ctx, settings)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
    }


async def test_get_twice_gives_two_unshared_copies(ctx: ServerContext, client: Client) -> None:
    assert (await client.post(PODS, json=pod("a"))).status == 201
    info = ctx.registry.get("", "v1", "pods")
    assert info is not None
    first, second = await ctx.store.get_twice(info, "default", "a")
    assert first == second
    second["spec"]["containers"][0]["image"] = "changed"
    second["metadata"]["labels"]["app"] = "changed"
    assert first["spec"]["containers"][0]["image"] == "nginx:1.27"
    again = await ctx.store.get(info, "default", "a")
    assert again["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert again["metadata"]["labels"] == {"app": "x"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/strategic-merge-patch+json", {"status": {"phase": "Running"}}),
        ("application/merge-patch+json", {"status": {"phase": "Running"}}),
        ("application/json-patch+json", [{"op": "replace", "path": "/status/phase", "value": "Running"}]),
    ],
)
async def test_a_retried_status_patch_starts_from_the_stored_object(
    ctx: ServerContext, client: Client, content_type: str, body: Any
) -> None:
    assert (await client.post(PODS, json=pod("a"))).status == 201
    ctx.store = ConflictOnce(ctx.storage)
    response = await client.patch(f"{PODS}/a/status", json=body, headers={"Content-Type": content_type})
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["status"]["phase"] == "Running"
    assert patched["spec"]["containers"][0]["image"] == "nginx:1.27"
    stored = await (await client.get(f"{PODS}/a")).json()
    assert stored["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert stored["status"]["phase"] == "Running"


async def test_a_retried_update_sends_the_request_body_again(ctx: ServerContext, client: Client) -> None:
    assert (await client.post(PODS, json=pod("a"))).status == 201
    current = await (await client.get(f"{PODS}/a")).json()
    current["metadata"]["labels"] = {"app": "y"}
    del current["metadata"]["resourceVersion"]
    ctx.store = ConflictOnce(ctx.storage)
    response = await client.put(f"{PODS}/a", json=current)
    assert response.status == 200, await response.text()
    stored = await (await client.get(f"{PODS}/a")).json()
    assert stored["metadata"]["labels"] == {"app": "y"}
    assert stored["spec"]["containers"][0]["image"] == "nginx:1.27"


async def test_an_update_with_a_resource_version_that_loses_a_race_is_a_conflict(
    ctx: ServerContext, client: Client
) -> None:
    """Such a PUT is not retried with its body (it keeps no copy of it): the answer is 409."""
    assert (await client.post(PODS, json=pod("a"))).status == 201
    current = await (await client.get(f"{PODS}/a")).json()
    current["metadata"]["labels"] = {"app": "y"}
    ctx.store = ConflictOnce(ctx.storage)
    response = await client.put(f"{PODS}/a", json=current)
    assert response.status == 409, await response.text()
    assert (await response.json())["reason"] == "Conflict"
    stored = await (await client.get(f"{PODS}/a")).json()
    assert stored["metadata"]["labels"] == {"app": "x"}


async def test_a_no_op_status_write_keeps_the_resource_version(client: Client) -> None:
    created = await (await client.post(PODS, json=pod("a"))).json()
    response = await client.patch(
        f"{PODS}/a/status",
        json={"status": {"phase": "Pending"}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert response.status == 200
    assert (await response.json())["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
