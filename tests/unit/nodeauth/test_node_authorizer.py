"""The Node authorizer: the graph of what each node's pods reference, and upstream's decisions
(allow, or no opinion with its reason) for what a node asks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from controlplane.apiserver import node_authorizer
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.node_authorizer import PODS, PVCS, PVS, NodeAuthorizer, NodeGraph
from controlplane.apiserver.store import decode
from controlplane.storage import Storage, open_storage
from controlplane.storage.interface import KeyValue

NODE_A = UserInfo("system:node:node-a", groups=("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:node-b", groups=("system:nodes", "system:authenticated"))


def pod(name: str, node: str, *, namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}], **spec},
    }


def graph_with(*pods: dict[str, Any]) -> NodeGraph:
    graph = NodeGraph()
    for p in pods:
        graph.put(PODS, f"{PODS}{p['metadata']['namespace']}/{p['metadata']['name']}", p)
    return graph


def ask(
    user: UserInfo, verb: str, resource: str, name: str = "", namespace: str = "ns", **kw: Any
) -> Attributes:
    return Attributes(
        user=user, verb=verb, resource=resource, name=name, namespace=namespace, resource_request=True, **kw
    )


WEB = pod(
    "web",
    "node-a",
    volumes=[
        {"name": "s", "secret": {"secretName": "tls"}},
        {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj"}}]}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
    ],
    imagePullSecrets=[{"name": "pull"}],
    serviceAccountName="web-sa",
    containers=[
        {
            "name": "c",
            "image": "i",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
            "envFrom": [{"configMapRef": {"name": "settings"}}],
        }
    ],
)


async def test_a_node_reads_what_its_pods_reference_and_nothing_else() -> None:
    auth = NodeAuthorizer(
        graph_with(WEB, pod("other", "node-b", volumes=[{"name": "s", "secret": {"secretName": "b-only"}}]))
    )
    for resource, name in (
        ("secrets", "tls"),
        ("secrets", "pull"),
        ("secrets", "env-secret"),
        ("configmaps", "proj"),
        ("configmaps", "settings"),
    ):
        for verb in ("get", "list", "watch"):
            assert (await auth.authorize(ask(NODE_A, verb, resource, name))).allowed, (verb, resource, name)
    refused = await auth.authorize(ask(NODE_A, "get", "secrets", "b-only"))
    assert refused == Decision(False, "no relationship found between node 'node-a' and this object")
    assert (await auth.authorize(ask(NODE_B, "get", "secrets", "b-only"))).allowed
    assert not (await auth.authorize(ask(NODE_B, "get", "secrets", "tls"))).allowed
    # same name, other namespace: no relationship
    assert not (await auth.authorize(ask(NODE_A, "get", "secrets", "tls", namespace="elsewhere"))).allowed


async def test_secrets_are_read_only_whole_and_named() -> None:
    auth = NodeAuthorizer(graph_with(WEB))
    assert await auth.authorize(ask(NODE_A, "update", "secrets", "tls")) == Decision(
        False, "can only read resources of this type"
    )
    assert await auth.authorize(ask(NODE_A, "list", "secrets")) == Decision(False, "No Object name found")
    assert await auth.authorize(ask(NODE_A, "get", "secrets", "tls", namespace="")) == Decision(
        False, "can only read namespaced object of this type"
    )
    assert await auth.authorize(ask(NODE_A, "get", "secrets", "tls", subresource="x")) == Decision(
        False, "cannot read subresource"
    )


async def test_volumes_and_service_account_tokens() -> None:
    graph = graph_with(WEB)
    graph.put(
        PVCS,
        f"{PVCS}ns/data",
        {"metadata": {"name": "data", "namespace": "ns"}, "spec": {"volumeName": "pv-1"}},
    )
    graph.put(
        PVS,
        f"{PVS}pv-1",
        {
            "metadata": {"name": "pv-1"},
            "spec": {
                "csi": {
                    "driver": "d",
                    "volumeHandle": "h",
                    "nodePublishSecretRef": {"name": "csi", "namespace": "store"},
                }
            },
        },
    )
    auth = NodeAuthorizer(graph)
    assert (await auth.authorize(ask(NODE_A, "get", "persistentvolumeclaims", "data"))).allowed
    assert (await auth.authorize(ask(NODE_A, "get", "persistentvolumes", "pv-1", namespace=""))).allowed
    assert (await auth.authorize(ask(NODE_A, "get", "secrets", "csi", namespace="store"))).allowed
    assert not (await auth.authorize(ask(NODE_B, "get", "persistentvolumes", "pv-1", namespace=""))).allowed
    assert await auth.authorize(ask(NODE_A, "list", "persistentvolumes", namespace="")) == Decision(
        False, "can only get individual resources of this type"
    )
    assert (
        await auth.authorize(ask(NODE_A, "update", "persistentvolumeclaims", "data", subresource="status"))
    ).allowed
    token = ask(NODE_A, "create", "serviceaccounts", "web-sa", subresource="token")
    assert (await auth.authorize(token)).allowed
    assert not (
        await auth.authorize(ask(NODE_A, "create", "serviceaccounts", "default", subresource="token"))
    ).allowed
    # the PVC unbound from its volume: the PV and its secret are out of reach again
    graph.put(PVCS, f"{PVCS}ns/data", None)
    assert not (await auth.authorize(ask(NODE_A, "get", "persistentvolumes", "pv-1", namespace=""))).allowed
    assert not (await auth.authorize(ask(NODE_A, "get", "secrets", "csi", namespace="store"))).allowed


async def test_a_pod_moving_or_going_takes_its_references_along() -> None:
    graph = graph_with(WEB)
    auth = NodeAuthorizer(graph)
    moved = pod("web", "node-b", volumes=[{"name": "s", "secret": {"secretName": "tls"}}])
    graph.put(PODS, f"{PODS}ns/web", moved)
    assert not (await auth.authorize(ask(NODE_A, "get", "secrets", "tls"))).allowed
    assert (await auth.authorize(ask(NODE_B, "get", "secrets", "tls"))).allowed
    graph.put(PODS, f"{PODS}ns/web", None)
    assert not (await auth.authorize(ask(NODE_B, "get", "secrets", "tls"))).allowed
    unbound = pod("pending", "", volumes=[{"name": "s", "secret": {"secretName": "x"}}])
    graph.put(PODS, f"{PODS}ns/pending", unbound)
    assert not (await auth.authorize(ask(NODE_A, "get", "secrets", "x"))).allowed


async def test_nodes_pods_leases_and_static_rules() -> None:
    auth = NodeAuthorizer(graph_with(WEB))
    assert (await auth.authorize(ask(NODE_A, "get", "nodes", "node-a", namespace=""))).allowed
    assert await auth.authorize(ask(NODE_A, "get", "nodes", "node-b", namespace="")) == Decision(
        False, "node 'node-a' cannot read 'node-b', only its own Node object"
    )
    assert await auth.authorize(ask(NODE_A, "list", "nodes", namespace="")) == Decision(
        False, "node 'node-a' cannot read all nodes, only its own Node object"
    )
    assert (
        await auth.authorize(ask(NODE_A, "patch", "nodes", "node-b", namespace="", subresource="status"))
    ).allowed
    assert (await auth.authorize(ask(NODE_A, "get", "pods", "web"))).allowed
    assert not (await auth.authorize(ask(NODE_B, "get", "pods", "web"))).allowed
    assert await auth.authorize(ask(NODE_A, "list", "pods", namespace="")) == Decision(
        False, "can only list/watch pods with spec.nodeName field selector"
    )
    assert (await auth.authorize(ask(NODE_A, "update", "pods", "web", subresource="status"))).allowed
    lease = ask(
        NODE_A, "update", "leases", "node-a", namespace="kube-node-lease", api_group="coordination.k8s.io"
    )
    assert (await auth.authorize(lease)).allowed
    other = ask(
        NODE_A, "update", "leases", "node-b", namespace="kube-node-lease", api_group="coordination.k8s.io"
    )
    assert await auth.authorize(other) == Decision(
        False, "can only access node lease with the same name as the requesting node"
    )
    assert (await auth.authorize(ask(NODE_A, "create", "events"))).allowed  # system:node's static rules
    assert await auth.authorize(ask(NODE_A, "delete", "namespaces", "ns", namespace="")) == Decision(
        False, ""
    )


async def test_only_nodes_are_judged() -> None:
    auth = NodeAuthorizer(graph_with(WEB))
    for user in (
        UserInfo("alice", groups=("system:nodes",)),
        UserInfo("system:node:node-a", groups=("system:authenticated",)),
    ):
        assert await auth.authorize(ask(user, "get", "secrets", "tls")) == Decision(False, "")
    nameless = UserInfo("system:node:", groups=("system:nodes",))
    assert await auth.authorize(ask(nameless, "get", "secrets", "tls")) == Decision(
        False, 'unknown node for user "system:node:"'
    )


@contextlib.asynccontextmanager
async def following(*pods: dict[str, Any]) -> AsyncIterator[tuple[Storage, NodeAuthorizer]]:
    """A memory storage holding `pods`, and an authorizer whose graph follows it."""
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    try:
        for p in pods:
            await storage.create(f"{PODS}ns/{p['metadata']['name']}", orjson.dumps(p))
        graph = NodeGraph(storage)
        await graph.sync()
        runner = asyncio.create_task(graph.run())
        try:
            yield storage, NodeAuthorizer(graph)
        finally:
            runner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await runner
    finally:
        await storage.close()


async def allowed_soon(auth: NodeAuthorizer, attrs: Attributes, *, expected: bool) -> bool:
    """The decision once the graph has had a moment to follow a write (up to a second)."""
    for _ in range(100):
        if (await auth.authorize(attrs)).allowed == expected:
            break
        await asyncio.sleep(0.01)
    return (await auth.authorize(attrs)).allowed


async def test_graph_follows_storage() -> None:
    async with following(WEB) as (storage, auth):
        assert (await auth.authorize(ask(NODE_A, "get", "secrets", "tls"))).allowed
        moved = pod("web", "node-b", volumes=[{"name": "s", "secret": {"secretName": "tls"}}])
        kv = await storage.get(f"{PODS}ns/web")
        assert kv is not None
        await storage.update(f"{PODS}ns/web", orjson.dumps(moved), expected_revision=kv.mod_revision)
        assert not await allowed_soon(auth, ask(NODE_A, "get", "secrets", "tls"), expected=False)
        # a pod written a moment ago counts at once (the authorizer catches up before refusing)
        await storage.create(
            f"{PODS}ns/new",
            orjson.dumps(pod("new", "node-a", volumes=[{"name": "s", "secret": {"secretName": "fresh"}}])),
        )
        assert (await auth.authorize(ask(NODE_A, "get", "secrets", "fresh"))).allowed


def test_only_writes_that_can_change_the_graph_are_decoded() -> None:
    """An unbound pod the graph does not hold changes nothing: its write is skipped undecoded.
    Anything else (a bound pod, a pod the graph holds, other prefixes) is decoded and put."""
    graph = graph_with(pod("web", "node-a", volumes=[{"name": "s", "secret": {"secretName": "tls"}}]))

    def kv(key: str, obj: dict[str, Any]) -> KeyValue:
        return KeyValue(key, orjson.dumps(obj), 2, 1)

    unbound = pod("new", "")
    del unbound["spec"]["nodeName"]
    assert graph.unaffected(PODS, kv(f"{PODS}ns/new", unbound))
    # a string that merely mentions nodeName has its quotes escaped in JSON: still skipped
    unbound["metadata"]["annotations"] = {"note": '"nodeName": "x"'}
    assert graph.unaffected(PODS, kv(f"{PODS}ns/new", unbound))
    assert not graph.unaffected(PODS, kv(f"{PODS}ns/new", pod("new", "node-b")))
    # the graph holds web: a write of it is decoded even without a nodeName (it moves or goes)
    held = pod("web", "")
    del held["spec"]["nodeName"]
    assert not graph.unaffected(PODS, kv(f"{PODS}ns/web", held))
    assert not graph.unaffected(PVCS, kv(f"{PVCS}ns/claim", {"spec": {}}))
    assert not graph.unaffected(PVS, kv(f"{PVS}pv", {"spec": {}}))


async def test_an_unbound_pod_then_bound_joins_the_graph_through_storage() -> None:
    async with following() as (storage, auth):
        unbound = pod("p", "", volumes=[{"name": "s", "secret": {"secretName": "late"}}])
        del unbound["spec"]["nodeName"]
        created = await storage.create(f"{PODS}ns/p", orjson.dumps(unbound))
        assert not (await auth.authorize(ask(NODE_A, "get", "secrets", "late"))).allowed
        bound = {**unbound, "spec": {**unbound["spec"], "nodeName": "node-a"}}
        await storage.update(f"{PODS}ns/p", orjson.dumps(bound), expected_revision=created.mod_revision)
        assert await allowed_soon(auth, ask(NODE_A, "get", "secrets", "late"), expected=True)


def test_pod_writes_are_decoded_when_asked_about_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []

    def counting(kv: KeyValue) -> dict[str, Any]:
        decoded.append(kv.key)
        return decode(kv)

    monkeypatch.setattr(node_authorizer, "decode", counting)
    graph = NodeGraph()
    key = f"{PODS}ns/web"
    for revision, node in enumerate(["node-a", "node-a", "node-b"], start=1):
        written = pod("web", node, volumes=[{"name": "s", "secret": {"secretName": "tls"}}])
        graph.put_stored(PODS, key, KeyValue(key, orjson.dumps(written), revision, 1))
    assert decoded == []  # nothing asked yet
    assert graph.has_path("node-b", "secrets", "ns", "tls")
    assert not graph.has_path("node-a", "secrets", "ns", "tls")
    assert decoded == [key]  # the latest write only, once
    graph.put_stored(PODS, key, None)
    assert not graph.has_path("node-b", "secrets", "ns", "tls")
    # a relist supersedes what was pending
    graph.put_stored(PODS, key, KeyValue(key, orjson.dumps(pod("web", "node-a")), 9, 9))
    graph.reset_stored(PODS, [])
    assert not graph.has_path("node-a", "pods", "ns", "web")
