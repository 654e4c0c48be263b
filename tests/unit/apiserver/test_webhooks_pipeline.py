"""Admission webhooks inside the write pipeline, in process (memory storage) against a real
HTTPS webhook server: denial, JSON patches with reinvocation, failure policies, warnings,
dry runs, selectors, UPDATE's oldObject and the wording of every failure."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authz
from controlplane.apiserver.admission import default_admission
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage
from tests.unit.apiserver.test_webhooks_server import TLS, WebhookServer, allow, make_tls, serve

Client = TestClient[Any, Any]
Obj = dict[str, Any]

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class AllowAll:
    async def authorize(self, attrs: authz.Attributes) -> authz.Decision:
        return authz.Decision(True)


def patch_response(body: Obj, operations: list[Obj], **extra: Any) -> Obj:
    return allow(
        body,
        patchType="JSONPatch",
        patch=base64.b64encode(orjson.dumps(operations)).decode(),
        **extra,
    )


def handler(path: str, body: Obj) -> Obj:
    """One webhook per path."""
    request = body["request"]
    obj = request["object"] or request["oldObject"] or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if path == "/deny":
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": request["uid"],
                "allowed": False,
                "status": {
                    "code": 403,
                    "reason": "Forbidden",
                    "message": "configmaps named bad are not allowed",
                },
            },
        }
    if path == "/deny-bare":
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["uid"]},
        }
    if path == "/label-a":
        if "a" in labels:
            return allow(body)
        ops: list[Obj] = [{"op": "add", "path": "/metadata/labels/a", "value": "1"}]
        if not labels:
            ops = [{"op": "add", "path": "/metadata/labels", "value": {"a": "1"}}]
        return patch_response(body, ops)
    if path == "/label-b":
        if not labels:
            return patch_response(body, [{"op": "add", "path": "/metadata/labels", "value": {"b": "1"}}])
        return patch_response(body, [{"op": "add", "path": "/metadata/labels/b", "value": "1"}])
    if path == "/warn":
        return allow(body, warnings=["this configmap is deprecated", 'quote " inside'])
    if path == "/cap":
        replicas = (obj.get("spec") or {}).get("replicas", 0)
        if request["kind"]["kind"] == "Scale" and replicas > 5:
            return patch_response(
                body, [{"op": "replace", "path": "/spec/replicas", "value": 5}], warnings=["capped at 5"]
            )
        return allow(body)
    if path == "/wrong-uid":
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "nope", "allowed": True},
        }
    return allow(body)


async def slow_handler(path: str, body: Obj) -> Obj:
    await asyncio.sleep(0.6)
    return handler(path, body)


@pytest.fixture(scope="module")
def tls() -> TLS:
    return make_tls()


@pytest.fixture(scope="module")
def hooks(tls: TLS) -> Iterator[WebhookServer]:
    with serve(tls, slow_handler_or_fast) as server:
        yield server


def slow_handler_or_fast(path: str, body: Obj) -> Any:
    return slow_handler(path, body) if path.startswith("/slow") else handler(path, body)


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
        admission=default_admission(disabled=("ServiceAccount",)),
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


def webhook(name: str, url: str, tls: TLS, **extra: Any) -> Obj:
    out: Obj = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": tls.ca_bundle},
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    out.update(extra)
    return out


async def configure(client: Client, path: str, name: str, *hooks: Obj) -> None:
    kind = "ValidatingWebhookConfiguration" if path == VALIDATING else "MutatingWebhookConfiguration"
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }
    response = await client.post(path, json=body)
    assert response.status == 201, await response.text()


def configmap(name: str, **labels: str) -> Obj:
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


async def test_a_validating_webhook_denies_with_its_status(
    client: Client, hooks: WebhookServer, tls: TLS
) -> None:
    await configure(client, VALIDATING, "deny", webhook("deny.example.com", hooks.url("/deny"), tls))
    response = await client.post(CONFIGMAPS, json=configmap("bad"))
    assert response.status == 403
    status = await response.json()
    assert status["reason"] == "Forbidden"
    assert (
        status["message"]
        == 'admission webhook "deny.example.com" denied the request: configmaps named bad are not allowed'
    )
    assert (await client.get(f"{CONFIGMAPS}/bad")).status == 404
    review = hooks.bodies("/deny")[-1]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    request = review["request"]
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["requestKind"] == request["kind"] and request["requestResource"] == request["resource"]
    assert request["operation"] == "CREATE" and request["namespace"] == "default" and request["name"] == "bad"
    assert request["object"]["data"] == {"k": "v"} and request["oldObject"] is None
    assert request["dryRun"] is False
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}


async def test_a_denial_without_message(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(client, VALIDATING, "bare", webhook("bare.example.com", hooks.url("/deny-bare"), tls))
    response = await client.post(CONFIGMAPS, json=configmap("x"))
    assert response.status == 400
    assert (await response.json())[
        "message"
    ] == 'admission webhook "bare.example.com" denied the request without explanation'


async def test_mutating_patches_apply_and_reinvoke(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    # Configurations run in name order: "a-first" labels a (IfNeeded), then "b-second" labels b,
    # which changes the object after a: a is called once more.
    await configure(
        client,
        MUTATING,
        "a-first",
        webhook("a.example.com", hooks.url("/label-a"), tls, reinvocationPolicy="IfNeeded"),
    )
    await configure(client, MUTATING, "b-second", webhook("b.example.com", hooks.url("/label-b"), tls))
    before = len(hooks.bodies("/label-a"))
    response = await client.post(CONFIGMAPS, json=configmap("m"))
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["metadata"]["labels"] == {"a": "1", "b": "1"}
    calls = hooks.bodies("/label-a")[before:]
    assert len(calls) == 2
    assert calls[1]["request"]["object"]["metadata"]["labels"] == {"a": "1", "b": "1"}
    stored = await (await client.get(f"{CONFIGMAPS}/m")).json()
    assert stored["metadata"]["labels"] == {"a": "1", "b": "1"}
    # What the pipeline adds after admission (managedFields) lands on the patched object.
    assert stored["metadata"]["managedFields"][0]["operation"] == "Update"
    updated = await client.patch(
        f"{CONFIGMAPS}/m",
        data=orjson.dumps({"data": {"k": "changed"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert updated.status == 200
    after = await updated.json()
    assert after["data"] == {"k": "changed"} and after["metadata"]["managedFields"]


async def test_never_reinvoked_by_default(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(client, MUTATING, "a-first", webhook("a.example.com", hooks.url("/label-a"), tls))
    await configure(client, MUTATING, "b-second", webhook("b.example.com", hooks.url("/label-b"), tls))
    before = len(hooks.bodies("/label-a"))
    response = await client.post(CONFIGMAPS, json=configmap("n"))
    assert response.status == 201
    assert len(hooks.bodies("/label-a")) - before == 1


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{sock.getsockname()[1]}/dead"


async def test_failure_policies(client: Client, tls: TLS) -> None:
    url = dead_url()
    await configure(
        client, VALIDATING, "dead-ignore", webhook("ignore.example.com", url, tls, failurePolicy="Ignore")
    )
    assert (await client.post(CONFIGMAPS, json=configmap("survives"))).status == 201
    await configure(client, VALIDATING, "dead-fail", webhook("fail.example.com", url, tls))
    response = await client.post(CONFIGMAPS, json=configmap("refused"))
    assert response.status == 500
    status = await response.json()
    port = url.split(":")[2].split("/")[0]
    reason = (
        f'failed calling webhook "fail.example.com": failed to call webhook: Post "{url}?timeout=10s": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )
    assert status["reason"] == "InternalError"
    assert status["message"] == f"Internal error occurred: {reason}"
    assert status["details"]["causes"] == [{"reason": "", "message": reason}] or status["details"][
        "causes"
    ] == [{"message": reason}]


async def test_a_slow_webhook_within_its_timeout(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(
        client, VALIDATING, "slow", webhook("slow.example.com", hooks.url("/slow"), tls, timeoutSeconds=1)
    )
    # The slow handler takes 0.6 s: within the timeout.
    assert (await client.post(CONFIGMAPS, json=configmap("in-time"))).status == 201


async def test_a_timeout_is_context_deadline_exceeded(client: Client, tls: TLS) -> None:
    async def very_slow(path: str, body: Obj) -> Obj:
        await asyncio.sleep(1.5)
        return allow(body)

    with serve(tls, very_slow) as server:
        await configure(
            client,
            VALIDATING,
            "slower",
            webhook("slower.example.com", server.url("/v"), tls, timeoutSeconds=1),
        )
        response = await client.post(CONFIGMAPS, json=configmap("late"))
        status = await response.json()
    assert response.status == 500
    assert status["message"] == (
        'Internal error occurred: failed calling webhook "slower.example.com": failed to call webhook: '
        f'Post "{server.url("/v")}?timeout=1s": context deadline exceeded'
    )


async def test_validating_webhooks_run_in_parallel(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(
        client,
        VALIDATING,
        "parallel",
        webhook("one.example.com", hooks.url("/slow-1"), tls),
        webhook("two.example.com", hooks.url("/slow-2"), tls),
        webhook("three.example.com", hooks.url("/slow-3"), tls),
    )
    started = time.monotonic()
    assert (await client.post(CONFIGMAPS, json=configmap("par"))).status == 201
    assert time.monotonic() - started < 1.5  # three calls of 0.6 s each


async def test_warnings_become_warning_headers(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(client, VALIDATING, "warn", webhook("warn.example.com", hooks.url("/warn"), tls))
    response = await client.post(CONFIGMAPS, json=configmap("w"))
    assert response.status == 201
    assert response.headers.getall("Warning") == [
        '299 - "this configmap is deprecated", 299 - "quote \\" inside"'
    ]


async def test_dry_run_and_side_effects(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(client, VALIDATING, "dry", webhook("dry.example.com", hooks.url("/dry"), tls))
    response = await client.post(CONFIGMAPS + "?dryRun=All", json=configmap("d"))
    assert response.status == 201
    request = hooks.bodies("/dry")[-1]["request"]
    assert request["dryRun"] is True
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]}
    await configure(
        client, VALIDATING, "some", webhook("some.example.com", hooks.url("/some"), tls, sideEffects="Some")
    )
    before = len(hooks.bodies("/some"))
    response = await client.post(CONFIGMAPS + "?dryRun=All", json=configmap("d2"))
    assert response.status == 400
    assert (await response.json())[
        "message"
    ] == 'admission webhook "some.example.com" does not support dry run'
    assert len(hooks.bodies("/some")) == before
    # Without dryRun the same webhook is called.
    assert (await client.post(CONFIGMAPS, json=configmap("d3"))).status == 201


async def test_updates_carry_the_old_object(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    assert (await client.post(CONFIGMAPS, json=configmap("u"))).status == 201
    await configure(client, VALIDATING, "upd", webhook("upd.example.com", hooks.url("/upd"), tls))
    response = await client.patch(
        f"{CONFIGMAPS}/u",
        data=orjson.dumps({"data": {"k": "w"}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status == 200
    request = hooks.bodies("/upd")[-1]["request"]
    assert request["operation"] == "UPDATE"
    assert request["object"]["data"] == {"k": "w"} and request["oldObject"]["data"] == {"k": "v"}
    assert request["options"]["kind"] == "UpdateOptions"


async def test_selectors(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    assert (
        await client.post(
            "/api/v1/namespaces", json={"metadata": {"name": "guarded", "labels": {"guard": "on"}}}
        )
    ).status == 201
    await configure(
        client,
        VALIDATING,
        "selective",
        webhook(
            "ns.example.com",
            hooks.url("/deny"),
            tls,
            namespaceSelector={"matchLabels": {"guard": "on"}},
        ),
        webhook(
            "obj.example.com",
            hooks.url("/deny"),
            tls,
            objectSelector={"matchExpressions": [{"key": "deny", "operator": "Exists"}]},
        ),
    )
    assert (await client.post(CONFIGMAPS, json=configmap("free"))).status == 201
    denied = await client.post(CONFIGMAPS, json=configmap("labelled", deny="yes"))
    assert denied.status == 403
    assert (await denied.json())["message"].startswith('admission webhook "obj.example.com" denied')
    in_guarded = await client.post("/api/v1/namespaces/guarded/configmaps", json=configmap("c"))
    assert in_guarded.status == 403
    assert (await in_guarded.json())["message"].startswith('admission webhook "ns.example.com" denied')


async def test_match_conditions_skip_the_call(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(
        client,
        VALIDATING,
        "conditional",
        webhook(
            "cond.example.com",
            hooks.url("/deny"),
            tls,
            matchConditions=[{"name": "only-bad", "expression": "object.metadata.name == 'bad'"}],
        ),
    )
    assert (await client.post(CONFIGMAPS, json=configmap("good"))).status == 201
    assert (await client.post(CONFIGMAPS, json=configmap("bad"))).status == 403


async def test_an_invalid_response_is_a_call_failure(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    await configure(client, VALIDATING, "uid", webhook("uid.example.com", hooks.url("/wrong-uid"), tls))
    response = await client.post(CONFIGMAPS, json=configmap("x"))
    assert response.status == 500
    message = (await response.json())["message"]
    assert message.startswith(
        'Internal error occurred: failed calling webhook "uid.example.com": received invalid webhook response: '
        'expected response.uid="'
    )
    assert message.endswith('", got "nope"')


async def test_configurations_are_not_sent_to_webhooks(
    client: Client, hooks: WebhookServer, tls: TLS
) -> None:
    # A webhook for every resource that denies everything can still be removed.
    everything = webhook("all.example.com", hooks.url("/deny"), tls)
    everything["rules"] = [
        {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}
    ]
    await configure(client, VALIDATING, "lockout", everything)
    assert (await client.post(CONFIGMAPS, json=configmap("any"))).status == 403
    response = await client.patch(
        f"{VALIDATING}/lockout",
        data=orjson.dumps({"metadata": {"labels": {"x": "y"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status == 200
    assert (await client.delete(f"{VALIDATING}/lockout")).status == 200
    assert (await client.post(CONFIGMAPS, json=configmap("any"))).status == 201


def _foo_info(version: str) -> Any:
    from controlplane.api.resources import ResourceInfo

    return ResourceInfo(
        group="example.com", version=version, kind="Foo", plural="foos", namespaced=True, custom=True
    )


@pytest.mark.parametrize("policy", ["Equivalent", "Exact"])
async def test_match_policy_sends_the_version_the_webhook_asked_for(
    ctx: ServerContext, hooks: WebhookServer, tls: TLS, policy: str
) -> None:
    from controlplane.apiserver.admission import Attributes
    from controlplane.apiserver.webhooks import MutatingWebhooks

    v1, v2 = _foo_info("v1"), _foo_info("v2")
    ctx.registry.add(v1)
    ctx.registry.add(v2)
    info = ctx.registry.get("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
    assert info is not None
    hook = webhook("foo.example.com", hooks.url(f"/foo-{policy}"), tls, matchPolicy=policy)
    hook["rules"] = [
        {"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["foos"]}
    ]
    await ctx.store.create(
        info,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"foo-{policy.lower()}"},
            "webhooks": [hook],
        },
    )
    obj: Obj = {
        "apiVersion": "example.com/v2",
        "kind": "Foo",
        "metadata": {"name": "f", "namespace": "default"},
    }
    attrs = Attributes(v2, "CREATE", "default", "f")
    await MutatingWebhooks().admit(ctx, attrs, obj, None)
    sent = hooks.bodies(f"/foo-{policy}")
    if policy == "Exact":
        assert sent == []
        return
    request = sent[-1]["request"]
    assert request["kind"] == {"group": "example.com", "version": "v1", "kind": "Foo"}
    assert request["requestKind"] == {"group": "example.com", "version": "v2", "kind": "Foo"}
    assert request["resource"]["version"] == "v1" and request["requestResource"]["version"] == "v2"
    assert request["object"]["apiVersion"] == "example.com/v1"
    # The answer (an allow without patch here) leaves the object in the request's version.
    assert obj["apiVersion"] == "example.com/v2"


async def test_deletes_are_sent_with_the_old_object(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    assert (await client.post(CONFIGMAPS, json=configmap("keep"))).status == 201
    assert (await client.post(CONFIGMAPS, json=configmap("forbidden"))).status == 201
    hook = webhook("del.example.com", hooks.url("/del"), tls)
    hook["rules"][0]["operations"] = ["DELETE"]
    guard = webhook("guard.example.com", hooks.url("/deny"), tls)
    guard["rules"][0]["operations"] = ["DELETE"]
    guard["objectSelector"] = {"matchLabels": {"protected": "yes"}}
    await configure(client, VALIDATING, "deletes", hook, guard)
    await configure(
        client,
        MUTATING,
        "mutating-deletes",
        webhook("mdel.example.com", hooks.url("/mdel"), tls, rules=hook["rules"]),
    )
    assert (await client.delete(f"{CONFIGMAPS}/keep")).status == 200
    request = hooks.bodies("/del")[-1]["request"]
    assert request["operation"] == "DELETE" and request["name"] == "keep"
    assert request["object"] is None and request["oldObject"]["metadata"]["name"] == "keep"
    assert request["options"] == {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
    assert hooks.bodies("/mdel")[-1]["request"]["operation"] == "DELETE"
    # The object selector reads the old object's labels on a delete.
    labelled = configmap("guarded", protected="yes")
    assert (await client.post(CONFIGMAPS, json=labelled)).status == 201
    refused = await client.delete(f"{CONFIGMAPS}/guarded")
    assert refused.status == 403
    assert (await refused.json())["message"].startswith(
        'admission webhook "guard.example.com" denied the request'
    )
    assert (await client.get(f"{CONFIGMAPS}/guarded")).status == 200


async def test_delete_warnings_become_warning_headers(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    for name in ("gone-1", "gone-2"):
        assert (await client.post(CONFIGMAPS, json=configmap(name, batch="x"))).status == 201
    hook = webhook("warn.example.com", hooks.url("/warn"), tls)
    hook["rules"][0]["operations"] = ["DELETE"]
    await configure(client, VALIDATING, "warn-deletes", hook)
    expected = ['299 - "this configmap is deprecated", 299 - "quote \\" inside"']
    response = await client.delete(f"{CONFIGMAPS}/gone-1")
    assert response.status == 200
    assert response.headers.getall("Warning") == expected
    # A collection: each object's delete is admitted; each warning is sent once.
    response = await client.delete(f"{CONFIGMAPS}?labelSelector=batch%3Dx")
    assert response.status == 200
    assert [i["metadata"]["name"] for i in (await response.json())["items"]] == ["gone-2"]
    assert response.headers.getall("Warning") == expected


DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str, replicas: int = 1) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def apps_rule(*resources: str) -> list[Obj]:
    return [
        {"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": list(resources)}
    ]


async def test_scale_requests_are_sent_as_the_scale_subresource(
    client: Client, hooks: WebhookServer, tls: TLS
) -> None:
    assert (await client.post(DEPLOYMENTS, json=deployment("web"))).status == 201
    await configure(
        client,
        VALIDATING,
        "subresources",
        webhook("scale.example.com", hooks.url("/sub-scale"), tls, rules=apps_rule("deployments/scale")),
        webhook("main.example.com", hooks.url("/sub-main"), tls, rules=apps_rule("deployments")),
        webhook("status.example.com", hooks.url("/sub-status"), tls, rules=apps_rule("*/status")),
        webhook("all.example.com", hooks.url("/sub-all"), tls, rules=apps_rule("*/*")),
    )
    response = await client.patch(
        f"{DEPLOYMENTS}/web/scale",
        json={"spec": {"replicas": 3}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["spec"] == {"replicas": 3}
    request = hooks.bodies("/sub-scale")[-1]["request"]
    assert request["subResource"] == "scale" and request["requestSubResource"] == "scale"
    assert request["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert request["requestKind"] == request["kind"]
    assert request["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert request["operation"] == "UPDATE" and request["name"] == "web"
    assert request["object"]["kind"] == "Scale" and request["object"]["apiVersion"] == "autoscaling/v1"
    assert request["object"]["spec"] == {"replicas": 3}
    assert request["oldObject"]["spec"] == {"replicas": 1}
    assert request["object"]["status"]["selector"] == "app=web"
    assert hooks.bodies("/sub-main") == []  # a rule on deployments alone does not see scale
    assert hooks.bodies("/sub-status") == []
    assert [b["request"]["subResource"] for b in hooks.bodies("/sub-all")] == ["scale"]

    status = await client.patch(
        f"{DEPLOYMENTS}/web/status",
        json={"status": {"observedGeneration": 2}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status.status == 200, await status.text()
    request = hooks.bodies("/sub-status")[-1]["request"]
    assert request["subResource"] == "status"
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert request["object"]["status"]["observedGeneration"] == 2
    assert hooks.bodies("/sub-main") == []
    assert [b["request"]["subResource"] for b in hooks.bodies("/sub-all")] == ["scale", "status"]

    update = await client.patch(
        f"{DEPLOYMENTS}/web",
        json={"metadata": {"labels": {"touched": "yes"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert update.status == 200
    request = hooks.bodies("/sub-main")[-1]["request"]
    assert "subResource" not in request and request["kind"]["kind"] == "Deployment"
    assert len(hooks.bodies("/sub-scale")) == 1 and len(hooks.bodies("/sub-status")) == 1


async def test_a_mutating_webhook_patches_the_scale(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    assert (await client.post(DEPLOYMENTS, json=deployment("capped"))).status == 201
    await configure(
        client,
        MUTATING,
        "cap",
        webhook("cap.example.com", hooks.url("/cap"), tls, rules=apps_rule("deployments/scale")),
    )
    response = await client.put(
        f"{DEPLOYMENTS}/capped/scale",
        json={
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "capped"},
            "spec": {"replicas": 9},
        },
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["spec"] == {"replicas": 5}
    assert response.headers.getall("Warning") == ['299 - "capped at 5"']
    stored = await (await client.get(f"{DEPLOYMENTS}/capped")).json()
    assert stored["spec"]["replicas"] == 5
    assert stored["metadata"]["generation"] == 2


PODS = "/api/v1/namespaces/default/pods"


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def pod_rule(operations: list[str], *resources: str) -> list[Obj]:
    return [
        {"operations": operations, "apiGroups": [""], "apiVersions": ["v1"], "resources": list(resources)}
    ]


async def test_bindings_and_evictions_are_creates_of_their_subresource(
    client: Client, hooks: WebhookServer, tls: TLS
) -> None:
    assert (await client.post(PODS, json=pod("p"))).status == 201
    await configure(
        client,
        VALIDATING,
        "pod-subresources",
        webhook("bind.example.com", hooks.url("/p-bind"), tls, rules=pod_rule(["CREATE"], "pods/binding")),
        webhook("evict.example.com", hooks.url("/p-evict"), tls, rules=pod_rule(["CREATE"], "pods/eviction")),
        webhook("pods.example.com", hooks.url("/p-main"), tls, rules=pod_rule(["*"], "pods")),
    )
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "node-1"}}
    response = await client.post(f"{PODS}/p/binding", json=binding)
    assert response.status == 201, await response.text()
    request = hooks.bodies("/p-bind")[-1]["request"]
    assert request["operation"] == "CREATE" and request["subResource"] == "binding"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Binding"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["object"]["target"] == {"name": "node-1"} and request["oldObject"] is None
    assert request["options"]["kind"] == "CreateOptions"
    assert (await (await client.get(f"{PODS}/p")).json())["spec"]["nodeName"] == "node-1"

    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
    response = await client.post(f"{PODS}/p/eviction", json=eviction)
    assert response.status == 201, await response.text()
    request = hooks.bodies("/p-evict")[-1]["request"]
    assert request["operation"] == "CREATE" and request["subResource"] == "eviction"
    assert request["kind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    # Neither the binding's pod update nor the eviction's pod deletion is admitted as a pod write.
    assert hooks.bodies("/p-main") == []


async def test_a_webhook_can_refuse_an_eviction(client: Client, hooks: WebhookServer, tls: TLS) -> None:
    assert (await client.post(PODS, json=pod("kept"))).status == 201
    await configure(
        client,
        VALIDATING,
        "no-evictions",
        webhook("noevict.example.com", hooks.url("/deny"), tls, rules=pod_rule(["CREATE"], "pods/eviction")),
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "kept"}}
    response = await client.post(f"{PODS}/kept/eviction", json=eviction)
    assert response.status == 403
    assert (await response.json())["message"].startswith(
        'admission webhook "noevict.example.com" denied the request'
    )
    assert (await client.get(f"{PODS}/kept")).status == 200
