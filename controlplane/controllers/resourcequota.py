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
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.api.quota import (
    PODS,
    PVCS,
    SERVICES,
    Evaluator,
    GroupResource,
    ScopeSelector,
    calculate_usage,
    evaluator_for,
    hard_limits,
    resources_for_quota,
)
from controlplane.client import ResourcePath
from controlplane.controllers.resourcequota_usage import quota_status
from controlplane.controllers.runtime import Controller, Informer, R, key_of, split_key

__all__ = ["ResourceQuotaController"]

Obj = Mapping[str, Any]

SYNC_PERIOD = 300.0
# How long a sync waits for a newly started informer's first list.
INFORMER_SYNC_TIMEOUT = 5.0

_KNOWN_PATHS = {
    PODS: R.PODS,
    SERVICES: R.SERVICES,
    PVCS: R.PVCS,
    GroupResource("", "configmaps"): R.CONFIGMAPS,
    GroupResource("", "secrets"): R.SECRETS,
    GroupResource("", "replicationcontrollers"): R.REPLICATIONCONTROLLERS,
    GroupResource("", "resourcequotas"): R.RESOURCEQUOTAS,
}


# The scopes a pod can move in or out of while it lives (a class or affinity never changes).
_SCOPE_PROBES = (ScopeSelector("Terminating"), ScopeSelector("BestEffort"))


def _usage_key(evaluator: Evaluator, obj: Obj | None, now: datetime) -> Any:
    """What about an object matters to quota: what it charges, and which scopes it falls in."""
    if obj is None:
        return None
    try:
        usage = evaluator.usage(obj, now)
        scopes = tuple(evaluator.matches_scope(probe, obj) for probe in _SCOPE_PROBES)
    except ValueError:
        return None
    return usage, scopes


class ResourceQuotaController(Controller):
    name = "resourcequota"
    event_source = "resourcequota-controller"
    workers = 5

    def setup(self) -> None:
        informers = self.ctx.informers
        self.quotas = informers.informer(R.RESOURCEQUOTAS)
        self.quotas.add_handler(self._on_quota)
        self.watched: dict[GroupResource, Informer] = {}
        self.paths: dict[GroupResource, ResourcePath | None] = {}
        for resource in (PODS, SERVICES, PVCS):
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
            hard = hard_limits(new)
            stale = (
                set(hard) - set(status.get("used") or {}) or (status.get("hard") or {}).keys() != hard.keys()
            )
            if not spec_changed and not stale:
                return  # our own status write coming back
        self.enqueue_obj(new)

    def _on_object(
        self, resource: GroupResource, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        quotas = self.quotas.list(namespace)
        if not quotas:
            return  # the usual case, and the cheap question: nothing to charge the change to
        evaluator = evaluator_for(resource)
        if event == "MODIFIED":
            now = self.ctx.clock.now()
            if _usage_key(evaluator, old, now) == _usage_key(evaluator, new, now):
                return
        for quota in quotas:
            if evaluator.matching_resources((quota.get("spec") or {}).get("hard") or {}):
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
        for resource in resources_for_quota((quota.get("spec") or {}).get("hard") or {}):
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
