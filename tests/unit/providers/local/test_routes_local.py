from __future__ import annotations

import pytest

from providers.errors import InvalidConfiguration, NotFound, RouteLimitExceeded
from providers.local.cloud import INSTANCE, LocalCloud
from providers.local.instances import LocalInstances
from providers.local.inventory import LocalInventory
from providers.local.routes import LocalRoutes
from providers.model import Instance, InstanceSpec, Owner, Route
from tests.unit.providers.local.conftest import MakeCloud


async def launch(cloud: LocalCloud, name: str, cluster: str = "test") -> Instance:
    owner = Owner(kind="Machine", name=name, namespace="kube-system")
    return await LocalInstances(cloud).create_instance(
        cluster, InstanceSpec(name=name, owner=owner, instance_type="t", image="i")
    )


def to(instance: Instance, cidr: str) -> Route:
    return Route(destination_cidr=cidr, target_node=instance.name, target_provider_id=instance.provider_id)


async def test_route_limit_per_table_is_a_clear_error(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(routeLimit=2)
    routes = LocalRoutes(cloud)
    node = await launch(cloud, "n")
    await routes.create_route("test", "uid", to(node, "10.244.0.0/24"))
    await routes.create_route("test", "uid", to(node, "10.244.1.0/24"))
    await routes.create_route("test", "uid", to(node, "10.244.1.0/24"))  # already there: not a new route
    with pytest.raises(RouteLimitExceeded) as caught:
        await routes.create_route("test", "uid", to(node, "10.244.2.0/24"))
    assert caught.value.code == "RouteLimitExceeded"
    assert "maximum number of routes (2)" in str(caught.value)
    assert "rtb-test-0" in str(caught.value)
    await routes.delete_route("test", Route(destination_cidr="10.244.0.0/24"))
    await routes.create_route("test", "uid", to(node, "10.244.2.0/24"))


async def test_only_the_full_table_fails(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(routeLimit=1)
    routes = LocalRoutes(cloud)
    node = await launch(cloud, "n")
    await routes.create_route("test", "uid", to(node, "10.244.0.0/24"))
    roomy = await cloud.add_route_table("test", limit=5)
    with pytest.raises(RouteLimitExceeded):
        await routes.create_route("test", "uid", to(node, "10.244.1.0/24"))
    tables = {
        r.route_table for r in await routes.list_routes("test") if r.destination_cidr == "10.244.1.0/24"
    }
    assert tables == {roomy}


async def test_a_route_to_a_terminated_instance_is_a_blackhole(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    routes = LocalRoutes(cloud)
    node = await launch(cloud, "n")
    await routes.create_route("test", "uid", to(node, "10.244.0.0/24"))
    await cloud.terminate_instance(node.id)
    [route] = await routes.list_routes("test")
    assert route.blackhole
    with pytest.raises(NotFound):
        await routes.create_route("test", "uid", to(node, "10.244.1.0/24"))


async def test_routing_disables_the_source_dest_check(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    node = await launch(cloud, "n")
    before = await cloud.describe(INSTANCE, node.id)
    assert before is not None
    assert before.data.get("source_dest_check", True)
    await LocalRoutes(cloud).create_route(
        "test", "uid", Route(destination_cidr="10.244.0.0/24", target_node="n")
    )
    after = await cloud.describe(INSTANCE, node.id)
    assert after is not None
    assert after.data["source_dest_check"] is False


async def test_routes_carry_the_node_as_owner_for_the_sweep(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    node = await launch(cloud, "n")
    await LocalRoutes(cloud).create_route("test", "node-uid", to(node, "10.244.0.0/24"))
    routes = [r for r in await LocalInventory(cloud).list_owned("test") if r.kind == "route"]
    assert [(r.owner.kind, r.owner.name, r.owner.uid) for r in routes if r.owner] == [
        ("Node", "n", "node-uid")
    ]


async def test_configured_route_tables_only(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(route_table_ids=("rtb-given",))
    routes = LocalRoutes(cloud)
    node = await launch(cloud, "n")
    with pytest.raises(NotFound, match="rtb-given"):
        await routes.create_route("test", "uid", to(node, "10.244.0.0/24"))
    assert await cloud.add_route_table("test", table_id="rtb-given") == "rtb-given"
    await cloud.add_route_table("test")  # tagged for the cluster, but not the configured one
    await routes.create_route("test", "uid", to(node, "10.244.0.0/24"))
    assert {r.route_table for r in await routes.list_routes("test")} == {"rtb-given"}


async def test_no_route_table_is_a_clear_error(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(routeTables=0)
    node = await launch(cloud, "n")
    with pytest.raises(InvalidConfiguration, match="no route table"):
        await LocalRoutes(cloud).create_route("test", "uid", to(node, "10.244.0.0/24"))
    assert await LocalRoutes(cloud).list_routes("test") == []


async def test_clusters_do_not_see_each_others_routes(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    routes = LocalRoutes(cloud)
    mine = await launch(cloud, "mine")
    theirs = await launch(cloud, "theirs", cluster="other")
    await routes.create_route("test", "u1", to(mine, "10.244.0.0/24"))
    await routes.create_route("other", "u2", to(theirs, "10.245.0.0/24"))
    assert [r.destination_cidr for r in await routes.list_routes("test")] == ["10.244.0.0/24"]
    assert [r.destination_cidr for r in await routes.list_routes("other")] == ["10.245.0.0/24"]
    with pytest.raises(NotFound):  # their instance is not a next hop for us
        await routes.create_route("test", "u2", to(theirs, "10.244.9.0/24"))
