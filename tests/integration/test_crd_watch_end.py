"""Watches on a custom resource end when its CRD is deleted, as upstream's do when the CRD's
storage is torn down, after the objects' DELETED events; against a real `pinnace server`."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes import watch as k8s_watch
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

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
    name = f"w{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"bolts.{name}"},
        "spec": {
            "group": name,
            "scope": "Namespaced",
            "names": {"plural": "bolts", "singular": "bolt", "kind": "Bolt"},
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
    kubectl.run("apply", "-f", "-", stdin=json.dumps(crd))
    eventually(
        lambda: kubectl.run("get", f"bolts.{name}", "-n", "default", check=False).returncode == 0,
        timeout=10,
        what="the CRD to be served",
    )
    yield name
    kubectl.run("delete", "crd", f"bolts.{name}", "--ignore-not-found", "--wait=false", check=False)


def bolt(group: str, name: str) -> Obj:
    return {"apiVersion": f"{group}/v1", "kind": "Bolt", "metadata": {"name": name}, "spec": {"n": 1}}


def test_a_watch_gets_the_deleted_events_then_ends(
    kubectl: Kubectl, group: str, server: ServerProcess
) -> None:
    api = Api(server)
    base = f"/apis/{group}/v1/namespaces/default/bolts"
    for name in ("b1", "b2"):
        created = api.request("POST", base, bolt(group, name))
        assert created.status == 201, created.body
    listed = api.request("GET", base)
    namespaced = api.watch(base, listed.body["metadata"]["resourceVersion"])
    everywhere = api.watch(f"/apis/{group}/v1/bolts", listed.body["metadata"]["resourceVersion"])
    try:
        started = time.monotonic()
        kubectl.run("delete", "crd", f"bolts.{group}", "--wait=false")
        for stream in (namespaced, everywhere):
            seen = []
            while (event := stream.next(timeout=15)) is not None:
                seen.append((event["type"], event["object"]["metadata"]["name"]))
            assert sorted(e for e in seen if e[0] == "DELETED") == [("DELETED", "b1"), ("DELETED", "b2")], (
                seen
            )
            assert all(t in ("DELETED", "BOOKMARK", "MODIFIED") for t, _ in seen), seen
        # Ended by the server (end of stream), well before any watch timeout.
        assert time.monotonic() - started < 15
    finally:
        namespaced.close()
        everywhere.close()
    gone = api.request("GET", base)
    assert gone.status == 404


def test_the_python_client_sees_the_deletions_and_its_watch_ends(
    kubectl: Kubectl, group: str, server: ServerProcess
) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    try:
        objects = CustomObjectsApi(client)
        objects.create_namespaced_custom_object(group, "v1", "default", "bolts", bolt(group, "b3"))
        events: list[tuple[str, str]] = []
        failure: list[BaseException] = []
        ready = threading.Event()

        def follow() -> None:
            try:
                stream = k8s_watch.Watch().stream(
                    objects.list_namespaced_custom_object, group, "v1", "default", "bolts", timeout_seconds=60
                )
                for event in stream:
                    events.append((event["type"], event["object"]["metadata"]["name"]))
                    ready.set()
            except ApiException as exc:
                failure.append(exc)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert ready.wait(15)  # the initial ADDED of b3
        kubectl.run("delete", "crd", f"bolts.{group}", "--wait=false")
        thread.join(timeout=30)
        assert not thread.is_alive(), "the watch did not end"
        assert ("DELETED", "b3") in events, events
        assert not failure, failure
        # The client's watch ended at the server's end of stream, long before its timeoutSeconds;
        # its next list finds the resource gone.
        with pytest.raises(ApiException) as listed:
            objects.list_namespaced_custom_object(group, "v1", "default", "bolts")
        assert listed.value.status == 404
    finally:
        client.close()
