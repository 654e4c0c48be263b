"""Inventory: what the garbage sweep sees and deletes."""

from __future__ import annotations

import contextlib

from providers.capabilities import Inventory
from providers.errors import CloudError, Conflict
from providers.model import CloudResource
from tests.unit.providers.contract.harness import ContractCloud, machine_owner, node_for, service


def _inventory(cloud: ContractCloud) -> Inventory:
    return cloud.provider.require(cloud.provider.inventory, "inventory")


async def _populate(cloud: ContractCloud, cluster: str) -> None:
    instances = cloud.provider.require(cloud.provider.instances, "instances")
    lbs = cloud.provider.require(cloud.provider.load_balancers, "load balancers")
    created = [
        await instances.create_instance(
            cluster, cloud.helpers.instance_spec(f"{cluster}-{n}", machine_owner(n))
        )
        for n in ("x", "y")
    ]
    nodes = [node_for(i) for i in created]
    await lbs.ensure_load_balancer(cluster, service("one", [("TCP", 80, 30080)]), nodes)
    await lbs.ensure_load_balancer(cluster, service("two", [("UDP", 53, 30053)]), nodes)


async def _delete_all(inventory: Inventory, cluster: str, resources: list[CloudResource]) -> None:
    """As the sweep does: what is still in use is retried after its users are gone."""
    pending = list(resources)
    for _ in range(len(pending) + 1):
        if not pending:
            return
        retry = []
        for resource in pending:
            try:
                await inventory.delete_resource(cluster, resource)
            except Conflict:
                retry.append(resource)
        pending = retry
    raise AssertionError(f"still in use after every pass: {pending}")


async def test_list_owned_sees_every_resource_and_deleting_them_leaves_nothing(cloud: ContractCloud) -> None:
    inventory = _inventory(cloud)
    cluster = cloud.config.cluster_id
    await _populate(cloud, cluster)
    resources = await inventory.list_owned(cluster)
    kinds = {r.kind for r in resources}
    assert len(kinds) >= 2, kinds
    assert all(r.owner is not None for r in resources)
    await _delete_all(inventory, cluster, resources)
    assert await inventory.list_owned(cluster) == []
    for resource in resources:  # again: idempotent
        await inventory.delete_resource(cluster, resource)


async def test_only_the_clusters_own_resources_are_listed_or_deleted(cloud: ContractCloud) -> None:
    inventory = _inventory(cloud)
    cluster = cloud.config.cluster_id
    await _populate(cloud, "another-cluster")
    assert await inventory.list_owned(cluster) == []
    theirs = await inventory.list_owned("another-cluster")
    assert theirs
    for resource in theirs:
        with contextlib.suppress(CloudError):
            await inventory.delete_resource(cluster, resource)
    assert {(r.kind, r.id) for r in await inventory.list_owned("another-cluster")} == {
        (r.kind, r.id) for r in theirs
    }


async def test_deleting_an_unknown_resource_succeeds(cloud: ContractCloud) -> None:
    inventory = _inventory(cloud)
    cluster = cloud.config.cluster_id
    await _populate(cloud, cluster)
    for resource in await inventory.list_owned(cluster):
        ghost = CloudResource(kind=resource.kind, id=resource.id + "-gone", name="ghost")
        await inventory.delete_resource(cluster, ghost)
