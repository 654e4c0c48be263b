"""EndpointSlice controller (upstream pkg/controller/endpointslice): the EndpointSlices of every
Service with a selector, per address type, at most max_endpoints_per_slice endpoints each, kept
with minimal churn by the pure reconciler in endpointslice_reconciler.

A tracker remembers the version of every slice this controller wrote, so (1) its own writes
coming back through the informer do not trigger another sync, while anybody else's change to a
managed slice does, and (2) a sync never acts on a cache older than its own last write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.api import errors
from controlplane.controllers.endpointslice_reconciler import (
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    MANAGED_BY,
    reconcile,
)
from controlplane.controllers.endpointslice_util import (
    TriggerTimeTracker,
    managed_selector,
    selected_pods,
    services_for_pod_event,
    set_trigger_time,
)
from controlplane.controllers.runtime import Controller, R, key_of, split_key
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["EndpointSliceController", "EndpointSliceTracker"]

Obj = Mapping[str, Any]

# Upstream endpointSliceChangeMinSyncDelay: slice events are batched a little.
SLICE_CHANGE_MIN_SYNC_DELAY = 1.0
# A cache older than our own last write: look again shortly.
STALE_RETRY = 0.1
_DELETION_EXPECTED = -1


def _version(endpoint_slice: Obj) -> int:
    """The slice's position in the store's history. The resourceVersion is the store's global
    revision, so it orders every write (a metadata-only one too) without needing generations."""
    try:
        return int((endpoint_slice.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _service_key(endpoint_slice: Obj) -> str | None:
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
    return f"{meta.get('namespace', '')}/{name}" if name else None


class EndpointSliceTracker:
    """Upstream EndpointSliceTracker, keyed by the Service and the slice uid."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def _versions(self, endpoint_slice: Obj) -> dict[str, int] | None:
        key = _service_key(endpoint_slice)
        return self._by_service.get(key) if key else None

    def has(self, endpoint_slice: Obj) -> bool:
        versions = self._versions(endpoint_slice)
        return versions is not None and _uid(endpoint_slice) in versions

    def should_sync(self, endpoint_slice: Obj) -> bool:
        versions = self._versions(endpoint_slice)
        if versions is None or _uid(endpoint_slice) not in versions:
            return True
        return _version(endpoint_slice) > versions[_uid(endpoint_slice)]

    def stale(self, service_key: str, slices: Iterable[Obj]) -> bool:
        versions = self._by_service.get(service_key)
        if not versions:
            return False
        provided: set[str] = set()
        for endpoint_slice in slices:
            uid = _uid(endpoint_slice)
            provided.add(uid)
            known = versions.get(uid)
            if known is not None and (known == _DELETION_EXPECTED or known > _version(endpoint_slice)):
                return True
        return any(v != _DELETION_EXPECTED and uid not in provided for uid, v in versions.items())

    def update(self, endpoint_slice: Obj) -> None:
        key = _service_key(endpoint_slice)
        if key:
            self._by_service.setdefault(key, {})[_uid(endpoint_slice)] = _version(endpoint_slice)

    def expect_deletion(self, endpoint_slice: Obj) -> None:
        key = _service_key(endpoint_slice)
        if key:
            self._by_service.setdefault(key, {})[_uid(endpoint_slice)] = _DELETION_EXPECTED

    def handle_deletion(self, endpoint_slice: Obj) -> bool:
        """Forget a deleted slice; False when the deletion was not ours."""
        versions = self._versions(endpoint_slice)
        if versions is not None:
            known = versions.pop(_uid(endpoint_slice), None)
            if known is not None and known != _DELETION_EXPECTED:
                return False
        return True

    def delete_service(self, key: str) -> None:
        self._by_service.pop(key, None)


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _managed(endpoint_slice: Obj | None) -> bool:
    labels = ((endpoint_slice or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY


class EndpointSliceController(Controller):
    name = "endpointslice"
    event_source = "endpoint-slice-controller"
    workers = 5

    def setup(self) -> None:
        informers = self.ctx.informers
        self.services = informers.informer(R.SERVICES)
        self.pods = informers.informer(R.PODS)
        self.slices = informers.informer(R.ENDPOINTSLICES)
        self.nodes = informers.informer(R.NODES)
        self.tracker = EndpointSliceTracker()
        self.triggers = TriggerTimeTracker()
        self.max_endpoints = self.ctx.config.max_endpoints_per_slice
        self.batch = self.ctx.config.endpoint_updates_batch_period
        self.services.add_handler(lambda _ev, _old, new: self.enqueue_obj(new))
        self.pods.add_handler(self._on_pod)
        self.slices.add_handler(self._on_slice)

    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for key in services_for_pod_event(self.services.list, event, old, new):
            self.enqueue_after(key, self.batch)

    def _queue_for_slice(self, endpoint_slice: Obj) -> None:
        key = _service_key(endpoint_slice)
        if key:
            self.enqueue_after(key, max(SLICE_CHANGE_MIN_SYNC_DELAY, self.batch))

    def _on_slice(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "ADDED" and new is not None:
            if _managed(new) and self.tracker.should_sync(new):
                self._queue_for_slice(new)
        elif event == "MODIFIED" and old is not None and new is not None:
            if _service_key(old) != _service_key(new):
                self._queue_for_slice(new)
                self._queue_for_slice(old)
            elif _managed(old) != _managed(new) or (_managed(new) and self.tracker.should_sync(new)):
                self._queue_for_slice(new)
        elif event == "DELETED":
            gone = old or new
            # Only a deletion this controller did not make calls for another look.
            if (
                gone is not None
                and _managed(gone)
                and self.tracker.has(gone)
                and not self.tracker.handle_deletion(gone)
            ):
                self._queue_for_slice(gone)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            self.triggers.delete_service(key)
            self.tracker.delete_service(key)
            return None  # the slices go with the Service through their owner reference
        selector = managed_selector(service)
        if selector is None:
            return None

        pods = selected_pods(selector, self.pods.list(namespace))
        slices = [
            s
            for s in self.slices.list(namespace)
            if _managed(s)
            and ((s.get("metadata") or {}).get("labels") or {}).get(LABEL_SERVICE_NAME) == name
            and not (s.get("metadata") or {}).get("deletionTimestamp")
        ]
        if self.tracker.stale(key, slices):
            return STALE_RETRY
        trigger = self.triggers.compute(service, pods)
        plan = reconcile(
            service,
            pods,
            slices,
            self.nodes.get,
            max_endpoints=self.max_endpoints,
        )
        try:
            await self._finalize(service, plan.create, plan.update, plan.delete, trigger)
        except errors.Conflict:
            raise
        except errors.StatusError as exc:
            self._failed(service, exc.message)
            raise
        if plan.errors:
            message = "; ".join(plan.errors)
            self._failed(service, message)
            raise errors.InternalError(message=message)
        return None

    def _failed(self, service: Obj, message: str) -> None:
        ns, name = split_key(key_of(service))
        self.ctx.recorder.event(
            service,
            "Warning",
            "FailedToUpdateEndpointSlices",
            f"Error updating Endpoint Slices for Service {ns}/{name}: {message}",
        )

    async def _finalize(
        self,
        service: Obj,
        creates: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        deletes: list[dict[str, Any]],
        trigger: Any,
    ) -> None:
        namespace = str(service["metadata"].get("namespace", ""))
        client = self.ctx.client
        # No new slices for a Service on its way out: the garbage collector is deleting them.
        if not (service.get("metadata") or {}).get("deletionTimestamp"):
            for endpoint_slice in creates:
                _annotate(endpoint_slice, trigger)
                try:
                    created = await client.create(R.ENDPOINTSLICES, endpoint_slice, namespace)
                except errors.Forbidden as exc:
                    if namespace_terminating(exc):
                        return
                    raise
                self.tracker.update(created)
        for endpoint_slice in updates:
            _annotate(endpoint_slice, trigger)
            slice_name = endpoint_slice["metadata"]["name"]
            updated = await client.request(
                "PUT", R.ENDPOINTSLICES.url(namespace, slice_name), body=endpoint_slice
            )
            self.tracker.update(updated)
        for endpoint_slice in deletes:
            with contextlib.suppress(errors.NotFound):
                await client.delete(R.ENDPOINTSLICES, endpoint_slice["metadata"]["name"], namespace)
            self.tracker.expect_deletion(endpoint_slice)


def _annotate(endpoint_slice: dict[str, Any], trigger: Any) -> None:
    meta = endpoint_slice.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    set_trigger_time(annotations, trigger)
    meta["annotations"] = annotations
