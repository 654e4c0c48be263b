"""The in-process garbage collector against the real server: the three propagation policies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.integration.conftest import ServerProcess


@pytest.fixture
def core(server: ServerProcess) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    core = client.CoreV1Api(api)
    yield core
    api.close()


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    name = f"gc-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


def owner_and_dependent(core: client.CoreV1Api, ns: str, *, block: bool = False) -> tuple[str, str]:
    owner = core.create_namespaced_config_map(ns, {"metadata": {"generateName": "owner-"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    }
    dep = core.create_namespaced_config_map(
        ns, {"metadata": {"generateName": "dep-", "ownerReferences": [ref]}}
    )
    return owner.metadata.name, dep.metadata.name


def test_background_deletes_dependents_after_owner(core: client.CoreV1Api, namespace: str) -> None:
    owner, dep = owner_and_dependent(core, namespace)
    core.delete_namespaced_config_map(owner, namespace, propagation_policy="Background")
    eventually(lambda: gone(lambda: core.read_namespaced_config_map(dep, namespace)))


def test_orphan_keeps_dependents_and_removes_their_reference(core: client.CoreV1Api, namespace: str) -> None:
    owner, dep = owner_and_dependent(core, namespace)
    deleted = core.delete_namespaced_config_map(owner, namespace, propagation_policy="Orphan")
    # The client types DELETE's answer as V1Status and hands back the object (as upstream sends it) as a dict.
    assert "orphan" in deleted["metadata"]["finalizers"]  # recorded for the collector
    eventually(lambda: gone(lambda: core.read_namespaced_config_map(owner, namespace)))
    remaining = core.read_namespaced_config_map(dep, namespace)
    assert not remaining.metadata.owner_references


def test_foreground_deletes_dependents_before_owner(core: client.CoreV1Api, namespace: str) -> None:
    owner, dep = owner_and_dependent(core, namespace, block=True)
    deleted = core.delete_namespaced_config_map(owner, namespace, propagation_policy="Foreground")
    assert "foregroundDeletion" in deleted["metadata"]["finalizers"]
    assert deleted["metadata"]["deletionTimestamp"]
    eventually(lambda: gone(lambda: core.read_namespaced_config_map(owner, namespace)))
    assert gone(lambda: core.read_namespaced_config_map(dep, namespace))


def test_dependent_with_a_live_owner_is_kept(core: client.CoreV1Api, namespace: str) -> None:
    owner, dep = owner_and_dependent(core, namespace)
    time.sleep(1.0)  # give the collector time to (wrongly) act
    assert core.read_namespaced_config_map(dep, namespace).metadata.owner_references[0].name == owner


def test_dependents_of_a_brand_new_custom_kind_are_collected(
    server: ServerProcess, core: client.CoreV1Api
) -> None:
    """The owner's kind appeared seconds ago (a fresh CRD) and the owner is deleted at once: the
    collector must resolve the kind then and there, not at its next periodic rediscovery."""
    api = config.new_client_from_config(config_file=str(server.kubeconfig))
    group = f"gc{uuid.uuid4().hex[:6]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"owners.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "owners", "singular": "owner", "kind": "Owner", "listKind": "OwnerList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    try:
        client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
        custom = client.CustomObjectsApi(api)

        def served() -> bool:
            try:
                custom.list_namespaced_custom_object(group, "v1", "default", "owners")
            except ApiException:
                return False
            return True

        eventually(served, timeout=10)
        ns = f"gc-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": ns}})
        owner = custom.create_namespaced_custom_object(
            group,
            "v1",
            ns,
            "owners",
            {"apiVersion": f"{group}/v1", "kind": "Owner", "metadata": {"name": "o"}},
        )
        ref = {"apiVersion": f"{group}/v1", "kind": "Owner", "name": "o", "uid": owner["metadata"]["uid"]}
        core.create_namespaced_config_map(ns, {"metadata": {"name": "child", "ownerReferences": [ref]}})
        custom.delete_namespaced_custom_object(group, "v1", ns, "owners", "o")
        eventually(lambda: gone(lambda: core.read_namespaced_config_map("child", ns)), timeout=20)
    finally:
        api.close()
