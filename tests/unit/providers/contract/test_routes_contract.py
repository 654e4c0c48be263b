"""Routes: one per pod CIDR in every route table of the cluster, next hop an instance."""

from __future__ import annotations

import pytest

from providers.capabilities import Routes
from providers.errors import InvalidConfiguration, NotFound
from providers.model import Instance, Route
from tests.unit.providers.contract.harness import ContractCloud, machine_owner, node_for


def _routes(cloud: ContractCloud) -> Routes:
    return cloud.provider.require(cloud.provider.routes, "routes")


async def _instance(cloud: ContractCloud, name: str) -> Instance:
    instances = cloud.provider.require(cloud.provider.instances, "instances")
    return await instances.create_instance(
        cloud.config.cluster_id, cloud.helpers.instance_spec(name, machine_owner(name))
    )


def _route_to(instance: Instance, cidr: str) -> Route:
    node = node_for(instance)
    return Route(destination_cidr=cidr, target_node=node.name, target_provider_id=instance.provider_id)


async def test_create_list_delete_round_trip(cloud: ContractCloud) -> None:
    routes = _routes(cloud)
    cluster = cloud.config.cluster_id
    instance = await _instance(cloud, "node-a")
    node = node_for(instance)
    await routes.create_route(cluster, node.uid, _route_to(instance, "10.244.1.0/24"))
    listed = [r for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.1.0/24"]
    assert listed, "the route was not listed"
    for route in listed:
        assert route.target_node == node.name
        assert route.target_provider_id == instance.provider_id
        assert not route.blackhole
        assert route.route_table
    await routes.delete_route(cluster, listed[0])
    remaining = [r for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.1.0/24"]
    assert [r.route_table for r in remaining] == [r.route_table for r in listed[1:]]
    for route in listed:
        await routes.delete_route(cluster, route)
        await routes.delete_route(cluster, route)
    assert not [r for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.1.0/24"]


async def test_create_is_idempotent(cloud: ContractCloud) -> None:
    routes = _routes(cloud)
    cluster = cloud.config.cluster_id
    instance = await _instance(cloud, "node-b")
    route = _route_to(instance, "10.244.2.0/24")
    await routes.create_route(cluster, "uid-b", route)
    first = await routes.list_routes(cluster)
    await routes.create_route(cluster, "uid-b", route)
    assert await routes.list_routes(cluster) == first


async def test_a_route_goes_into_every_route_table_of_the_cluster(cloud: ContractCloud) -> None:
    routes = _routes(cloud)
    cluster = cloud.config.cluster_id
    instance = await _instance(cloud, "node-c")
    await routes.create_route(cluster, "uid-c", _route_to(instance, "10.244.3.0/24"))
    before = {r.route_table for r in await routes.list_routes(cluster)}
    extra = await cloud.helpers.add_route_table(cluster)
    await routes.create_route(cluster, "uid-c", _route_to(instance, "10.244.3.0/24"))
    tables = {
        r.route_table for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.3.0/24"
    }
    assert tables == before | {extra}
    await routes.delete_route(
        cluster, Route(destination_cidr="10.244.3.0/24", target_node=node_for(instance).name)
    )
    assert not [r for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.3.0/24"]


async def test_create_replaces_the_next_hop(cloud: ContractCloud) -> None:
    routes = _routes(cloud)
    cluster = cloud.config.cluster_id
    old = await _instance(cloud, "node-old")
    new = await _instance(cloud, "node-new")
    await routes.create_route(cluster, "uid-old", _route_to(old, "10.244.4.0/24"))
    await routes.create_route(cluster, "uid-new", _route_to(new, "10.244.4.0/24"))
    listed = [r for r in await routes.list_routes(cluster) if r.destination_cidr == "10.244.4.0/24"]
    assert listed
    assert {r.target_provider_id for r in listed} == {new.provider_id}


async def test_malformed_cidr_is_invalid(cloud: ContractCloud) -> None:
    instance = await _instance(cloud, "node-d")
    with pytest.raises(InvalidConfiguration):
        await _routes(cloud).create_route(
            cloud.config.cluster_id, "uid-d", _route_to(instance, "10.244.300.0/24")
        )


async def test_deleting_a_route_that_never_existed_succeeds(cloud: ContractCloud) -> None:
    await _routes(cloud).delete_route(cloud.config.cluster_id, Route(destination_cidr="10.244.99.0/24"))


async def test_a_route_to_an_unknown_instance_is_not_found(cloud: ContractCloud) -> None:
    route = Route(
        destination_cidr="10.244.98.0/24",
        target_node="ghost",
        target_provider_id=cloud.helpers.unknown_provider_id(),
    )
    with pytest.raises(NotFound):
        await _routes(cloud).create_route(cloud.config.cluster_id, "uid-ghost", route)
    assert not [
        r
        for r in await _routes(cloud).list_routes(cloud.config.cluster_id)
        if r.destination_cidr == "10.244.98.0/24"
    ]
