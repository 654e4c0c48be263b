"""An in-memory API server for the cloud controllers' unit tests: merge and strategic-merge
patches with resourceVersion preconditions, PUT, finalizer-aware deletes, field-selected lists,
and every write delivered at once to the controllers' informers, as a watch would."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any, cast

from ccm.settings import EXTRA_KEY, CloudSettings
from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime import (
    Controller,
    ControllerConfig,
    ControllerContext,
    EventRecorder,
    FakeClock,
    InformerFactory,
    R,
)
from controlplane.controllers.runtime.keys import key_of
from providers.capabilities import CloudProvider

Obj = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str, str]] = []  # kind, name, type, reason, message

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        self.seen.append((str(obj.get("kind", "")), str(meta.get("name", "")), type_, reason, message))

    def reasons(self, name: str | None = None) -> list[str]:
        return [r for _, n, _, r, _ in self.seen if name is None or n == name]

    def find(self, reason: str) -> list[tuple[str, str, str, str, str]]:
        return [e for e in self.seen if e[3] == reason]


class FakeAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}  # (plural, key) -> object
        self.rv = itertools.count(100)
        self.factory: InformerFactory | None = None
        self.writes: list[tuple[str, str, str]] = []  # (verb, plural, key)
        self.uids = itertools.count(1)

    # -- test helpers -----------------------------------------------------------------------

    def _deliver(self, rp: ResourcePath, event: str, obj: Obj) -> None:
        if self.factory is None:
            return
        for informer in self.factory.all():
            if informer.rp == rp:
                informer.apply(event, copy.deepcopy(obj))

    def sync(self) -> None:
        """What the informers' first list delivers."""
        for (plural, _), obj in sorted(self.objects.items()):
            self._deliver(_rp(plural), "ADDED", obj)

    def add(self, rp: ResourcePath, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self.uids)}")
        meta["resourceVersion"] = str(next(self.rv))
        meta.setdefault("generation", 1)
        obj.setdefault("kind", "Node" if rp == R.NODES else "Service")
        obj.setdefault("apiVersion", "v1")
        self.objects[(rp.plural, key_of(obj))] = obj
        self._deliver(rp, "ADDED", obj)
        return copy.deepcopy(obj)

    def obj(self, rp: ResourcePath, key: str) -> Obj | None:
        return self.objects.get((rp.plural, key))

    def remove(self, rp: ResourcePath, key: str) -> None:
        """Gone without any controller's say (as a forced deletion)."""
        obj = self.objects.pop((rp.plural, key))
        self._deliver(rp, "DELETED", obj)

    # -- the Client surface the controllers use -------------------------------------------------

    def _get(self, rp: ResourcePath, name: str, namespace: str | None) -> Obj:
        key = f"{namespace}/{name}" if rp.namespaced and namespace else name
        found = self.objects.get((rp.plural, key))
        if found is None:
            raise errors.NotFound(message=f'{rp.plural} "{name}" not found')
        return found

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> Obj:
        return copy.deepcopy(self._get(rp, name, namespace))

    async def list(self, rp: ResourcePath, namespace: str | None = None, *, params: Any = None) -> Obj:
        items = [
            copy.deepcopy(o)
            for (plural, _), o in self.objects.items()
            if plural == rp.plural and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        selector = (params or {}).get("fieldSelector", "")
        if selector.startswith("metadata.name="):
            items = [o for o in items if o["metadata"]["name"] == selector.split("=", 1)[1]]
        return {"kind": "List", "metadata": {"resourceVersion": str(next(self.rv))}, "items": items}

    def _store(self, rp: ResourcePath, obj: Obj, *, verb: str) -> Obj:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(next(self.rv))
        key = key_of(obj)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.objects.pop((rp.plural, key), None)
            self.writes.append(("delete", rp.plural, key))
            self._deliver(rp, "DELETED", obj)
            return copy.deepcopy(obj)
        self.objects[(rp.plural, key)] = obj
        self.writes.append((verb, rp.plural, key))
        self._deliver(rp, "MODIFIED", obj)
        return copy.deepcopy(obj)

    async def patch(
        self,
        rp: ResourcePath,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        patch_type: str = "application/merge-patch+json",
        params: Any = None,
    ) -> Obj:
        current = self._get(rp, name, namespace)
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="the object has been modified")
        patch = copy.deepcopy(patch)
        if patch_type == STRATEGIC:
            conditions = (patch.get("status") or {}).pop("conditions", None)
            updated = merge(current, patch)
            if conditions is not None:
                existing = [
                    c
                    for c in updated.get("status", {}).get("conditions", [])
                    if c["type"] not in {x["type"] for x in conditions}
                ]
                updated.setdefault("status", {})["conditions"] = existing + conditions
        else:
            updated = merge(current, patch)
        if subresource == "status":
            updated = {**current, "status": updated.get("status", {})}
        else:
            updated["status"] = copy.deepcopy(current.get("status", {}))
        return self._store(rp, updated, verb=f"patch{'/' + subresource if subresource else ''}")

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Obj:
        assert method == "PUT" and path.startswith("/api/v1/nodes/"), (method, path)
        name = path.rsplit("/", 1)[1]
        current = self._get(R.NODES, name, None)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="the object has been modified")
        updated = copy.deepcopy(body)
        updated["status"] = copy.deepcopy(current.get("status", {}))
        return self._store(R.NODES, updated, verb="update")

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> Obj | None:
        current = copy.deepcopy(self._get(rp, name, namespace))
        uid = ((options or {}).get("preconditions") or {}).get("uid")
        if uid and uid != current["metadata"]["uid"]:
            raise errors.Conflict(message="precondition failed: UID mismatch")
        current["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return self._store(rp, current, verb="delete")


def _rp(plural: str) -> ResourcePath:
    return {"nodes": R.NODES, "services": R.SERVICES}[plural]


def make(
    cls: type[Controller], api: FakeAPI, settings: CloudSettings, clock: FakeClock | None = None
) -> tuple[Any, Events]:
    """The controller on the fake API, its informers primed with what the API holds."""
    client = cast(Client, api)
    factory = InformerFactory(client)
    api.factory = factory
    events = Events()
    ctx = ControllerContext(
        client=client,
        informers=factory,
        recorder=cast(EventRecorder, events),
        clock=clock or FakeClock(),
        config=ControllerConfig(cluster_cidr=settings.cluster_cidr, extra={EXTRA_KEY: settings}),
    )
    controller = cls(ctx)
    api.sync()
    return controller, events


def settings_for(provider: CloudProvider, **kw: Any) -> CloudSettings:
    return CloudSettings(provider=provider, cluster_id="test", cluster_cidr="10.244.0.0/16", **kw)


def ready(status: str = "True") -> Obj:
    return {"conditions": [{"type": "Ready", "status": status, "reason": "KubeletReady"}]}


def drain(controller: Controller) -> Iterator[str]:
    """The keys queued now (not waiting on a delay)."""
    while len(controller.queue):
        key = controller.queue._queue.popleft()
        controller.queue._dirty.discard(key)
        yield key
