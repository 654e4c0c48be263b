"""Garbage collector: ownerReferences and the three deletion propagation policies.

Invariant: an object whose owners are all gone is deleted; an owner deleted with the `orphan`
finalizer loses that finalizer only after no dependent refers to it any more; an owner deleted
with `foregroundDeletion` loses it only after its dependents that set `blockOwnerDeletion` are
gone (every dependent is deleted first). Watches every deletable resource the API serves (found
through discovery, refreshed so custom resources join), keeps a graph of owner uid -> dependent
uids, and processes uids from a deduplicating queue. Level-triggered and idempotent: each step
re-reads what it needs, an owner's absence is confirmed with a live GET before anything is
deleted (a cache that has not caught up must never cause a deletion), and every write is
conditional on the resourceVersion it was computed from.

It runs on the shared runtime: one informer per discovered resource (the same shared informers
the other controllers read, so pods are watched once per process), its work queue keyed by uid.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.runtime import Controller, EventHandler

__all__ = ["GarbageCollector"]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
JSON_PATCH = "application/json-patch+json"


@dataclass(slots=True)
class Node:
    # One per object of every resource in the cluster (pods, Events, ...): slots keep it small.
    rp: ResourcePath
    namespace: str
    name: str
    uid: str
    resource_version: str
    owners: list[dict[str, Any]]
    finalizers: list[str]
    deleting: bool

    @classmethod
    def of(cls, rp: ResourcePath, obj: dict[str, Any]) -> Node:
        """The graph node of an object as read from the API (cache or live)."""
        meta = obj.get("metadata", {})
        return cls(
            rp=rp,
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta["uid"],
            resource_version=meta.get("resourceVersion", ""),
            owners=list(meta.get("ownerReferences") or []),
            finalizers=list(meta.get("finalizers") or []),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass
class _Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)

    def upsert(self, node: Node) -> None:
        self.remove(node.uid)
        self.nodes[node.uid] = node
        for ref in node.owners:
            self.dependents.setdefault(str(ref.get("uid", "")), set()).add(node.uid)

    def remove(self, uid: str) -> Node | None:
        old = self.nodes.pop(uid, None)
        if old is not None:
            for ref in old.owners:
                deps = self.dependents.get(str(ref.get("uid", "")))
                if deps is not None:
                    deps.discard(uid)
        return old


# How soon a dependent whose owner exists, unobserved by any informer yet, is looked at again.
UNOBSERVED_OWNER_RECHECK = 0.5


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 4

    def setup(self) -> None:
        self._graph = _Graph()
        self._kinds: dict[tuple[str, str], ResourcePath] = {}  # (group, kind) -> path
        self._watched: set[ResourcePath] = set()
        self._rediscover_every = float(self.ctx.config.extra.get("gc_rediscover_seconds", 30.0))

    async def run(self, stop: asyncio.Event) -> None:
        # Discovery decides what to watch, so the informers exist only after the first round;
        # the base class waits for every informer's first list before starting the workers.
        await self._discover_and_watch()
        await super().run(stop)

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._rediscover_every)
            if not stop.is_set():
                await self._discover_and_watch()

    async def _discover_and_watch(self) -> None:
        try:
            found = await self._discover()
        except (errors.StatusError, OSError) as exc:
            self.log.warning("discovery failed: %s", exc)
            return
        for rp in found:
            if rp not in self._watched:
                self._watched.add(rp)
                self.ctx.informers.informer(rp).add_handler(self._handler(rp))

    def _handler(self, rp: ResourcePath) -> EventHandler:
        def handle(event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
            if event == "DELETED":
                gone = new or old
                if gone is not None:
                    self._forget(str(gone["metadata"].get("uid", "")))
            elif new is not None:
                self._observe(rp, new)

        return handle

    async def _discover(self) -> list[ResourcePath]:
        found: list[ResourcePath] = []
        group_versions: list[tuple[str, str]] = [("", "v1")]
        groups = await self.ctx.client.request("GET", "/apis")
        for group in groups.get("groups", []):
            preferred = group.get("preferredVersion", {}).get("version") or group["versions"][0]["version"]
            group_versions.append((group["name"], preferred))
        for group_name, version in group_versions:
            path = "/api/v1" if not group_name else f"/apis/{group_name}/{version}"
            try:
                doc = await self.ctx.client.request("GET", path)
            except errors.NotFound:
                continue
            for res in doc.get("resources", []):
                verbs = set(res.get("verbs", []))
                if "/" in res["name"] or not {"list", "watch", "delete", "patch"} <= verbs:
                    continue
                rp = ResourcePath(group_name, version, res["name"], bool(res.get("namespaced")))
                self._kinds[(group_name, res["kind"])] = rp
                found.append(rp)
        return found

    def _observe(self, rp: ResourcePath, obj: dict[str, Any]) -> Node:
        node = Node.of(rp, obj)
        self._graph.upsert(node)
        if (node.deleting and {ORPHAN, FOREGROUND} & set(node.finalizers)) or any(
            not self._known_owner(node, ref) for ref in node.owners
        ):
            self.enqueue(node.uid)
        for ref in node.owners:
            owner = self._graph.nodes.get(str(ref.get("uid")))
            if owner is not None and owner.deleting:
                self.enqueue(owner.uid)
        return node

    def _known_owner(self, dependent: Node, ref: dict[str, Any]) -> bool:
        """Whether the graph holds this owner, live, where the reference can reach it. As
        upstream's graph builder, a dependent is only checked (with a live GET) when an owner
        is not in the graph (a "virtual" node) or when an owner leaves it (`_forget`): checking
        on every change of every dependent costs a GET per pod status write at scale."""
        owner = self._graph.nodes.get(str(ref.get("uid", "")))
        if owner is None or owner.deleting:
            return False
        if owner.rp.namespaced and owner.namespace != dependent.namespace:
            return False
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        return (
            owner.name == ref.get("name")
            and owner.rp.group == group
            and self._kinds.get((group, str(ref.get("kind", "")))) == owner.rp
        )

    def _forget(self, uid: str) -> None:
        old = self._graph.remove(uid)
        for dependent in self._graph.dependents.get(uid, set()):
            self.enqueue(dependent)
        if old is not None:
            for ref in old.owners:
                self.enqueue(str(ref.get("uid")))

    def enqueue(self, key: str) -> None:
        if key:
            super().enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._process(key)
        except errors.Invalid:
            return 0.05  # a JSON-patch resourceVersion test failed: the cache moved; look again
        except errors.NotFound:
            pass
        return None

    # -- the decisions -----------------------------------------------------------------------

    async def _process(self, uid: str) -> float | None:
        """Act on one object; a delay when it must be looked at again (see `_collect_if_owners_gone`)."""
        node = self._graph.nodes.get(uid)
        if node is None:
            return None
        if node.deleting and ORPHAN in node.finalizers:
            await self._orphan_dependents(node)
            return None
        if node.deleting and FOREGROUND in node.finalizers:
            await self._delete_dependents_first(node)
            return None
        if node.owners and not node.deleting:
            return await self._collect_if_owners_gone(node)
        return None

    async def _resolve_unknown_owners(self, node: Node) -> None:
        """An owner whose kind discovery has not shown yet (a custom resource whose CRD is
        seconds old): discover again now, and retry this dependent with backoff until the kind
        resolves, as upstream's collector does, instead of waiting for the periodic rediscovery
        (by then the owner may be gone without this collector ever having watched it)."""
        await self._discover_and_watch()
        for ref in node.owners:
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            if (group, str(ref.get("kind", ""))) not in self._kinds:
                raise errors.ServiceUnavailable(
                    message=f"unable to resolve the owner kind {ref.get('apiVersion')}/{ref.get('kind')} of {node.name}"
                )

    def _dependents_of(self, uid: str) -> list[Node]:
        return [
            self._graph.nodes[d] for d in self._graph.dependents.get(uid, set()) if d in self._graph.nodes
        ]

    async def _orphan_dependents(self, owner: Node) -> None:
        for dep in self._dependents_of(owner.uid):
            remaining = [r for r in dep.owners if r.get("uid") != owner.uid]
            await self._patch_owner_refs(dep, remaining)
        if not self._dependents_of(owner.uid):
            await self._remove_finalizer(owner, ORPHAN)

    async def _delete_dependents_first(self, owner: Node) -> None:
        blocking = False
        for dep in self._dependents_of(owner.uid):
            ref = next((r for r in dep.owners if r.get("uid") == owner.uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking = True
            if not dep.deleting:
                policy = "Foreground" if self._dependents_of(dep.uid) else "Background"
                with contextlib.suppress(errors.NotFound):
                    await self.ctx.client.delete(
                        dep.rp,
                        dep.name,
                        dep.namespace or None,
                        options={"propagationPolicy": policy, "preconditions": {"uid": dep.uid}},
                    )
        if not blocking:
            await self._remove_finalizer(owner, FOREGROUND)

    async def _collect_if_owners_gone(self, node: Node) -> float | None:
        absent: list[dict[str, Any]] = []
        waiting_on_foreground = False
        unobserved = False
        for ref in node.owners:
            state = await self._owner_state(node, ref)
            if state is _UNKNOWN:
                await self._resolve_unknown_owners(node)  # raises (retry with backoff) while unresolved
                state = await self._owner_state(node, ref)
            if state is None:
                absent.append(ref)
                continue
            if state.deleting and FOREGROUND in state.finalizers:
                waiting_on_foreground = True
            if str(ref.get("uid", "")) not in self._graph.nodes:
                unobserved = True
        if not absent:
            if waiting_on_foreground:
                owner_uids = {str(r.get("uid")) for r in node.owners}
                for uid in owner_uids:
                    self.enqueue(uid)
            if unobserved:
                # The owner exists but no informer has shown it yet (its kind was discovered a
                # moment ago, say). Its deletion would then reach nobody: the informer may list
                # after it and never see it. Look again until the graph holds the owner, as
                # upstream requeues a virtual node until it is observed (issue 56121).
                return UNOBSERVED_OWNER_RECHECK
            return None
        if len(absent) == len(node.owners):
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(
                    node.rp,
                    node.name,
                    node.namespace or None,
                    options={"propagationPolicy": "Background", "preconditions": {"uid": node.uid}},
                )
            return None
        # Some owners remain: drop only the dangling references, as upstream does.
        remaining = [r for r in node.owners if r not in absent]
        await self._patch_owner_refs(node, remaining)
        return None

    async def _owner_state(self, dependent: Node, ref: dict[str, Any]) -> Node | None:
        """The owner if it exists with the referenced uid; None when it is verifiably gone."""
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        rp = self._kinds.get((group, str(ref.get("kind", ""))))
        if rp is None:
            return _UNKNOWN  # an owner type we cannot see is never treated as gone
        namespace = dependent.namespace if rp.namespaced else None
        try:
            owner = await self.ctx.client.get(rp, str(ref.get("name", "")), namespace)
        except errors.NotFound:
            return None
        if owner.get("metadata", {}).get("uid") != ref.get("uid"):
            return None
        return Node.of(rp, owner)

    async def _patch_owner_refs(self, node: Node, remaining: list[dict[str, Any]]) -> None:
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": node.uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": node.resource_version},
        ]
        ops.append(
            {"op": "replace", "path": "/metadata/ownerReferences", "value": remaining}
            if remaining
            else {"op": "remove", "path": "/metadata/ownerReferences"}
        )
        updated = await self.ctx.client.patch(
            node.rp, node.name, ops, node.namespace or None, patch_type=JSON_PATCH
        )
        self._observe(node.rp, updated)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        kept = [f for f in node.finalizers if f != finalizer]
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": node.uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": node.resource_version},
            {"op": "replace", "path": "/metadata/finalizers", "value": kept}
            if kept
            else {"op": "remove", "path": "/metadata/finalizers"},
        ]
        await self.ctx.client.patch(node.rp, node.name, ops, node.namespace or None, patch_type=JSON_PATCH)


_UNKNOWN = Node(ResourcePath("", "", ""), "", "", "", "", [], [], deleting=False)
