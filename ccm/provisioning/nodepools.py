"""One NodePool: as many Machines as it asks for, spread over its zones, failed ones replaced
within `remediation.maxUnhealthy`, and a status the scale subresource and `kubectl get` read.

Machines are created as objects (with the finalizer already on, so none can vanish without its
instance being terminated) before any instance exists; their instances are the Machine
reconciler's business. Scale-down deletes Machines; their finalizer drains and terminates.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.conditions import find_condition
from ccm.provisioning.context import MACHINES, NODEPOOLS, Context
from ccm.provisioning.machines import FINALIZER
from ccm.provisioning.planning import MachineView, machine_name, plan_scale, pool_status, random_suffix
from ccm.provisioning.poolspec import PoolSpec, pool_selector
from ccm.provisioning.remediation import plan_remediation
from controlplane.api import errors
from providers.errors import CloudError

__all__ = ["NodePoolReconciler", "machine_object"]

log = logging.getLogger("pinnace.provisioner.nodepools")


def machine_object(pool_obj: Mapping[str, Any], pool: PoolSpec, name: str, zone: str) -> dict[str, Any]:
    meta = pool_obj.get("metadata") or {}
    spec: dict[str, Any] = {
        "nodePool": pool.name,
        "provider": pool.provider,
        "instanceType": pool.instance_type,
        "image": pool.image,
        "os": pool.os,
        "zone": zone,
        "subnet": pool.subnet_for(zone),
        "kubernetesVersion": pool.kubernetes_version,
    }
    return {
        "apiVersion": api.API_VERSION,
        "kind": "Machine",
        "metadata": {
            "name": name,
            "labels": {api.LABEL_NODE_POOL: pool.name},
            "finalizers": [FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": api.API_VERSION,
                    "kind": "NodePool",
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {k: v for k, v in spec.items() if v != ""},
    }


def _owner_uid(machine: Mapping[str, Any]) -> str:
    for ref in (machine.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == "NodePool" and ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


class NodePoolReconciler:
    def __init__(self, ctx: Context, *, rng: random.Random | None = None) -> None:
        self.ctx = ctx
        self._rng = rng
        self._provider_zones: tuple[str, ...] | None = None

    async def _zones(self, pool: PoolSpec) -> tuple[str, ...]:
        """The zones new Machines spread over: the pool's own, else every zone the provider
        offers (as cluster-api's failure domains and Karpenter's zone spread do), listed once.
        A pool naming subnets but no zones is left to its subnets: a subnet sits in one zone,
        so spreading those Machines elsewhere would only make instances that cannot launch."""
        if pool.zones or pool.subnets:
            return pool.zones
        if self._provider_zones is None:
            capability = self.ctx.settings.provider.zones
            if capability is None:
                self._provider_zones = ()
            else:
                try:
                    listed = await capability.list_zones()
                except CloudError as exc:
                    log.warning("cannot list the provider's zones (trying again next time): %s", exc)
                    return ()
                self._provider_zones = tuple(
                    dict.fromkeys(z.failure_domain for z in listed if z.failure_domain)
                )
        return tuple(z for z in self._provider_zones if z not in self.ctx.unusable_zones)

    def _view(self, machine: Mapping[str, Any]) -> MachineView:
        """A Machine counts as ready when it is Running and its Node is Ready now (the Node watch
        is fresher than the Machine's NodeReady condition, written on its last pass)."""
        view = MachineView.from_object(machine)
        provider_id = str((machine.get("status") or {}).get("providerID") or "")
        node_ready = self.ctx.nodes.node_ready(provider_id)
        if node_ready is None:
            return view
        return replace(view, ready=view.phase == api.MachinePhase.RUNNING and node_ready)

    async def _machines(self, pool_name: str) -> list[dict[str, Any]]:
        listing = await self.ctx.client.list(
            MACHINES, None, params={"labelSelector": pool_selector(pool_name)}
        )
        return list(listing.get("items") or [])

    async def _delete_machine(self, name: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await self.ctx.client.delete(MACHINES, name, options={"propagationPolicy": "Background"})

    async def reconcile(self, name: str) -> float | None:
        ctx = self.ctx
        try:
            pool_obj = await ctx.client.get(NODEPOOLS, name)
        except errors.NotFound:
            pool_obj = None
        machines = await self._machines(name)
        if pool_obj is None or (pool_obj.get("metadata") or {}).get("deletionTimestamp"):
            # The garbage collector would get there too (ownerReferences); not waiting for it
            # also covers a server run without controllers.
            for machine in machines:
                if not (machine.get("metadata") or {}).get("deletionTimestamp"):
                    await self._delete_machine(str(machine["metadata"]["name"]))
            return None
        pool = PoolSpec.from_object(pool_obj)
        if pool.provider and pool.provider != ctx.settings.provider.name:
            ctx.recorder.event(
                pool_obj,
                "Warning",
                "UnsupportedProvider",
                f"provider {pool.provider!r} is not the one this operator runs ({ctx.settings.provider.name!r})",
            )
            return None
        owned: list[dict[str, Any]] = []
        strays: list[dict[str, Any]] = []
        for machine in machines:
            (owned if _owner_uid(machine) == pool.uid else strays).append(machine)
        for stray in strays:  # left by an earlier pool of the same name
            if not stray["metadata"].get("deletionTimestamp"):
                await self._delete_machine(str(stray["metadata"]["name"]))
        views = [self._view(m) for m in owned]

        remediation = plan_remediation(views, pool.max_unhealthy)
        by_name = {m["metadata"]["name"]: m for m in owned}
        for target in remediation.delete:
            machine = by_name[target]
            reason = (machine.get("status") or {}).get("failureMessage") or "failed"
            ctx.recorder.event(machine, "Normal", "Remediating", f"Replacing Machine {target}: {reason}")
            ctx.recorder.event(pool_obj, "Normal", "Remediating", f"Replacing failed Machine {target}")
            await self._delete_machine(target)
        status = pool_obj.get("status") or {}
        previous = find_condition(status.get("conditions"), "RemediationAllowed")
        if remediation.blocked and (previous is None or previous.get("status") != "False"):
            ctx.recorder.event(pool_obj, "Warning", "RemediationRestricted", remediation.blocked)
        views = [replace(v, deleting=True) if v.name in remediation.delete else v for v in views]

        plan = plan_scale(pool.replicas, views, await self._zones(pool))
        for zone in plan.create_zones:
            created = await self._create_machine(pool_obj, pool, zone)
            views.append(MachineView.from_object(created))
        for target in plan.delete:
            ctx.recorder.event(
                pool_obj, "Normal", "MachineDeleted", f"Scaling down: deleting Machine {target}"
            )
            await self._delete_machine(target)
        views = [replace(v, deleting=True) if v.name in plan.delete else v for v in views]

        wanted = pool_status(
            pool, views, status.get("conditions"), ctx.now(), remediation_blocked=remediation.blocked
        )
        if any(status.get(k) != v for k, v in wanted.items()):
            await ctx.client.patch(NODEPOOLS, name, {"status": wanted}, subresource="status")
        return ctx.settings.running_resync_interval

    async def _create_machine(self, pool_obj: Mapping[str, Any], pool: PoolSpec, zone: str) -> dict[str, Any]:
        for _ in range(5):
            name = machine_name(pool.name, random_suffix(self._rng))
            try:
                created = await self.ctx.client.create(MACHINES, machine_object(pool_obj, pool, name, zone))
            except errors.AlreadyExists:
                continue
            where = f" in {zone}" if zone else ""
            self.ctx.recorder.event(pool_obj, "Normal", "MachineCreated", f"Created Machine {name}{where}")
            self.ctx.enqueue_machine(name)
            return created
        raise errors.AlreadyExists(message=f"no free Machine name for pool {pool.name}")
