"""The RBAC objects, kept in memory from storage: one list, then one watch on the
`rbac.authorization.k8s.io` prefix, so authorizing a request reads no storage.

Like an informer: on a lost watch (compaction, overflow) it lists again. `catch_up()` applies
whatever events the storage has already published without waiting, which is what makes a
RoleBinding written through this server effective for the very next request (the storage
publishes an event before the writer's response can go out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from controlplane.api.rbac.policy import Binding, Role, binding_from_dict, role_from_dict
from controlplane.apiserver.store import decode
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import Event, KeyValue, Storage, Watch

__all__ = ["PREFIX", "PolicyCache"]

log = logging.getLogger("pinnace.rbac")

PREFIX = "/registry/rbac.authorization.k8s.io/"


def _split(key: str) -> tuple[str, str, str] | None:
    """(plural, namespace, name) of a key under PREFIX."""
    parts = key[len(PREFIX) :].split("/")
    if len(parts) == 2 and parts[0] in ("clusterroles", "clusterrolebindings"):
        return parts[0], "", parts[1]
    if len(parts) == 3 and parts[0] in ("roles", "rolebindings"):
        return parts[0], parts[1], parts[2]
    return None


class PolicyCache:
    """Roles, ClusterRoles, RoleBindings and ClusterRoleBindings by name; a `PolicySource`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._roles: dict[tuple[str, str], Role] = {}
        self._cluster_roles: dict[str, Role] = {}
        # The stored ClusterRole objects with their revision: aggregation rewrites them.
        self._cluster_role_objects: dict[str, tuple[dict[str, Any], int]] = {}
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._cluster_bindings: dict[str, Binding] = {}
        self._watch: Watch | None = None
        self.revision = 0
        self._listeners: list[Callable[[set[str]], Awaitable[None]]] = []
        # ClusterRoles changed since the listeners last heard, and the flag that wakes them.
        self._changed: set[str] = set()
        self._dirty = asyncio.Event()

    # -- PolicySource -------------------------------------------------------------------------

    def get_role(self, namespace: str, name: str) -> Role | None:
        return self._roles.get((namespace, name))

    def get_cluster_role(self, name: str) -> Role | None:
        return self._cluster_roles.get(name)

    def role_bindings(self, namespace: str) -> Iterable[Binding]:
        return list(self._bindings.get(namespace, {}).values())

    def cluster_role_bindings(self) -> Iterable[Binding]:
        return list(self._cluster_bindings.values())

    # -- views for aggregation ----------------------------------------------------------------

    def cluster_roles(self) -> dict[str, Role]:
        return dict(self._cluster_roles)

    def cluster_role_object(self, name: str) -> tuple[dict[str, Any], int] | None:
        return self._cluster_role_objects.get(name)

    def on_cluster_roles_changed(self, listener: Callable[[set[str]], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self) -> None:
        """List everything and open the watch from the list's revision."""
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        listed = await self._storage.list(PREFIX)
        self._roles.clear()
        self._cluster_roles.clear()
        self._cluster_role_objects.clear()
        self._bindings.clear()
        self._cluster_bindings.clear()
        for kv in listed.items:
            self._put(kv)
        self.revision = listed.revision
        self._watch = await self._storage.watch(PREFIX, revision=listed.revision)

    def catch_up(self) -> None:
        """Apply the events available now (any caller, any time: no awaiting)."""
        if self._watch is None:
            return
        while events := self._watch.ready():
            self._apply(events)

    async def run(self) -> None:
        """Follow storage until cancelled, and tell the listeners which ClusterRoles changed
        (whoever applied the change: this loop or a request's `catch_up`)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow(), name="rbac-watch")
            tg.create_task(self._dispatch(), name="rbac-listeners")

    async def _follow(self) -> None:
        """Each event is applied in the step that receives it, so no request's `catch_up` can
        apply a later one first; a lost watch (compaction, overflow) means a relist."""
        try:
            while True:
                if self._watch is None:
                    try:
                        await self.sync()
                    except storage_errors.StorageError:
                        log.exception("listing RBAC objects failed; retrying")
                        await asyncio.sleep(1.0)
                        continue
                    self._mark(set(self._cluster_roles))
                watch = self._watch
                assert watch is not None
                try:
                    async for event in watch:
                        self._apply([event])
                        self.catch_up()
                except storage_errors.StorageError as exc:
                    log.info("RBAC watch lost (%s); relisting", type(exc).__name__)
                self._watch = None
        finally:
            if self._watch is not None:
                await self._watch.close()
                self._watch = None

    def _mark(self, names: set[str]) -> None:
        if names:
            self._changed |= names
            self._dirty.set()

    async def _dispatch(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            changed, self._changed = self._changed, set()
            for listener in self._listeners:
                try:
                    await listener(changed)
                except Exception:
                    log.exception("RBAC cache listener failed")

    def _apply(self, events: list[Event]) -> None:
        changed: set[str] = set()
        for event in events:
            split = _split(event.kv.key)
            if split is not None and split[0] == "clusterroles":
                changed.add(split[2])
            if event.type == "DELETE":
                self._remove(event.kv.key)
            else:
                self._put(event.kv)
            self.revision = max(self.revision, event.revision)
        self._mark(changed)

    def _put(self, kv: KeyValue) -> None:
        split = _split(kv.key)
        if split is None:
            return
        plural, namespace, name = split
        obj = decode(kv)
        if plural == "clusterroles":
            self._cluster_roles[name] = role_from_dict(obj)
            self._cluster_role_objects[name] = (obj, kv.mod_revision)
        elif plural == "roles":
            self._roles[(namespace, name)] = role_from_dict(obj)
        elif plural == "clusterrolebindings":
            self._cluster_bindings[name] = binding_from_dict(obj)
        else:
            self._bindings.setdefault(namespace, {})[name] = binding_from_dict(obj)

    def _remove(self, key: str) -> None:
        split = _split(key)
        if split is None:
            return
        plural, namespace, name = split
        if plural == "clusterroles":
            self._cluster_roles.pop(name, None)
            self._cluster_role_objects.pop(name, None)
        elif plural == "roles":
            self._roles.pop((namespace, name), None)
        elif plural == "clusterrolebindings":
            self._cluster_bindings.pop(name, None)
        else:
            in_namespace = self._bindings.get(namespace)
            if in_namespace is not None:
                in_namespace.pop(name, None)
                if not in_namespace:
                    del self._bindings[namespace]
