"""The orphan sweep: an instance made for a Machine that no longer exists is terminated.

An instance is only ever launched for a Machine object that already exists, so an instance whose
Machine is gone (or was replaced by another of the same name: the UID tag differs) is a leftover
of a crash or of someone removing the finalizer by hand. Owners come from the instance's own
tags, and each verdict is checked against the API server, never a cache.
"""

from __future__ import annotations

import logging

from ccm.provisioning.context import MACHINES, Context
from controlplane.api import errors
from providers.model import InstanceState
from providers.tags import owner_from_tags

__all__ = ["sweep_orphans"]

log = logging.getLogger("pinnace.provisioner.orphans")


async def sweep_orphans(ctx: Context) -> list[str]:
    """One pass; the ids of the instances it terminated."""
    cluster_id = ctx.settings.cluster_id
    terminated = []
    for instance in await ctx.instances.list_instances(cluster_id):
        owner = instance.owner or owner_from_tags(instance.tags)
        if owner is None or owner.kind != "Machine":
            continue
        if instance.state in (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED):
            continue
        try:
            machine = await ctx.client.get(MACHINES, owner.name)
        except errors.NotFound:
            machine = None
        if machine is not None and (not owner.uid or machine["metadata"].get("uid") == owner.uid):
            continue
        log.warning("terminating instance %s: its Machine %s no longer exists", instance.id, owner.name)
        await ctx.instances.delete_instance(cluster_id, instance.id)
        terminated.append(instance.id)
    return terminated
