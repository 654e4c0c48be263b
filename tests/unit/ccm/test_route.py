"""The route controller: a route per pod CIDR in every cluster route table, stale ones of ours
removed (never outside the cluster CIDR), NetworkUnavailable set, a full table reported."""

from __future__ import annotations

from typing import Any

from ccm.route import ROUTES_KEY, RouteController, plan_routes
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from providers.local import provider_for
from providers.model import Route
from tests.unit.ccm.conftest import CLUSTER, launch, local_cloud
from tests.unit.ccm.fakes import FakeAPI, make, ready, settings_for


def node(name: str, provider_id: str, cidrs: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"providerID": provider_id, "podCIDRs": cidrs},
        "status": ready(),
    }


def network(api: FakeAPI, name: str) -> dict[str, Any]:
    found = api.obj(R.NODES, name)
    assert found is not None
    return next(c for c in found["status"]["conditions"] if c["type"] == "NetworkUnavailable")


async def test_routes_in_every_table_and_stale_ones_removed() -> None:
    cloud = local_cloud(routeTables=2)
    provider = provider_for(cloud)
    assert provider.routes is not None
    a, b = await launch(provider, "a"), await launch(provider, "b")
    api = FakeAPI()
    api.add(R.NODES, node("a", a.provider_id, ["10.244.0.0/24"]))
    api.add(R.NODES, node("b", b.provider_id, ["10.244.1.0/24"]))
    api.add(R.NODES, node("sim", "sim://sim", ["10.244.9.0/24"]))  # not an instance: no route
    ctrl, _ = make(RouteController, api, settings_for(provider))
    await ctrl.reconcile(ROUTES_KEY)
    routes = await provider.routes.list_routes(CLUSTER)
    assert sorted((r.target_node, r.destination_cidr) for r in routes) == sorted(
        [("a", "10.244.0.0/24"), ("b", "10.244.1.0/24")] * 2
    )
    assert len({r.route_table for r in routes}) == 2
    for name in ("a", "b"):
        cond = network(api, name)
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False",
            "RouteCreated",
            "RouteController created a route",
        )
    sim = api.obj(R.NODES, "sim")
    assert sim is not None and len(sim["status"]["conditions"]) == 1
    # A route outside the cluster CIDR is someone else's; one to a departed node is ours to remove.
    await provider.routes.create_route(
        CLUSTER,
        "uid-x",
        Route(destination_cidr="192.168.5.0/24", target_node="b", target_provider_id=b.provider_id),
    )
    api.remove(R.NODES, "b")
    await ctrl.reconcile(ROUTES_KEY)
    left = await provider.routes.list_routes(CLUSTER)
    assert sorted({(r.target_node, r.destination_cidr) for r in left}) == [
        ("a", "10.244.0.0/24"),
        ("b", "192.168.5.0/24"),
    ]
    cloud.close()


async def test_a_full_route_table_is_reported_on_the_node() -> None:
    cloud = local_cloud(routeLimit=1)
    provider = provider_for(cloud)
    a, b = await launch(provider, "a"), await launch(provider, "b")
    api = FakeAPI()
    api.add(R.NODES, node("a", a.provider_id, ["10.244.0.0/24"]))
    api.add(R.NODES, node("b", b.provider_id, ["10.244.1.0/24"]))
    ctrl, events = make(RouteController, api, settings_for(provider))
    await ctrl.reconcile(ROUTES_KEY)
    assert network(api, "a")["reason"] == "RouteCreated"
    cond = network(api, "b")
    assert cond["status"] == "True" and cond["reason"] == "NoRouteCreated"
    assert "maximum number of routes (1)" in cond["message"] and "route table is full" in cond["message"]
    (failed,) = events.find("FailedToCreateRoute")
    assert failed[1:3] == ("b", "Warning") and "RouteLimitExceeded" in failed[4]
    writes = len(api.writes)
    await ctrl.reconcile(ROUTES_KEY)  # the condition already says so: not rewritten
    assert len(api.writes) == writes
    cloud.close()


def test_plan_replaces_a_route_to_a_replaced_instance_and_drops_blackholes() -> None:
    cluster = [__import__("ipaddress").ip_network("10.244.0.0/16")]
    nodes = [node("a", "local:///z/i-new", ["10.244.0.0/24"])]
    routes = [
        Route("10.244.0.0/24", "a", "local:///z/i-old", route_table="rt-1"),
        Route("10.244.3.0/24", "gone", "local:///z/i-3", blackhole=True, route_table="rt-1"),
    ]
    delete, create = plan_routes(nodes, routes, cluster)
    assert delete == routes
    assert [(n["metadata"]["name"], r.destination_cidr) for n, r in create] == [("a", "10.244.0.0/24")]


def test_a_route_missing_from_one_table_is_created_again() -> None:
    cluster = [__import__("ipaddress").ip_network("10.244.0.0/16")]
    nodes = [node("a", "local:///z/i-1", ["10.244.0.0/24"]), node("b", "local:///z/i-2", ["10.244.1.0/24"])]
    routes = [
        Route("10.244.0.0/24", "a", "local:///z/i-1", route_table="rt-1"),
        Route("10.244.0.0/24", "a", "local:///z/i-1", route_table="rt-2"),
        Route("10.244.1.0/24", "b", "local:///z/i-2", route_table="rt-1"),
    ]
    delete, create = plan_routes(nodes, routes, cluster)
    assert delete == [] and [n["metadata"]["name"] for n, _ in create] == ["b"]


def test_the_provider_capability_is_required(provider: CloudProvider) -> None:
    assert provider.routes is not None


def test_a_route_is_matched_to_its_node_by_instance_whatever_the_cloud_calls_it() -> None:
    """AWS names a route's node by the instance's private DNS name; a Node registered under
    another name (--hostname-override) keeps its route instead of having it replaced every pass."""
    cluster = [__import__("ipaddress").ip_network("10.244.0.0/16")]
    nodes = [node("worker-1", "aws:///us-east-1a/i-0123456789abcdef0", ["10.244.0.0/24"])]
    routes = [
        Route(
            "10.244.0.0/24",
            "ip-10-0-0-4.ec2.internal",
            "aws:///us-east-1a/i-0123456789abcdef0",
            route_table="rtb-1",
        )
    ]
    assert plan_routes(nodes, routes, cluster) == ([], [])
