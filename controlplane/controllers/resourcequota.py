"""ResourceQuota controller (upstream pkg/controller/resourcequota): keeps every quota's
status.hard equal to spec.hard and status.used equal to what its namespace actually uses.

A quota is recomputed when its spec changes, when an object it counts appears, goes, or changes
in a way that changes its usage (a pod finishing, a Service changing type, a claim resized), and
on a full resync every resource_quota_sync_period (upstream --resource-quota-sync-period).
Admission (charging a create before it lands) lives in the API server; this controller is the
one that gives usage back. Objects of any kind are counted through shared informers started on
demand, for `count/<resource>.<group>`, custom resources included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.resourcequota_usage import (
    PODS,
    GroupResource,
    calculate_usage,
    evaluator_for,
    parse_hard,
    quota_status,
    resources_for_quota,
)
from controlplane.controllers.runtime import Controller, Informer, R, key_of, split_key

__all__ = ["ResourceQuotaController"]

Obj = Mapping[str, Any]

SYNC_PERIOD = 300.0
# How long a sync waits for a newly started informer's first list.
INFORMER_SYNC_TIMEOUT = 5.0

_KNOWN_PATHS = {
    PODS: R.PODS,
    GroupResource("", "services"): R.SERVICES,
    GroupResource("", "persistentvolumeclaims"): R.PVCS,
    GroupResource("", "configmaps"): R.CONFIGMAPS,
    GroupResource("", "secrets"): R.SECRETS,
    GroupResource("", "replicationcontrollers"): R.REPLICATIONCONTROLLERS,
    GroupResource("", "resourcequotas"): R.RESOURCEQUOTAS,
}


def _usage_key(evaluator_resource: GroupResource, obj: Obj | None) -> Any:
    """What about an object matters to quota: its usage, and for pods the scope-relevant facts."""
    if obj is None:
        return None
    spec = obj.get("spec") or {}
    if evaluator_resource == PODS:
        return (
            (obj.get("status") or {}).get("phase"),
            (obj.get("metadata") or {}).get("deletionTimestamp"),
            spec.get("containers"),
            spec.get("initContainers"),
            spec.get("overhead"),
            spec.get("activeDeadlineSeconds"),
            spec.get("priorityClassName"),
            spec.get("resources"),
        )
    return (spec, (obj.get("status") or {}).get("allocatedResources"))


class ResourceQuotaController(Controller):
    name = "resourcequota"
    workers = 5

    def setup(self) -> None:
        informers = self.ctx.informers
        self.quotas = informers.informer(R.RESOURCEQUOTAS)
        self.quotas.add_handler(self._on_quota)
        self.watched: dict[GroupResource, Informer] = {}
        self.paths: dict[GroupResource, ResourcePath | None] = {}
        for resource in (PODS, GroupResource("", "services"), GroupResource("", "persistentvolumeclaims")):
            self._watch(resource, _KNOWN_PATHS[resource])
        self.sync_period = float(self.ctx.config.extra.get("resource_quota_sync_period", SYNC_PERIOD))

    def _watch(self, resource: GroupResource, rp: ResourcePath) -> Informer:
        informer = self.watched.get(resource)
        if informer is None:
            informer = self.ctx.informers.informer(rp)
            self.watched[resource] = informer
            self.paths[resource] = rp
            informer.add_handler(lambda ev, old, new: self._on_object(resource, ev, old, new))
        return informer

    def _on_quota(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED" or new is None:
            return
        if event == "MODIFIED" and old is not None:
            spec_changed = (old.get("spec") or {}) != (new.get("spec") or {})
            status = new.get("status") or {}
            hard = parse_hard(new)
            stale = (
                set(hard) - set(status.get("used") or {}) or (status.get("hard") or {}).keys() != hard.keys()
            )
            if not spec_changed and not stale:
                return  # our own status write coming back
        self.enqueue_obj(new)

    def _on_object(
        self, resource: GroupResource, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        if event == "MODIFIED" and _usage_key(resource, old) == _usage_key(resource, new):
            return
        obj = new if new is not None else old
        if obj is None:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        evaluator = evaluator_for(resource)
        for quota in self.quotas.list(namespace):
            if evaluator.matching((quota.get("spec") or {}).get("hard") or {}):
                self.enqueue(key_of(quota))

    async def run_extra(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.ctx.clock.sleep(self.sync_period)
            for quota in self.quotas.list():
                self.enqueue_obj(quota)

    async def _path_for(self, resource: GroupResource) -> ResourcePath | None:
        """The resource's path at its group's preferred version, found through discovery."""
        if resource in self.paths:
            return self.paths[resource]
        rp = _KNOWN_PATHS.get(resource)
        if rp is None:
            rp = await self._discover(resource)
        self.paths[resource] = rp
        return rp

    async def _discover(self, resource: GroupResource) -> ResourcePath | None:
        client = self.ctx.client
        try:
            if not resource.group:
                doc = await client.request("GET", "/api/v1")
                version = "v1"
            else:
                group = await client.request("GET", f"/apis/{resource.group}")
                version = str((group.get("preferredVersion") or {}).get("version") or "")
                doc = await client.request("GET", f"/apis/{resource.group}/{version}")
        except errors.StatusError:
            return None
        for res in doc.get("resources") or []:
            if res.get("name") == resource.resource and res.get("namespaced"):
                return ResourcePath(resource.group, version, resource.resource)
        return None

    async def reconcile(self, key: str) -> float | None:
        quota = self.quotas.get(key)
        if quota is None:
            return None
        namespace, name = split_key(key)
        available: dict[GroupResource, list[Obj]] = {}
        for resource in resources_for_quota(parse_hard(quota)):
            informer = self.watched.get(resource)
            if informer is None:
                rp = await self._path_for(resource)
                if rp is None:
                    continue
                informer = self._watch(resource, rp)
            if not informer.synced:
                try:
                    await asyncio.wait_for(informer.wait_synced(), INFORMER_SYNC_TIMEOUT)
                except TimeoutError:
                    continue
            available[resource] = list(informer.list(namespace))
        usage, _unmeasured = calculate_usage(quota, available.get, self.ctx.clock.now())
        status, dirty = quota_status(quota, usage)
        if not dirty:
            return None
        body = {**quota, "status": status}
        await self.ctx.client.request("PUT", R.RESOURCEQUOTAS.url(namespace, name, "status"), body=body)
        return None
