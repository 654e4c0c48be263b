"""The request pipeline in process (memory storage, no TLS): limits, Status errors, no tracebacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authz
from controlplane.apiserver.allocators import Allocation, NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage


class AllowAll:
    async def authorize(self, attrs: authz.Attributes) -> authz.Decision:
        return authz.Decision(True)


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


async def _client(ctx: ServerContext, app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_requests_over_the_inflight_limit_get_429_with_retry_after(ctx: ServerContext) -> None:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll(), max_requests_inflight=1)
    app = app_module.create_app(ctx, settings)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="done")

    app.router.add_get("/slow", slow)
    client = await _client(ctx, app)
    try:
        first = asyncio.ensure_future(client.get("/slow"))
        await entered.wait()
        second = await client.get("/api/v1/namespaces")
        assert second.status == 429
        assert second.headers["Retry-After"] == "1"
        body = await second.json()
        assert body["reason"] == "TooManyRequests" and body["code"] == 429
        health = await client.get("/livez")  # health checks are never limited
        assert health.status == 200
        release.set()
        assert (await first).status == 200
        assert (await client.get("/api/v1/namespaces")).status == 200
    finally:
        await client.close()


async def test_an_unexpected_exception_is_a_500_status_without_traceback(ctx: ServerContext) -> None:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    app = app_module.create_app(ctx, settings)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/broken", broken)
    client = await _client(ctx, app)
    try:
        resp = await client.get("/broken")
        text = await resp.text()
        assert resp.status == 500
        assert '"reason":"InternalError"' in text
        assert "Traceback" not in text and "secret internals" not in text
    finally:
        await client.close()


async def test_status_bodies_use_go_field_order_and_a_trailing_newline(ctx: ServerContext) -> None:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    client = await _client(ctx, app_module.create_app(ctx, settings))
    try:
        resp = await client.get("/api/v1/namespaces/default/configmaps/missing")
        assert resp.status == 404
        assert await resp.text() == (
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            '"message":"configmaps \\"missing\\" not found","reason":"NotFound",'
            '"details":{"name":"missing","kind":"configmaps"},"code":404}\n'
        )
    finally:
        await client.close()


async def test_bootstrap_creates_system_namespaces_and_the_kubernetes_service(ctx: ServerContext) -> None:
    ns = ctx.registry.get("", "v1", "namespaces")
    svc = ctx.registry.get("", "v1", "services")
    assert ns is not None and svc is not None
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert (await ctx.store.get(ns, "", name))["status"]["phase"] == "Active"
    kubernetes = await ctx.store.get(svc, "default", "kubernetes")
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "a"}},
    "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
}


async def test_binding_eviction_log_and_finalize_subresources(ctx: ServerContext) -> None:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    client = await _client(ctx, app_module.create_app(ctx, settings))
    base = "/api/v1/namespaces/default/pods"
    try:
        assert (await client.post(base, json=POD)).status == 201
        log = await client.get(f"{base}/p/log")
        assert log.status == 204  # unscheduled: no kubelet to ask, an empty answer as upstream

        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "n1"}}
        assert (await client.post(f"{base}/p/binding", json=binding)).status == 201
        pod = await (await client.get(f"{base}/p")).json()
        assert pod["spec"]["nodeName"] == "n1"
        assert any(c["type"] == "PodScheduled" for c in pod["status"]["conditions"])
        again = await client.post(f"{base}/p/binding", json=binding)
        assert again.status == 409  # already bound

        log = await client.get(f"{base}/p/log")  # bound to a node that does not exist
        assert log.status == 404
        assert (await log.json())["message"] == 'nodes "n1" not found'

        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "budget"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}},
        }
        assert (
            await client.post("/apis/policy/v1/namespaces/default/poddisruptionbudgets", json=pdb)
        ).status == 201
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
        # A Pending pod is evicted without consulting budgets, as upstream: make it Running.
        running = await (await client.get(f"{base}/p")).json()
        running["status"]["phase"] = "Running"
        assert (await client.put(f"{base}/p/status", json=running)).status == 200
        refused = await client.post(f"{base}/p/eviction", json=eviction)
        # The budget has not been processed (observedGeneration 0): refused, with no Retry-After
        # (upstream sends none, and kubectl drain then reports the refusal at once).
        assert refused.status == 429 and "Retry-After" not in refused.headers
        body = await refused.json()
        assert body["reason"] == "TooManyRequests"
        assert "is still being processed by the server" in body["details"]["causes"][0]["message"]
        await client.delete("/apis/policy/v1/namespaces/default/poddisruptionbudgets/budget")
        assert (await client.post(f"{base}/p/eviction", json=eviction)).status == 201
        # A bound pod is deleted gracefully: it stays, marked, until its node finishes it.
        evicted = await (await client.get(f"{base}/p")).json()
        assert evicted["metadata"]["deletionGracePeriodSeconds"] == 30
        target = [c for c in evicted["status"]["conditions"] if c["type"] == "DisruptionTarget"]
        assert target and target[0]["reason"] == "EvictionByEvictionAPI"

        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}}
        assert (await client.post("/api/v1/namespaces", json=ns)).status == 201
        deleting = await (await client.delete("/api/v1/namespaces/gone")).json()
        assert deleting["status"]["phase"] == "Terminating"
        refused_create = await client.post(
            "/api/v1/namespaces/gone/configmaps", json={"metadata": {"name": "x"}}
        )
        assert refused_create.status == 403
        finalize = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "gone"},
            "spec": {"finalizers": []},
        }
        assert (await client.put("/api/v1/namespaces/gone/finalize", json=finalize)).status == 200
        assert (await client.get("/api/v1/namespaces/gone")).status == 404
    finally:
        await client.close()


async def test_repair_releases_allocations_no_service_holds(ctx: ServerContext) -> None:
    svc_info = ctx.registry.get("", "v1", "services")
    assert svc_info is not None
    # An allocation left behind by a crash between allocating and storing a Service.
    orphaned = Allocation()
    ip = await ctx.services.ips.allocate("default/crashed", orphaned)
    port = await ctx.services.ports.allocate("default/crashed", orphaned, "spec.ports[0].nodePort")
    services = (await ctx.store.list(svc_info, None)).items
    released = await ctx.services.repair(services)
    assert sorted(released) == sorted([ip, str(port)])
    assert ip not in await ctx.services.ips.in_use()
    # The kubernetes Service keeps its address.
    assert "10.96.0.1" in await ctx.services.ips.in_use()
    assert await ctx.services.repair(services) == []


async def test_pod_create_records_the_qos_class_after_defaulting(ctx: ServerContext) -> None:
    settings = app_module.AppSettings(authenticator=None, authorizer=AllowAll())
    client = await _client(ctx, app_module.create_app(ctx, settings))
    base = "/api/v1/namespaces/default/pods"
    limited = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "limited"},
        # Only limits: defaulting copies them to requests, which makes the pod Guaranteed.
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
            ]
        },
    }
    try:
        created = await (await client.post(base, json=limited)).json()
        assert created["status"]["qosClass"] == "Guaranteed"
        plain = await (await client.post(base, json={**POD, "metadata": {"name": "plain"}})).json()
        assert plain["status"]["qosClass"] == "BestEffort"
    finally:
        await client.close()
