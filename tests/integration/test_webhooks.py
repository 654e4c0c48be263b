"""Admission webhooks against a real `pinnace server`, driven by real kubectl, with a real HTTPS
webhook server (its own CA, certificate made in the test). Every configuration selects only
this test's namespace, so the session's other tests never meet these webhooks."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import kubectl_binaries
from tests.integration.kubectl_helpers import Kubectl
from tests.unit.apiserver.test_webhooks_server import TLS, WebhookServer, allow, make_tls, serve

Obj = dict[str, Any]


def _patch(body: Obj, operations: list[Obj]) -> Obj:
    return allow(body, patchType="JSONPatch", patch=base64.b64encode(orjson.dumps(operations)).decode())


def _label_patch(body: Obj, key: str) -> Obj:
    labels = (body["request"]["object"].get("metadata") or {}).get("labels")
    if labels and key in labels:
        return allow(body)
    if not labels:
        return _patch(body, [{"op": "add", "path": "/metadata/labels", "value": {key: "set"}}])
    return _patch(body, [{"op": "add", "path": f"/metadata/labels/{key}", "value": "set"}])


def handler(path: str, body: Obj) -> Any:
    request = body["request"]
    if path == "/deny":
        name = request["object"]["metadata"]["name"]
        if name.startswith("forbidden"):
            return {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": request["uid"],
                    "allowed": False,
                    "status": {"code": 403, "reason": "Forbidden", "message": f"{name} is on the deny list"},
                },
            }
        return allow(body)
    if path == "/first":
        return _label_patch(body, "first")
    if path == "/second":
        return _label_patch(body, "second")
    if path == "/warn":
        return allow(body, warnings=["configmaps here are watched by the webhook"])
    if path == "/slow":
        return _slow(body)
    if path == "/cap":
        replicas = ((request["object"] or {}).get("spec") or {}).get("replicas", 0)
        if request["kind"]["kind"] == "Scale" and replicas > 5:
            patched = _patch(body, [{"op": "replace", "path": "/spec/replicas", "value": 5}])
            patched["response"]["warnings"] = ["replicas capped at 5"]
            return patched
    return allow(body)


async def _slow(body: Obj) -> Obj:
    import asyncio

    await asyncio.sleep(2.5)
    return allow(body)


@pytest.fixture(scope="module")
def tls() -> TLS:
    return make_tls(dns_names=("hooks.webhook-system.svc",))


@pytest.fixture(scope="module")
def hooks(tls: TLS) -> Iterator[WebhookServer]:
    with serve(tls, handler) as server:
        yield server


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl binary installed")
    newest = sorted(binaries, key=lambda b: Path(b).name)[-1]
    return Kubectl(newest, kube_env)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"wh-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    kubectl.run("label", "namespace", name, f"webhook-test={name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def configurations(kubectl: Kubectl) -> Iterator[list[str]]:
    """Names of configurations to delete after the test ("kind/name")."""
    created: list[str] = []
    yield created
    for ref in created:
        kubectl.run("delete", ref, "--ignore-not-found", check=False)


def webhook(name: str, client_config: Obj, namespace: str, **extra: Any) -> Obj:
    hook: Obj = {
        "name": name,
        "clientConfig": client_config,
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"webhook-test": namespace}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    hook.update(extra)
    return hook


def url_config(server: WebhookServer, tls: TLS, path: str) -> Obj:
    return {"url": server.url(path), "caBundle": tls.ca_bundle}


def configure(kubectl: Kubectl, created: list[str], kind: str, name: str, *hooks: Obj) -> None:
    manifest = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
    created.append(f"{kind.lower()}/{name}")


def configmap(name: str, namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"},
        }
    )


def test_a_validating_webhook_denies_with_its_message(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"deny-{namespace}",
        webhook("deny.example.com", url_config(hooks, tls, "/deny"), namespace),
    )
    refused = kubectl.run("apply", "-f", "-", stdin=configmap("forbidden-one", namespace), check=False)
    assert refused.returncode != 0
    assert (
        'admission webhook "deny.example.com" denied the request: forbidden-one is on the deny list'
        in refused.stderr
    ), refused.stderr
    assert "Forbidden" in refused.stderr
    assert kubectl.run("get", "configmap", "forbidden-one", "-n", namespace, check=False).returncode != 0
    kubectl.run("apply", "-f", "-", stdin=configmap("allowed", namespace))


def test_a_mutating_patch_is_applied_and_reinvoked(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    configure(
        kubectl,
        configurations,
        "MutatingWebhookConfiguration",
        f"a-{namespace}",
        webhook(
            "first.example.com", url_config(hooks, tls, "/first"), namespace, reinvocationPolicy="IfNeeded"
        ),
    )
    configure(
        kubectl,
        configurations,
        "MutatingWebhookConfiguration",
        f"b-{namespace}",
        webhook("second.example.com", url_config(hooks, tls, "/second"), namespace),
    )
    before = len(hooks.bodies("/first"))
    kubectl.run("apply", "-f", "-", stdin=configmap("mutated", namespace))
    got = kubectl.json("get", "configmap", "mutated", "-n", namespace)
    assert got["metadata"]["labels"] == {"first": "set", "second": "set"}
    calls = [b for b in hooks.bodies("/first")[before:] if b["request"]["namespace"] == namespace]
    # first.example.com ran, second.example.com changed the object afterwards: first ran again.
    assert len(calls) == 2
    assert calls[1]["request"]["object"]["metadata"]["labels"] == {"first": "set", "second": "set"}


def test_failure_policy_ignore_survives_a_dead_webhook(
    kubectl: Kubectl, namespace: str, tls: TLS, configurations: list[str]
) -> None:
    dead = {"url": "https://127.0.0.1:1/dead", "caBundle": tls.ca_bundle}
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"dead-{namespace}",
        webhook("dead.example.com", dead, namespace, failurePolicy="Ignore"),
    )
    kubectl.run("apply", "-f", "-", stdin=configmap("survivor", namespace))
    assert kubectl.json("get", "configmap", "survivor", "-n", namespace)["data"] == {"k": "v"}


def test_a_timed_out_webhook_with_fail_is_an_error(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"slow-{namespace}",
        webhook("slow.example.com", url_config(hooks, tls, "/slow"), namespace, timeoutSeconds=1),
    )
    started = time.monotonic()
    refused = kubectl.run("apply", "-f", "-", stdin=configmap("late", namespace), check=False)
    assert refused.returncode != 0
    expected = (
        'Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: '
        f'Post "{hooks.url("/slow")}?timeout=1s": context deadline exceeded'
    )
    assert expected in refused.stderr, refused.stderr
    assert time.monotonic() - started < 10


def test_warnings_reach_kubectl(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"warn-{namespace}",
        webhook("warn.example.com", url_config(hooks, tls, "/warn"), namespace),
    )
    result = kubectl.run("apply", "-f", "-", stdin=configmap("warned", namespace))
    assert "Warning: configmaps here are watched by the webhook" in result.stderr, result.stderr


def test_server_dry_run_calls_webhooks_without_side_effects(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"dry-{namespace}",
        webhook("dry.example.com", url_config(hooks, tls, "/dry"), namespace),
        webhook(
            "unknown.example.com",
            url_config(hooks, tls, "/unknown"),
            namespace,
            sideEffects="NoneOnDryRun",
        ),
    )
    kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=configmap("dry", namespace))
    sent = [b["request"] for b in hooks.bodies("/dry") if b["request"]["namespace"] == namespace]
    assert sent and sent[-1]["dryRun"] is True and sent[-1]["name"] == "dry"
    assert kubectl.run("get", "configmap", "dry", "-n", namespace, check=False).returncode != 0


def test_a_service_reference_reaches_the_webhook_through_its_endpoints(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    # A selector-less Service with hand-written Endpoints, as for a webhook outside the cluster;
    # the certificate is made for hooks.webhook-system.svc, the name upstream verifies.
    system = "webhook-system"
    kubectl.run("create", "namespace", system, check=False)
    configurations.append(f"namespace/{system}")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hooks", "namespace": system},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hooks.port}]},
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "hooks", "namespace": system},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": hooks.port}]}],
    }
    kubectl.run(
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, endpoints]}),
    )
    config = {"service": {"namespace": system, "name": "hooks", "path": "/deny"}, "caBundle": tls.ca_bundle}
    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"svc-{namespace}",
        webhook("svc.example.com", config, namespace),
    )
    refused = kubectl.run("apply", "-f", "-", stdin=configmap("forbidden-svc", namespace), check=False)
    assert 'admission webhook "svc.example.com" denied the request' in refused.stderr, refused.stderr


def test_warnings_on_delete_reach_kubectl(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    kubectl.run("apply", "-f", "-", stdin=configmap("doomed", namespace))
    hook = webhook("warn-delete.example.com", url_config(hooks, tls, "/warn"), namespace)
    hook["rules"][0]["operations"] = ["DELETE"]
    configure(kubectl, configurations, "ValidatingWebhookConfiguration", f"warn-del-{namespace}", hook)
    result = kubectl.run("delete", "configmap", "doomed", "-n", namespace)
    assert "Warning: configmaps here are watched by the webhook" in result.stderr, result.stderr
    assert 'configmap "doomed" deleted' in result.stdout


def _widget_crd(group: str) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                        },
                    },
                }
            ],
        },
    }


def test_subresource_requests_as_upstream_sends_them(
    kubectl: Kubectl, namespace: str, hooks: WebhookServer, tls: TLS, configurations: list[str]
) -> None:
    group = f"{namespace}.example.com"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(_widget_crd(group)))
    configurations.append(f"crd/widgets.{group}")
    deadline = time.monotonic() + 10
    while kubectl.run("get", f"widgets.{group}", "-n", namespace, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the CRD was not served"
        time.sleep(0.1)
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": namespace},
        "spec": {"replicas": 1},
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(widget))

    def rule(resource: str) -> list[Obj]:
        return [
            {"operations": ["UPDATE"], "apiGroups": [group], "apiVersions": ["v1"], "resources": [resource]}
        ]

    configure(
        kubectl,
        configurations,
        "ValidatingWebhookConfiguration",
        f"subs-{namespace}",
        webhook(
            "scale.example.com",
            url_config(hooks, tls, f"/{namespace}/scale"),
            namespace,
            rules=rule("widgets/scale"),
        ),
        webhook(
            "main.example.com", url_config(hooks, tls, f"/{namespace}/main"), namespace, rules=rule("widgets")
        ),
        webhook(
            "status.example.com",
            url_config(hooks, tls, f"/{namespace}/status"),
            namespace,
            rules=rule("*/status"),
        ),
    )
    configure(
        kubectl,
        configurations,
        "MutatingWebhookConfiguration",
        f"cap-{namespace}",
        webhook("cap.example.com", url_config(hooks, tls, "/cap"), namespace, rules=rule("widgets/scale")),
    )
    scaled = kubectl.run("scale", f"widgets.{group}", "w", "-n", namespace, "--replicas=9")
    assert "Warning: replicas capped at 5" in scaled.stderr, scaled.stderr
    assert kubectl.json("get", f"widgets.{group}", "w", "-n", namespace)["spec"]["replicas"] == 5

    sent = hooks.bodies(f"/{namespace}/scale")
    assert len(sent) == 1
    request = sent[0]["request"]
    assert request["subResource"] == "scale"
    assert request["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert request["resource"] == {"group": group, "version": "v1", "resource": "widgets"}
    # Validating webhooks see what the mutating one made of the Scale.
    assert request["object"]["spec"] == {"replicas": 5}
    assert request["oldObject"]["spec"] == {"replicas": 1}
    assert hooks.bodies(f"/{namespace}/main") == []
    assert hooks.bodies(f"/{namespace}/status") == []

    kubectl.run(
        "patch", f"widgets.{group}", "w", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", '{"status":{"replicas":5}}',
    )  # fmt: skip
    status_calls = hooks.bodies(f"/{namespace}/status")
    assert len(status_calls) == 1
    assert status_calls[0]["request"]["subResource"] == "status"
    assert status_calls[0]["request"]["kind"] == {"group": group, "version": "v1", "kind": "Widget"}
    assert hooks.bodies(f"/{namespace}/main") == []

    kubectl.run("label", f"widgets.{group}", "w", "-n", namespace, "touched=yes")
    assert len(hooks.bodies(f"/{namespace}/main")) == 1
    assert len(hooks.bodies(f"/{namespace}/scale")) == 1
