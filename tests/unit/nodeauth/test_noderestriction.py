"""NodeRestriction admission: a node may write only its own Node, Lease, pods' status and
mirror pods, with upstream's messages; other users pass untouched."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver.admission import REQUEST_USER, Attributes
from controlplane.apiserver.admission.noderestriction import NodeRestriction, forbidden_node_labels
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

REGISTRY = default_registry()
NODE = {"username": "system:node:node-a", "groups": ["system:nodes", "system:authenticated"]}


def info(group: str, plural: str) -> Any:
    found = REGISTRY.get(group, "v1", plural)
    assert found is not None
    return found


@pytest.fixture
async def ctx() -> AsyncIterator[ServerContext]:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    context = ServerContext(
        registry=REGISTRY,
        storage=storage,
        store=ObjectStore(storage),
        services=ServiceAllocation(ServiceIPAllocator(storage, "10.96.0.0/24"), NodePortAllocator(storage)),
    )
    await context.store.create(
        info("", "nodes"),
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": "uid-a"}},
    )
    yield context
    await storage.close()


@pytest.fixture(autouse=True)
def as_node() -> Any:
    token = REQUEST_USER.set(NODE)
    yield
    REQUEST_USER.reset(token)


def attrs(
    plural: str, op: str, name: str, *, namespace: str = "ns", sub: str = "", group: str = ""
) -> Attributes:
    return Attributes(info(group, plural), op, namespace, name, sub)  # type: ignore[arg-type]


async def refused(coro: Any) -> str:
    with pytest.raises(errors.Forbidden) as caught:
        await coro
    return caught.value.message


def node_obj(
    name: str, labels: dict[str, str] | None = None, taints: list[Any] | None = None
) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints} if taints else {}}


async def test_a_node_modifies_only_its_own_node(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    await plugin.admit(
        ctx,
        attrs("nodes", "UPDATE", "node-a", namespace="", sub="status"),
        node_obj("node-a"),
        node_obj("node-a"),
    )
    message = await refused(
        plugin.admit(
            ctx, attrs("nodes", "UPDATE", "node-b", namespace=""), node_obj("node-b"), node_obj("node-b")
        )
    )
    assert message == 'nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"'
    message = await refused(
        plugin.admit_delete(ctx, attrs("nodes", "DELETE", "node-b", namespace=""), node_obj("node-b"))
    )
    assert 'is not allowed to modify node "node-b"' in message


async def test_node_labels_and_taints(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    old = node_obj("node-a", {"kubernetes.io/hostname": "node-a"})
    fine = node_obj(
        "node-a", {"kubernetes.io/hostname": "node-a", "topology.kubernetes.io/zone": "z", "app": "x"}
    )
    await plugin.admit(ctx, attrs("nodes", "UPDATE", "node-a", namespace=""), fine, old)
    bad = node_obj(
        "node-a", {"node-restriction.kubernetes.io/pci": "yes", "node-role.kubernetes.io/master": ""}
    )
    message = await refused(plugin.admit(ctx, attrs("nodes", "UPDATE", "node-a", namespace=""), bad, old))
    assert message.endswith(
        # removing kubernetes.io/hostname is fine: a kubelet may set it
        "is not allowed to modify labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/master"
    )
    message = await refused(plugin.admit(ctx, attrs("nodes", "CREATE", "node-a", namespace=""), bad, None))
    assert (
        'node "node-a" is not allowed to set the following labels: node-restriction.kubernetes.io/pci'
        in message
    )
    tainted = node_obj("node-a", {"kubernetes.io/hostname": "node-a"}, [{"key": "k", "effect": "NoSchedule"}])
    message = await refused(plugin.admit(ctx, attrs("nodes", "UPDATE", "node-a", namespace=""), old, tainted))
    assert message.endswith('node "node-a" is not allowed to modify taints')
    assert forbidden_node_labels({"kubelet.kubernetes.io/x": "1", "example.k8s.io/y": "2"}, {}) == [
        "example.k8s.io/y"
    ]


def bound_pod(node: str, name: str = "p") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"a": "b"}}, "spec": {"nodeName": node}}


async def test_pod_status_and_deletion_only_for_its_pods(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    mine, theirs = bound_pod("node-a"), bound_pod("node-b")
    await plugin.admit(ctx, attrs("pods", "UPDATE", "p", sub="status"), copy.deepcopy(mine), mine)
    message = await refused(
        plugin.admit(ctx, attrs("pods", "UPDATE", "p", sub="status"), copy.deepcopy(theirs), theirs)
    )
    assert message.endswith(
        'node "node-a" can only update pod status for pods with spec.nodeName set to itself'
    )
    relabelled = copy.deepcopy(mine)
    relabelled["metadata"]["labels"] = {"a": "c"}
    message = await refused(plugin.admit(ctx, attrs("pods", "UPDATE", "p", sub="status"), relabelled, mine))
    assert message.endswith('node "node-a" cannot update labels through pod status')
    await plugin.admit_delete(ctx, attrs("pods", "DELETE", "p"), mine)
    message = await refused(plugin.admit_delete(ctx, attrs("pods", "DELETE", "p"), theirs))
    assert message.endswith('node "node-a" can only delete pods with spec.nodeName set to itself')
    message = await refused(plugin.admit(ctx, attrs("pods", "UPDATE", "p"), copy.deepcopy(mine), mine))
    assert message.endswith(
        'unexpected operation "UPDATE", node "node-a" can only create and delete mirror pods'
    )


def mirror_pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "static-node-a",
            "namespace": "ns",
            "annotations": {"kubernetes.io/config.mirror": "hash"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "uid-a", "controller": True}
            ],
        },
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "i"}], **spec},
    }


async def test_only_mirror_pods_referencing_nothing(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    await plugin.admit(ctx, attrs("pods", "CREATE", "static-node-a"), mirror_pod(), None)
    plain = mirror_pod()
    del plain["metadata"]["annotations"]
    message = await refused(plugin.admit(ctx, attrs("pods", "CREATE", "x"), plain, None))
    assert message.endswith(
        'pod does not have "kubernetes.io/config.mirror" annotation, node "node-a" can only create mirror pods'
    )
    elsewhere = mirror_pod(nodeName="node-b")
    message = await refused(plugin.admit(ctx, attrs("pods", "CREATE", "x"), elsewhere, None))
    assert message.endswith('node "node-a" can only create pods with spec.nodeName set to itself')
    with_secret = mirror_pod(volumes=[{"name": "s", "secret": {"secretName": "tls"}}])
    message = await refused(plugin.admit(ctx, attrs("pods", "CREATE", "x"), with_secret, None))
    assert message.endswith('node "node-a" can not create pods that reference secrets')
    wrong_uid = mirror_pod()
    wrong_uid["metadata"]["ownerReferences"][0]["uid"] = "forged"
    message = await refused(plugin.admit(ctx, attrs("pods", "CREATE", "x"), wrong_uid, None))
    assert "UID mismatch" in message


async def test_leases_only_its_own(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    lease = {"metadata": {"name": "node-a", "namespace": "kube-node-lease"}}
    lease_attrs = attrs(
        "leases", "CREATE", "node-a", namespace="kube-node-lease", group="coordination.k8s.io"
    )
    await plugin.admit(ctx, lease_attrs, lease, None)
    other = {"metadata": {"name": "node-b", "namespace": "kube-node-lease"}}
    message = await refused(plugin.admit(ctx, lease_attrs, other, None))
    assert message.endswith("can only access node lease with the same name as the requesting node")
    wrong_ns = attrs("leases", "UPDATE", "node-a", namespace="default", group="coordination.k8s.io")
    message = await refused(plugin.admit(ctx, wrong_ns, lease, lease))
    assert message.endswith('can only access leases in the "kube-node-lease" system namespace')


async def test_other_users_are_not_restricted(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    token = REQUEST_USER.set({"username": "alice", "groups": ["system:nodes"]})
    try:
        await plugin.admit(
            ctx, attrs("nodes", "UPDATE", "node-b", namespace=""), node_obj("node-b"), node_obj("node-b")
        )
        await plugin.admit(ctx, attrs("pods", "CREATE", "p"), bound_pod("node-b"), None)
    finally:
        REQUEST_USER.reset(token)


async def test_token_requests_only_for_its_own_pods(ctx: ServerContext) -> None:
    plugin = NodeRestriction()
    pods = info("", "pods")
    mine, theirs = bound_pod("node-a", "mine"), bound_pod("node-b", "theirs")
    for pod in (mine, theirs):
        pod["metadata"]["uid"] = f"uid-{pod['metadata']['name']}"
        await ctx.store.create(pods, {**pod, "apiVersion": "v1", "kind": "Pod"})
    token_attrs = attrs("serviceaccounts", "CREATE", "default", sub="token")

    def request(pod: dict[str, Any] | None, uid: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"audiences": ["api"]}
        if pod is not None:
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"] if uid is None else uid,
            }
        return {"kind": "TokenRequest", "spec": spec}

    await plugin.admit(ctx, token_attrs, request(mine), None)
    assert (await refused(plugin.admit(ctx, token_attrs, request(None), None))).endswith(
        "node requested token not bound to a pod"
    )
    assert (await refused(plugin.admit(ctx, token_attrs, request(theirs), None))).endswith(
        "node requested token bound to a pod scheduled on a different node"
    )
    assert "does not match the UID in record" in await refused(
        plugin.admit(ctx, token_attrs, request(mine, "old"), None)
    )


async def test_evictions_only_of_its_own_pods(ctx: ServerContext) -> None:
    """admitPodEviction: the system:node role may create pods/eviction anywhere; the plugin keeps
    a node to the pods bound to it, read from storage (not from the submitted Eviction)."""
    plugin = NodeRestriction()
    pods = info("", "pods")
    for name, node in (("mine", "node-a"), ("theirs", "node-b")):
        pod = bound_pod(node)
        pod["metadata"]["name"] = name
        await ctx.store.create(pods, pod)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "mine"}}
    await plugin.admit(ctx, attrs("pods", "CREATE", "mine", sub="eviction"), eviction, None)
    message = await refused(
        plugin.admit(ctx, attrs("pods", "CREATE", "theirs", sub="eviction"), eviction, None)
    )
    assert message.endswith("node node-a can only evict pods with spec.nodeName set to itself")
    with pytest.raises(errors.NotFound):
        await plugin.admit(ctx, attrs("pods", "CREATE", "gone", sub="eviction"), eviction, None)
    message = await refused(
        plugin.admit(ctx, attrs("pods", "UPDATE", "mine", sub="eviction"), eviction, None)
    )
    assert message.endswith("unexpected operation UPDATE")
