"""Conversion strategy Webhook against a real `pinnace server`: a CRD storing v1 and serving v2
too, whose ConversionReview endpoint is a real HTTPS server started here (its own CA, sent as
caBundle). v1 calls the field `spec.size`, v2 calls it `spec.replicas`, so every read, list,
watch and write in the version that is not stored shows whether the webhook was called."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import ServerProcess
from tests.integration.kubectl_helpers import Kubectl, eventually
from tests.integration.test_kopf_expectations import Api
from tests.unit.apiserver.test_webhooks_server import TLS, WebhookServer, make_tls, serve

pytestmark = pytest.mark.kubectl

Obj = dict[str, Any]


def _rename(spec: Obj, old: str, new: str) -> Obj:
    out = dict(spec)
    if old in out:
        out[new] = out.pop(old)
    return out


def converter(path: str, body: Obj) -> Obj:
    request = body["request"]
    desired = request["desiredAPIVersion"]
    if path == "/broken":
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "response": {
                "uid": request["uid"],
                "result": {"status": "Failure", "message": "the converter is out of order"},
            },
        }
    converted = []
    for obj in request["objects"]:
        spec = obj.get("spec") or {}
        if desired.endswith("/v2"):
            spec = _rename(spec, "size", "replicas")
        else:
            spec = _rename(spec, "replicas", "size")
        meta = dict(obj["metadata"])
        meta["labels"] = {**(meta.get("labels") or {}), "converted-to": desired.rsplit("/", 1)[1]}
        converted.append({**obj, "apiVersion": desired, "spec": spec, "metadata": meta})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": {"uid": request["uid"], "convertedObjects": converted, "result": {"status": "Success"}},
    }


@pytest.fixture(scope="module")
def tls() -> TLS:
    return make_tls()


@pytest.fixture(scope="module")
def hook(tls: TLS) -> Iterator[WebhookServer]:
    with serve(tls, converter) as running:
        yield running


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl dispatcher on PATH")
    return Kubectl(binary, kube_env)


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server)


@pytest.fixture
def group(kubectl: Kubectl) -> Iterator[str]:
    name = f"c{uuid.uuid4().hex[:8]}.example.com"
    yield name
    kubectl.run("delete", "crd", f"foos.{name}", "--ignore-not-found", "--wait=false", check=False)


def version_schema(field: str) -> Obj:
    return {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {field: {"type": "integer"}}},
            },
        }
    }


def foo_crd(group: str, hook: WebhookServer, tls: TLS, path: str = "/convert") -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"foos.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "foos", "singular": "foo", "kind": "Foo"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": version_schema("size")},
                {"name": "v2", "served": True, "storage": False, "schema": version_schema("replicas")},
            ],
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": hook.url(path), "caBundle": tls.ca_bundle},
                    "conversionReviewVersions": ["v1"],
                },
            },
        },
    }


def install(kubectl: Kubectl, crd: Obj) -> None:
    kubectl.run("apply", "-f", "-", stdin=json.dumps(crd))
    group = crd["spec"]["group"]

    def served() -> bool:
        return kubectl.run("get", f"foos.v2.{group}", "-n", "default", check=False).returncode == 0

    eventually(served, timeout=10, what="the CRD to be served")


def foo(group: str, name: str, version: str, **spec: Any) -> Obj:
    return {"apiVersion": f"{group}/{version}", "kind": "Foo", "metadata": {"name": name}, "spec": spec}


def path(group: str, version: str, name: str = "") -> str:
    base = f"/apis/{group}/{version}/namespaces/default/foos"
    return f"{base}/{name}" if name else base


def test_created_in_the_storage_version_read_listed_and_watched_in_the_other(
    kubectl: Kubectl, api: Api, hook: WebhookServer, tls: TLS, group: str
) -> None:
    install(kubectl, foo_crd(group, hook, tls))
    kubectl.run("apply", "-f", "-", "-n", "default", stdin=json.dumps(foo(group, "one", "v1", size=3)))
    stored = kubectl.json("get", f"foos.v1.{group}", "one", "-n", "default")
    assert stored["spec"] == {"size": 3}
    assert "labels" not in stored["metadata"]  # the storage version is served without a call

    as_v2 = kubectl.json("get", f"foos.v2.{group}", "one", "-n", "default")
    assert as_v2["apiVersion"] == f"{group}/v2"
    assert as_v2["spec"] == {"replicas": 3}
    assert as_v2["metadata"]["labels"] == {"converted-to": "v2"}
    assert as_v2["metadata"]["uid"] == stored["metadata"]["uid"]
    assert as_v2["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    sent = [
        b["request"] for b in hook.bodies("/convert") if b["request"]["desiredAPIVersion"] == f"{group}/v2"
    ]
    assert sent and sent[-1]["objects"][0]["apiVersion"] == f"{group}/v1"
    assert sent[-1]["objects"][0]["spec"] == {"size": 3}

    listed = api.request("GET", path(group, "v2"))
    assert listed.status == 200, listed.body
    assert listed.body["apiVersion"] == f"{group}/v2"
    assert [(i["apiVersion"], i["spec"]) for i in listed.body["items"]] == [(f"{group}/v2", {"replicas": 3})]

    watch = api.watch(path(group, "v2"), listed.body["metadata"]["resourceVersion"])
    try:
        assert watch.status == 200
        patched = api.merge_patch(path(group, "v1", "one"), {"spec": {"size": 4}})
        assert patched.status == 200, patched.body
        event = watch.wait_for(lambda e: e["type"] == "MODIFIED", timeout=10, what="the MODIFIED event")
        assert event["object"]["apiVersion"] == f"{group}/v2"
        assert event["object"]["spec"] == {"replicas": 4}
        assert event["object"]["metadata"]["resourceVersion"] == patched.body["metadata"]["resourceVersion"]
    finally:
        watch.close()


def test_created_in_the_served_version_is_stored_converted(
    kubectl: Kubectl, api: Api, hook: WebhookServer, tls: TLS, group: str
) -> None:
    install(kubectl, foo_crd(group, hook, tls))
    listed = api.request("GET", path(group, "v1"))
    watch = api.watch(path(group, "v1"), listed.body["metadata"]["resourceVersion"])
    try:
        created = api.request("POST", path(group, "v2"), foo(group, "two", "v2", replicas=5))
        assert created.status == 201, created.body
        assert created.body["apiVersion"] == f"{group}/v2"
        assert created.body["spec"] == {"replicas": 5}
        event = watch.wait_for(lambda e: e["type"] == "ADDED", timeout=10, what="the ADDED event")
        assert event["object"]["apiVersion"] == f"{group}/v1"
        assert event["object"]["spec"] == {"size": 5}
    finally:
        watch.close()
    as_v1 = kubectl.json("get", f"foos.v1.{group}", "two", "-n", "default")
    assert as_v1["spec"] == {"size": 5}
    # Written through the webhook's v2 -> v1 answer: its label change is kept, as upstream.
    assert as_v1["metadata"]["labels"] == {"converted-to": "v1"}

    updated = api.merge_patch(path(group, "v2", "two"), {"spec": {"replicas": 6}})
    assert updated.status == 200, updated.body
    assert updated.body["spec"] == {"replicas": 6}
    assert kubectl.json("get", f"foos.v1.{group}", "two", "-n", "default")["spec"] == {"size": 6}

    applied = foo(group, "two", "v2", replicas=7)
    kubectl.run(
        "apply", "--server-side", "--force-conflicts", "-n", "default", "-f", "-", stdin=json.dumps(applied)
    )
    assert kubectl.json("get", f"foos.v1.{group}", "two", "-n", "default")["spec"] == {"size": 7}

    kubectl.run("delete", f"foos.v2.{group}", "two", "-n", "default")
    assert kubectl.run("get", f"foos.v1.{group}", "two", "-n", "default", check=False).returncode != 0


def test_a_failing_webhook_is_a_500_with_upstream_wording(
    kubectl: Kubectl, api: Api, hook: WebhookServer, tls: TLS, group: str
) -> None:
    install(kubectl, foo_crd(group, hook, tls, path="/broken"))
    empty = api.request("GET", path(group, "v2"))
    watch = api.watch(path(group, "v2"), empty.body["metadata"]["resourceVersion"])
    kubectl.run("apply", "-f", "-", "-n", "default", stdin=json.dumps(foo(group, "three", "v1", size=1)))
    expected = f"conversion webhook for {group}/v1, Kind=Foo failed: the converter is out of order"
    try:
        # The event cannot be converted: an ERROR event (an internal error, as upstream's watcher
        # sends it), then the end of the stream.
        event = watch.wait_for(lambda e: True, timeout=10, what="the ERROR event")
        assert event["type"] == "ERROR", event
        assert event["object"]["code"] == 500 and event["object"]["reason"] == "InternalError"
        assert event["object"]["message"] == f"Internal error occurred: {expected}"
        assert watch.next(timeout=10) is None
    finally:
        watch.close()

    got = api.request("GET", path(group, "v2", "three"))
    assert got.status == 500, got.body
    assert got.body["kind"] == "Status"
    assert got.body["message"] == expected
    assert "reason" not in got.body or got.body["reason"] == ""

    listed = api.request("GET", path(group, "v2"))
    assert listed.status == 500
    assert listed.body["message"] == expected

    refused = kubectl.run("get", f"foos.v2.{group}", "three", "-n", "default", check=False)
    assert refused.returncode != 0
    assert f"Error from server: {expected}" in refused.stderr, refused.stderr

    created = api.request("POST", path(group, "v2"), foo(group, "four", "v2", replicas=1))
    assert created.status == 500, created.body
    assert (
        created.body["message"]
        == f"conversion webhook for {group}/v2, Kind=Foo failed: the converter is out of order"
    )
    assert kubectl.run("get", f"foos.v1.{group}", "four", "-n", "default", check=False).returncode != 0
    # The stored version never needs the webhook.
    assert kubectl.json("get", f"foos.v1.{group}", "three", "-n", "default")["spec"] == {"size": 1}


def test_an_unreachable_webhook_names_the_call_that_failed(
    kubectl: Kubectl, api: Api, tls: TLS, group: str
) -> None:
    crd = foo_crd(group, WebhookServer(port=1), tls)
    install_result = kubectl.run("apply", "-f", "-", stdin=json.dumps(crd))
    assert install_result.returncode == 0
    eventually(
        lambda: kubectl.run("get", f"foos.v1.{group}", "-n", "default", check=False).returncode == 0,
        timeout=10,
        what="the CRD to be served",
    )
    kubectl.run("apply", "-f", "-", "-n", "default", stdin=json.dumps(foo(group, "five", "v1", size=1)))
    got = api.request("GET", path(group, "v2", "five"))
    assert got.status == 500, got.body
    assert got.body["message"].startswith(f"conversion webhook for {group}/v1, Kind=Foo failed: Post ")
    assert "https://127.0.0.1:1/convert" in got.body["message"]
