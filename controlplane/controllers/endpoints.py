"""Endpoints controller (upstream pkg/controller/endpoint): one Endpoints object per Service with a
selector, listing the ready and not-ready addresses of the matching pods.

Services without a selector keep hand-managed Endpoints; a deleted Service takes its Endpoints
with it; Endpoints left behind by a Service deleted while the controller was down are found by
one sweep at start-up. The pure part lives in endpoints_subsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.controllers.endpoints_subsets import (
    OVER_CAPACITY,
    TRUNCATED,
    capacity_annotation_set_correctly,
    desired_subsets,
    normalize_subsets,
    truncate,
)
from controlplane.controllers.endpointslice_util import (
    HEADLESS_LABEL,
    TriggerTimeTracker,
    is_service_ip_set,
    managed_selector,
    selected_pods,
    services_for_pod_event,
    set_trigger_time,
)
from controlplane.controllers.runtime import Controller, R, key_of, split_key
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["EndpointsController"]

Obj = Mapping[str, Any]

# Set on the Endpoints that old leader election used; they have no Service and must survive.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


class EndpointsController(Controller):
    name = "endpoints"
    event_source = "endpoint-controller"
    workers = 5

    def setup(self) -> None:
        informers = self.ctx.informers
        self.services = informers.informer(R.SERVICES)
        self.pods = informers.informer(R.PODS)
        self.endpoints = informers.informer(R.ENDPOINTS)
        self.tracker = TriggerTimeTracker()
        self.batch = self.ctx.config.endpoint_updates_batch_period
        self.services.add_handler(lambda _ev, _old, new: self.enqueue_obj(new))
        self.pods.add_handler(self._on_pod)
        self.endpoints.add_handler(self._on_endpoints)

    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for key in services_for_pod_event(self.services.list, event, old, new):
            self.enqueue_after(key, self.batch)

    def _on_endpoints(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED":
            self.enqueue_obj(old or new)

    async def run_extra(self, stop: asyncio.Event) -> None:
        # Endpoints whose Service went away while no controller was running: their keys find no
        # Service, so a sync deletes them. Steady state catches deletions through events.
        for endpoints in self.endpoints.list():
            if LEADER_ANNOTATION in ((endpoints.get("metadata") or {}).get("annotations") or {}):
                continue
            self.enqueue_obj(endpoints)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(R.ENDPOINTS, name, namespace)
            self.tracker.delete_service(key)
            return None
        selector = managed_selector(service)
        if selector is None:
            return None

        pods = selected_pods(selector, self.pods.list(namespace))
        trigger = self.tracker.compute(service, pods)
        subsets, _ready, _not_ready = desired_subsets(service, pods)

        current = self.endpoints.get(key)
        create = current is None
        base: dict[str, Any] = (
            copy.deepcopy(current)
            if current is not None
            else {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace},
            }
        )
        meta = base.setdefault("metadata", {})
        service_labels = dict((service.get("metadata") or {}).get("labels") or {})
        if current is not None:
            compare_labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HEADLESS_LABEL}
            if (
                normalize_subsets(current.get("subsets")) == normalize_subsets(subsets)
                and compare_labels == service_labels
                and capacity_annotation_set_correctly(meta.get("annotations"), current.get("subsets") or [])
            ):
                return None

        annotations = dict(meta.get("annotations") or {})
        set_trigger_time(annotations, trigger)
        if truncate(subsets):
            annotations[OVER_CAPACITY] = TRUNCATED
        else:
            annotations.pop(OVER_CAPACITY, None)
        labels = dict(service_labels)
        if not is_service_ip_set(service):
            labels[HEADLESS_LABEL] = ""
        else:
            labels.pop(HEADLESS_LABEL, None)
        meta["labels"] = labels
        meta["annotations"] = annotations
        base["subsets"] = subsets
        if not labels:
            meta.pop("labels")

        try:
            if create:
                await self.ctx.client.create(R.ENDPOINTS, base, namespace)
            else:
                await self.ctx.client.request("PUT", R.ENDPOINTS.url(namespace, name), body=base)
        except errors.Forbidden as exc:
            if create and namespace_terminating(exc):
                return None  # creates keep failing in a terminating namespace: drop the key
            self._record_failure(base, service, create, exc)
            raise
        except errors.Conflict:
            raise
        except errors.StatusError as exc:
            self._record_failure(base, service, create, exc)
            raise
        return None

    def _record_failure(self, endpoints: Obj, service: Obj, create: bool, exc: errors.StatusError) -> None:
        ns, name = split_key(key_of(service))
        if create:
            self.ctx.recorder.event(
                endpoints,
                "Warning",
                "FailedToCreateEndpoint",
                f"Failed to create endpoint for service {ns}/{name}: {exc.message}",
            )
        else:
            self.ctx.recorder.event(
                endpoints,
                "Warning",
                "FailedToUpdateEndpoint",
                f"Failed to update endpoint {ns}/{name}: {exc.message}",
            )
