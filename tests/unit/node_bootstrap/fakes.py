"""An in-memory API server surface for the node agent's unit tests (no network)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controlplane.api import errors
from controlplane.api.patch import merge_patch
from controlplane.client import ResourcePath
from node_bootstrap.agent.clock import FakeClock

Obj = dict[str, Any]


async def settle(rounds: int = 30) -> None:
    """Let every ready task run a few steps (fake time does not move)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def tick(clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Move fake time forward in steps, letting tasks run after each."""
    while seconds > 0:
        clock.advance(min(step, seconds))
        seconds -= step
        await settle()


def _matches(obj: Obj, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            field, value = term.split("!=", 1)
            negate = True
        else:
            field, value = term.split("=", 1)
            negate = False
        current: Any = obj
        for part in field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        equal = str(current or "") == value
        if equal == negate:
            return False
    return True


class FakeApi:
    """Objects by (plural, namespace, name); every write bumps one revision and feeds watches."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self._rv = itertools.count(1)
        self._watchers: list[tuple[str, str, asyncio.Queue[Obj]]] = []
        self.calls: list[tuple[str, str, str, Any]] = []
        self.fail_next: dict[str, errors.StatusError] = {}

    # -- helpers for tests -------------------------------------------------------------------

    def obj(self, plural: str, name: str, namespace: str = "") -> Obj | None:
        return self.objects.get((plural, namespace, name))

    def calls_of(self, verb: str, plural: str) -> list[tuple[str, str, str, Any]]:
        return [c for c in self.calls if c[0] == verb and c[1] == plural]

    def put_object(self, plural: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        return self._store(plural, obj, "ADDED")

    def modify(self, plural: str, name: str, namespace: str, fn: Any) -> Obj:
        obj = copy.deepcopy(self.objects[(plural, namespace, name)])
        fn(obj)
        return self._store(plural, obj, "MODIFIED")

    def _store(self, plural: str, obj: Obj, event: str) -> Obj:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self._rv))
        key = (plural, str(meta.get("namespace") or ""), str(meta["name"]))
        self.objects[key] = obj
        self._emit(plural, event, obj)
        return copy.deepcopy(obj)

    def _emit(self, plural: str, event: str, obj: Obj) -> None:
        for watched, selector, queue in self._watchers:
            if watched == plural and _matches(obj, selector):
                queue.put_nowait({"type": event, "object": copy.deepcopy(obj)})

    def _get(self, rp: ResourcePath, name: str, namespace: str | None) -> Obj:
        obj = self.objects.get((rp.plural, namespace or "", name))
        if obj is None:
            raise errors.NotFound(message=f'{rp.plural} "{name}" not found', name=name, kind=rp.plural)
        return obj

    def _maybe_fail(self, verb: str, plural: str) -> None:
        exc = self.fail_next.pop(f"{verb} {plural}", None)
        if exc is not None:
            raise exc

    # -- the Api protocol --------------------------------------------------------------------

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> Obj:
        self.calls.append(("get", rp.plural, name, None))
        return copy.deepcopy(self._get(rp, name, namespace))

    async def list(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> Obj:
        selector = (params or {}).get("fieldSelector", "")
        items = [
            copy.deepcopy(o)
            for (plural, ns, _), o in self.objects.items()
            if plural == rp.plural and (namespace is None or ns == namespace) and _matches(o, selector)
        ]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._rv))}}

    async def create(self, rp: ResourcePath, obj: Obj, namespace: str | None = None) -> Obj:
        self.calls.append(("create", rp.plural, obj["metadata"]["name"], obj))
        self._maybe_fail("create", rp.plural)
        key = (rp.plural, namespace or "", obj["metadata"]["name"])
        if key in self.objects:
            raise errors.AlreadyExists(
                message=f'{rp.plural} "{key[2]}" already exists', name=key[2], kind=rp.plural
            )
        new = copy.deepcopy(obj)
        if namespace:
            new["metadata"]["namespace"] = namespace
        if rp.plural == "nodes":
            new["status"] = {}  # as Pinnace does: status is the status subresource's business
        return self.put_object(rp.plural, new)

    async def patch(
        self,
        rp: ResourcePath,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        patch_type: str = "application/merge-patch+json",
        params: Mapping[str, str] | None = None,
    ) -> Obj:
        self.calls.append(("patch", rp.plural + (f"/{subresource}" if subresource else ""), name, patch))
        self._maybe_fail("patch", rp.plural)
        current = self._get(rp, name, namespace)
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict.modified(rp.plural, rp.group, name)
        body = copy.deepcopy(patch)
        body.get("metadata", {}).pop("resourceVersion", None)
        if subresource == "status":
            body = {"status": body.get("status") or {}}
        if patch_type.startswith("application/strategic") and "status" in body:
            # Conditions merge by type, as the schema's patchMergeKey says.
            old = {c["type"]: c for c in (current.get("status") or {}).get("conditions") or []}
            for cond in body["status"].get("conditions") or []:
                old[cond["type"]] = cond
            merged = merge_patch.apply(current, {k: v for k, v in body.items()})
            merged["status"]["conditions"] = list(old.values())
        else:
            merged = merge_patch.apply(current, body)
        return self._store(rp.plural, merged, "MODIFIED")

    async def delete(
        self,
        rp: ResourcePath,
        name: str,
        namespace: str | None = None,
        *,
        options: dict[str, Any] | None = None,
    ) -> Obj | None:
        self.calls.append(("delete", rp.plural, name, options))
        current = self._get(rp, name, namespace)
        uid = ((options or {}).get("preconditions") or {}).get("uid")
        if uid and uid != current["metadata"]["uid"]:
            raise errors.Conflict(message="Precondition failed: UID", name=name, kind=rp.plural)
        del self.objects[(rp.plural, namespace or "", name)]
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = str(next(self._rv))
        self._emit(rp.plural, "DELETED", gone)
        return gone

    async def watch(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Obj]:
        queue: asyncio.Queue[Obj] = asyncio.Queue()
        entry = (rp.plural, (params or {}).get("fieldSelector", ""), queue)
        self._watchers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(entry)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        # Only what the agent uses: PUT of a namespaced object (the Lease).
        assert method == "PUT", method
        parts = path.strip("/").split("/")
        namespace, plural, name = parts[-3], parts[-2], parts[-1]
        self.calls.append(("put", plural, name, body))
        self._maybe_fail("put", plural)
        current = self.objects.get((plural, namespace, name))
        if current is None:
            raise errors.NotFound(message=f'{plural} "{name}" not found', name=name, kind=plural)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise errors.Conflict.modified(plural, "", name)
        new = copy.deepcopy(body)
        new["metadata"]["uid"] = current["metadata"]["uid"]
        return self._store(plural, new, "MODIFIED")
