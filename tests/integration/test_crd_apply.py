"""Server-side apply on custom resources against a real `pinnace server` with real kubectl: the
CRD schema's `x-kubernetes-list-type` / `x-kubernetes-map-type` decide who owns what."""

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

pytestmark = pytest.mark.kubectl

Obj = dict[str, Any]


@pytest.fixture
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl dispatcher on PATH")
    return Kubectl(binary, kube_env)


@pytest.fixture
def group(kubectl: Kubectl) -> Iterator[str]:
    name = f"a{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"routers.{name}"},
        "spec": {
            "group": name,
            "scope": "Namespaced",
            "names": {"plural": "routers", "singular": "router", "kind": "Router"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "routes": {
                                            "type": "array",
                                            "x-kubernetes-list-type": "map",
                                            "x-kubernetes-list-map-keys": ["name"],
                                            "items": {
                                                "type": "object",
                                                "required": ["name"],
                                                "properties": {
                                                    "name": {"type": "string"},
                                                    "port": {"type": "integer"},
                                                },
                                            },
                                        },
                                        "tags": {
                                            "type": "array",
                                            "x-kubernetes-list-type": "set",
                                            "items": {"type": "string"},
                                        },
                                        "hosts": {"type": "array", "items": {"type": "string"}},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(crd))
    eventually(
        lambda: kubectl.run("get", f"routers.{name}", "-n", "default", check=False).returncode == 0,
        timeout=10,
        what="the CRD to be served",
    )
    yield name
    kubectl.run("delete", "crd", f"routers.{name}", "--ignore-not-found", "--wait=false", check=False)


def router(group: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": f"{group}/v1",
            "kind": "Router",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": spec,
        }
    )


def ssa(kubectl: Kubectl, manager: str, body: str, *extra: str, check: bool = True) -> Any:
    return kubectl.run(
        "apply", "--server-side", f"--field-manager={manager}", "-f", "-", *extra, stdin=body, check=check
    )


def test_two_managers_co_own_a_list_map_and_a_set(kubectl: Kubectl, group: str) -> None:
    resource = f"routers.{group}"
    ssa(kubectl, "alice", router(group, routes=[{"name": "a", "port": 80}], tags=["x"], hosts=["h1"]))
    ssa(kubectl, "bob", router(group, routes=[{"name": "b", "port": 81}], tags=["y"]))
    got = kubectl.json("get", resource, "r", "-n", "default", "--show-managed-fields")
    assert got["spec"]["routes"] == [{"name": "a", "port": 80}, {"name": "b", "port": 81}]
    assert got["spec"]["tags"] == ["x", "y"]
    assert got["spec"]["hosts"] == ["h1"]
    entries = {e["manager"]: e["fieldsV1"] for e in got["metadata"]["managedFields"]}
    assert entries["bob"]["f:spec"]["f:routes"] == {'k:{"name":"b"}': {".": {}, "f:name": {}, "f:port": {}}}
    assert entries["bob"]["f:spec"]["f:tags"] == {'v:"y"': {}}
    assert 'k:{"name":"a"}' in entries["alice"]["f:spec"]["f:routes"]

    # alice drops her route and tag: only hers go.
    ssa(kubectl, "alice", router(group, hosts=["h1"]))
    got = kubectl.json("get", resource, "r", "-n", "default", "--show-managed-fields")
    assert got["spec"]["routes"] == [{"name": "b", "port": 81}]
    assert got["spec"]["tags"] == ["y"]


def test_conflicts_are_409_with_a_cause_per_field(
    kubectl: Kubectl, group: str, server: ServerProcess
) -> None:
    ssa(kubectl, "alice", router(group, routes=[{"name": "a", "port": 80}], hosts=["h1"]))
    refused = ssa(
        kubectl, "bob", router(group, routes=[{"name": "a", "port": 90}], hosts=["h2"]), check=False
    )
    assert refused.returncode != 0
    assert 'conflicts with "alice"' in refused.stderr, refused.stderr
    assert '.spec.routes[name="a"].port' in refused.stderr
    assert "- .spec.hosts" in refused.stderr

    api = Api(server)
    body = json.loads(router(group, routes=[{"name": "a", "port": 90}]))
    answer = api.request(
        "PATCH",
        f"/apis/{group}/v1/namespaces/default/routers/r?fieldManager=bob",
        body,
        "application/apply-patch+yaml",
    )
    assert answer.status == 409, answer.body
    assert answer.body["reason"] == "Conflict"
    assert answer.body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "alice"',
            "field": '.spec.routes[name="a"].port',
        }
    ]
    assert (
        answer.body["message"]
        == 'Apply failed with 1 conflict: conflict with "alice": .spec.routes[name="a"].port'
    )

    # A different key is no conflict; forcing takes the field over.
    ssa(kubectl, "bob", router(group, routes=[{"name": "c", "port": 70}]))
    ssa(
        kubectl,
        "bob",
        router(group, routes=[{"name": "a", "port": 90}, {"name": "c", "port": 70}]),
        "--force-conflicts",
    )
    got = kubectl.json("get", f"routers.{group}", "r", "-n", "default", "--show-managed-fields")
    assert got["spec"]["routes"] == [{"name": "a", "port": 90}, {"name": "c", "port": 70}]
    alice = next(e for e in got["metadata"]["managedFields"] if e["manager"] == "alice")
    assert "f:port" not in alice["fieldsV1"]["f:spec"]["f:routes"]['k:{"name":"a"}']


def test_an_apply_with_duplicate_keys_is_refused(kubectl: Kubectl, group: str) -> None:
    refused = ssa(kubectl, "alice", router(group, routes=[{"name": "a"}, {"name": "a"}]), check=False)
    assert refused.returncode != 0
    assert 'duplicate entries for key [name="a"]' in refused.stderr, refused.stderr
