"""The Node authorizer (upstream plugin/pkg/auth/authorizer/node): what a kubelet, user
`system:node:<name>` in `system:nodes`, may read and write.

Secrets, configmaps, PVCs, PVs and service-account tokens are readable only when the object is
reachable from the node in the graph of pods bound to it (pod -> node; secret/configmap/PVC/
service account -> pod; PV -> PVC; secret -> PV), kept in memory from a list and a watch of
storage like upstream's graph_populator. Leases and CSINodes only under the node's own name; its
own Node, pods bound to it (upstream's AuthorizeNodeWithSelectors, on by default since 1.32);
anything else by the static rules of the `system:node` role. Every refusal is a "no opinion"
with upstream's reason, so the next authorizer (RBAC) may still allow.

Use: `graph = NodeGraph(ctx.storage)`; `await graph.sync()` before serving; `graph.run()` as a
task of the server's TaskGroup; `NodeAuthorizer(graph)` in the union before RBAC.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.api.rbac.bootstrap_policy import cluster_roles
from controlplane.api.rbac.rules import PolicyRule, Request, rules_allow
from controlplane.apiserver.admission.noderestriction import node_identity, pod_references
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.store import decode
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import Event, KeyValue, Storage, Watch

__all__ = ["NodeAuthorizer", "NodeGraph", "node_rules"]

log = logging.getLogger("pinnace.nodeauthorizer")

NO_OPINION = Decision(allowed=False, reason="")
ALLOW = Decision(allowed=True)
NODE_LEASE_NAMESPACE = "kube-node-lease"

PODS = "/registry/core/pods/"
_NODE_NAME_KEY = b'"nodeName":'
PVCS = "/registry/core/persistentvolumeclaims/"
PVS = "/registry/core/persistentvolumes/"

_NsName = tuple[str, str]


def node_rules() -> tuple[PolicyRule, ...]:
    """The `system:node` ClusterRole's rules: upstream's NodeRules(), what the authorizer allows
    for every node beyond the graph-scoped resources."""
    for name, rules, _labels, _aggregation in cluster_roles():
        if name == "system:node":
            return tuple(rules)
    return ()


@dataclass
class _Pod:
    node: str
    refs: dict[str, set[str]]


def _pv_secrets(pv: Mapping[str, Any]) -> set[_NsName]:
    """(namespace, name) of the secrets a PersistentVolume names (upstream's VisitPVSecretNames)."""
    spec = pv.get("spec") if isinstance(pv.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    claim = spec.get("claimRef") if isinstance(spec.get("claimRef"), dict) else {}
    assert isinstance(claim, dict)
    claim_ns = str(claim.get("namespace") or "")
    out: set[_NsName] = set()
    for source in spec.values():
        if not isinstance(source, dict):
            continue
        for key in (
            "secretRef",
            "nodePublishSecretRef",
            "nodeStageSecretRef",
            "controllerPublishSecretRef",
            "controllerExpandSecretRef",
            "nodeExpandSecretRef",
        ):
            ref = source.get(key)
            if isinstance(ref, dict) and ref.get("name"):
                out.add((str(ref.get("namespace") or claim_ns), str(ref["name"])))
        if source.get("secretName") and ("secretNamespace" in source or claim_ns):
            out.add((str(source.get("secretNamespace") or claim_ns), str(source["secretName"])))
    return out


class _Follower:
    """One prefix of storage, listed then watched; `apply` receives each object (None: gone)."""

    def __init__(self, storage: Storage, prefix: str, graph: NodeGraph) -> None:
        self._storage = storage
        self.prefix = prefix
        self._graph = graph
        self._watch: Watch | None = None

    async def sync(self) -> None:
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        listed = await self._storage.list(self.prefix)
        self._graph.reset_stored(self.prefix, listed.items)
        self._watch = await self._storage.watch(self.prefix, revision=listed.revision)

    def catch_up(self) -> bool:
        if self._watch is None:
            return False
        moved = False
        while events := self._watch.ready():
            self._apply(events)
            moved = True
        return moved

    def _apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self._graph.put_stored(self.prefix, event.kv.key, None if event.type == "DELETE" else event.kv)

    async def run(self) -> None:
        try:
            while True:
                if self._watch is None:
                    try:
                        await self.sync()
                    except storage_errors.StorageError:
                        log.exception("listing %s failed; retrying", self.prefix)
                        await asyncio.sleep(1.0)
                        continue
                watch = self._watch
                assert watch is not None
                try:
                    async for event in watch:
                        self._apply([event])
                        self.catch_up()
                except storage_errors.StorageError as exc:
                    log.info("node graph watch on %s lost (%s); relisting", self.prefix, type(exc).__name__)
                self._watch = None
        finally:
            if self._watch is not None:
                await self._watch.close()
                self._watch = None


# Pod writes held undecoded at most; beyond, they are applied at once.
_PENDING_LIMIT = 50_000


class NodeGraph:
    """Pods bound to nodes and what they reference, PVC -> PV bindings and PV -> secret references.
    Without a storage it is fed by `put` alone (tests).

    Pod writes arrive as stored bytes and are decoded only when a node's question needs the graph
    (`has_path`): the latest write of each pod since the last question is kept, so a pod written
    several times in between (created, bound, its status moved) is decoded once, and the many
    writes of a busy server between questions cost no decode then. Unbound pods the graph does
    not hold are never decoded (`unaffected`)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self._pods: dict[str, _Pod] = {}  # storage key -> pod
        self._by_node: dict[str, dict[str, _NsName]] = {}  # node -> pod key -> (ns, name)
        self._pvc_volume: dict[_NsName, str] = {}
        self._pv_secrets: dict[str, set[_NsName]] = {}
        # pod storage key -> its latest write not applied yet (None: deleted)
        self._pending: dict[str, KeyValue | None] = {}
        self._followers = (
            [_Follower(storage, p, self) for p in (PODS, PVCS, PVS)] if storage is not None else []
        )

    # -- following storage ----------------------------------------------------------------------

    async def sync(self) -> None:
        for follower in self._followers:
            await follower.sync()

    def catch_up(self) -> bool:
        return any([follower.catch_up() for follower in self._followers])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for follower in self._followers:
                tg.create_task(follower.run(), name=f"node-graph{follower.prefix}")

    def reset_stored(self, prefix: str, items: Sequence[KeyValue]) -> None:
        """The prefix as listed: everything before, applied or not, is superseded."""
        if prefix == PODS:
            self._pods.clear()
            self._by_node.clear()
            self._pending = {kv.key: kv for kv in items}
            self._check_pending()
            return
        self.reset(prefix, [(kv.key, decode(kv)) for kv in items])

    def put_stored(self, prefix: str, key: str, kv: KeyValue | None) -> None:
        """A write as stored (None: deleted); pods are applied when next asked about."""
        if prefix == PODS:
            self._pending[key] = kv
            self._check_pending()
        else:
            self.put(prefix, key, decode(kv) if kv is not None else None)

    def _check_pending(self) -> None:
        if len(self._pending) > _PENDING_LIMIT:
            self._apply_pending()

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for key, kv in pending.items():
            if kv is None:
                self._put_pod(key, None)
            elif not self.unaffected(PODS, kv):
                self._put_pod(key, decode(kv))

    def reset(self, prefix: str, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if prefix == PODS:
            self._pods.clear()
            self._by_node.clear()
            self._pending.clear()
        elif prefix == PVCS:
            self._pvc_volume.clear()
        else:
            self._pv_secrets.clear()
        for key, obj in items:
            self.put(prefix, key, obj)

    def unaffected(self, prefix: str, kv: KeyValue) -> bool:
        """Would putting this write change nothing? True for a pod the graph does not hold whose
        stored JSON has no nodeName key (not bound), so every pod create is not decoded here.
        orjson writes keys as `"nodeName":`; inside a string value the quotes are escaped."""
        return prefix == PODS and kv.key not in self._pods and _NODE_NAME_KEY not in kv.value

    def put(self, prefix: str, key: str, obj: dict[str, Any] | None) -> None:
        if prefix == PODS:
            self._pending.pop(key, None)  # superseded by this newer state
            self._put_pod(key, obj)
            return
        meta = (obj or {}).get("metadata") or {}
        if prefix == PVCS:
            ns, _, name = key[len(PVCS) :].partition("/")
            volume = ((obj or {}).get("spec") or {}).get("volumeName") or ""
            if obj is None or not volume:
                self._pvc_volume.pop((ns, name), None)
            else:
                self._pvc_volume[(ns, name)] = str(volume)
        else:
            name = key[len(PVS) :]
            if obj is None:
                self._pv_secrets.pop(name, None)
            else:
                self._pv_secrets[str(meta.get("name") or name)] = _pv_secrets(obj)

    def _put_pod(self, key: str, pod: dict[str, Any] | None) -> None:
        previous = self._pods.pop(key, None)
        if previous is not None:
            on_node = self._by_node.get(previous.node)
            if on_node is not None:
                on_node.pop(key, None)
                if not on_node:
                    del self._by_node[previous.node]
        if pod is None:
            return
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            return  # not bound: no node may read through it yet
        ns, _, name = key[len(PODS) :].partition("/")
        self._pods[key] = _Pod(node, pod_references(pod))
        self._by_node.setdefault(node, {})[key] = (ns, name)

    # -- questions ------------------------------------------------------------------------------

    def _node_pods(self, node: str, namespace: str | None = None) -> Iterable[tuple[_NsName, _Pod]]:
        for key, ns_name in self._by_node.get(node, {}).items():
            if namespace is None or ns_name[0] == namespace:
                yield ns_name, self._pods[key]

    def _node_volumes(self, node: str) -> set[str]:
        volumes = set()
        for (ns, _), pod in self._node_pods(node):
            for claim in pod.refs["persistentvolumeclaims"]:
                volume = self._pvc_volume.get((ns, claim))
                if volume:
                    volumes.add(volume)
        return volumes

    def has_path(self, node: str, resource: str, namespace: str, name: str) -> bool:
        """Is the object reachable from `node` (upstream's hasPathFrom)?"""
        if self._pending:
            self._apply_pending()
        if resource == "pods":
            return any(ns_name == (namespace, name) for ns_name, _ in self._node_pods(node, namespace))
        if resource == "persistentvolumes":
            return name in self._node_volumes(node)
        if resource in ("secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"):
            if any(name in pod.refs[resource] for _, pod in self._node_pods(node, namespace)):
                return True
            if resource == "secrets":
                return any(
                    (namespace, name) in self._pv_secrets.get(v, set()) for v in self._node_volumes(node)
                )
        return False


def _request(attrs: Attributes) -> Request:
    return Request(
        verb=attrs.verb,
        resource_request=attrs.resource_request,
        api_group=attrs.api_group,
        resource=attrs.resource,
        subresource=attrs.subresource,
        name=attrs.name,
        namespace=attrs.namespace,
        path=attrs.path,
    )


def _user_mapping(user: UserInfo) -> dict[str, Any]:
    return {"username": user.name, "groups": list(user.groups)}


def _field_selector_pins_node(attrs: Attributes, node: str) -> bool:
    """A list/watch scoped by `spec.nodeName=<node>` (the attributes carry the raw selector when
    the server passes it as `field_selector`)."""
    raw = getattr(attrs, "field_selector", "") or ""
    for term in str(raw).split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and not key.endswith("!") and key.strip() == "spec.nodeName" and value.strip() == node:
            return True
    return False


class NodeAuthorizer:
    def __init__(self, graph: NodeGraph, rules: Sequence[PolicyRule] | None = None) -> None:
        self.graph = graph
        self.rules = tuple(rules) if rules is not None else node_rules()

    async def authorize(self, attrs: Attributes) -> Decision:
        node, is_node = node_identity(_user_mapping(attrs.user))
        if not is_node:
            return NO_OPINION
        if not node:
            return Decision(False, f'unknown node for user "{attrs.user.name}"')
        if attrs.resource_request:
            key = (attrs.api_group, attrs.resource)
            if key in (("", "secrets"), ("", "configmaps")):
                return self._read_namespaced(node, attrs)
            if key == ("", "persistentvolumeclaims"):
                if attrs.subresource == "status":
                    return self._status_update(node, attrs)
                return self._get(node, attrs)
            if key == ("", "persistentvolumes"):
                return self._get(node, attrs)
            if key == ("", "serviceaccounts"):
                return self._create_token(node, attrs)
            if key == ("coordination.k8s.io", "leases"):
                return self._lease(node, attrs)
            if key == ("storage.k8s.io", "csinodes"):
                return self._csinode(node, attrs)
            if key == ("", "nodes"):
                return self._node(node, attrs)
            if key == ("", "pods"):
                return self._pod(node, attrs)
        return self._static(attrs)

    def _static(self, attrs: Attributes) -> Decision:
        return ALLOW if rules_allow(_request(attrs), self.rules) else NO_OPINION

    def _related(self, node: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return Decision(False, "No Object name found")
        if self.graph.has_path(node, attrs.resource, attrs.namespace, attrs.name) or (
            self.graph.catch_up() and self.graph.has_path(node, attrs.resource, attrs.namespace, attrs.name)
        ):
            return ALLOW
        return Decision(False, f"no relationship found between node '{node}' and this object")

    def _read_namespaced(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return Decision(False, "can only read resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot read subresource")
        if not attrs.namespace:
            return Decision(False, "can only read namespaced object of this type")
        return self._related(node, attrs)

    def _get(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return Decision(False, "can only get individual resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot get subresource")
        return self._related(node, attrs)

    def _status_update(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("update", "patch"):
            return Decision(False, "can only get/update/patch this type")
        if attrs.subresource != "status":
            return Decision(False, "can only update status subresource")
        return self._related(node, attrs)

    def _create_token(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return Decision(False, "can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return Decision(False, "can only create token subresource of serviceaccount")
        return self._related(node, attrs)

    def _lease(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(False, "can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return Decision(False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        if attrs.verb != "create" and attrs.name != node:
            return Decision(False, "can only access node lease with the same name as the requesting node")
        return ALLOW

    def _csinode(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(False, "can only get, create, update, patch, or delete a CSINode")
        if attrs.subresource:
            return Decision(False, "cannot authorize CSINode subresources")
        if attrs.verb != "create" and attrs.name != node:
            return Decision(False, "can only access CSINode with the same name as the requesting node")
        return ALLOW

    def _node(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb in ("create", "update", "patch"):
            # NodeRestriction admission limits a node to its own Node object.
            return ALLOW
        if attrs.verb in ("get", "list", "watch"):
            if attrs.name == node:
                return ALLOW
            if not attrs.name:
                return Decision(False, f"node '{node}' cannot read all nodes, only its own Node object")
            return Decision(False, f"node '{node}' cannot read '{attrs.name}', only its own Node object")
        return self._static(attrs)

    def _pod(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb == "get":
            return self._get(node, attrs)
        if attrs.verb in ("list", "watch"):
            if _field_selector_pins_node(attrs, node):
                return ALLOW
            if attrs.name:
                return self._related(node, attrs)
            return Decision(False, "can only list/watch pods with spec.nodeName field selector")
        return self._static(attrs)
