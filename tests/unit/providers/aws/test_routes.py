"""Routes in every cluster route table: source/dest check, replace, blackholes, the route limit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from providers.aws.routes import AwsRoutes
from providers.errors import InvalidConfiguration, RouteLimitExceeded
from providers.model import Route
from tests.unit.providers.aws.conftest import Calls, Faults
from tests.unit.providers.aws.moto_env import AwsEnv


def launch(env: AwsEnv) -> tuple[str, str]:
    inst = env.ec2.run_instances(
        ImageId=env.image, MinCount=1, MaxCount=1, SubnetId=env.subnets["us-east-1a"]
    )
    i = inst["Instances"][0]
    return i["InstanceId"], i["PrivateDnsName"]


def routes_of(env: AwsEnv, table: str) -> dict[str, str]:
    found = env.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    return {r["DestinationCidrBlock"]: r.get("InstanceId", "") for r in found if r.get("InstanceId")}


def capability(env: AwsEnv) -> AwsRoutes:
    routes = env.provider().routes
    assert isinstance(routes, AwsRoutes)
    return routes


async def test_every_tagged_table_gets_the_route_and_source_dest_check_is_off(
    env: AwsEnv, calls: Calls
) -> None:
    second = env.add_route_table(env.config.cluster_id, "owned")
    untagged = env.ec2.create_route_table(VpcId=env.vpc_id)["RouteTable"]["RouteTableId"]
    iid, dns = launch(env)
    routes = capability(env)
    await routes.create_route(env.config.cluster_id, "uid", Route("10.244.1.0/24", target_node=dns))
    assert routes_of(env, env.route_table) == {"10.244.1.0/24": iid}
    assert routes_of(env, second) == {"10.244.1.0/24": iid}
    assert routes_of(env, untagged) == {}
    attr = env.ec2.describe_instance_attribute(InstanceId=iid, Attribute="sourceDestCheck")
    assert attr["SourceDestCheck"]["Value"] is False
    assert calls.log.index("ModifyInstanceAttribute") < calls.log.index("CreateRoute")
    listed = await routes.list_routes(env.config.cluster_id)
    assert {(r.route_table, r.destination_cidr, r.target_node) for r in listed} == {
        (env.route_table, "10.244.1.0/24", dns),
        (second, "10.244.1.0/24", dns),
    }
    calls.reset()
    await routes.create_route(env.config.cluster_id, "uid", Route("10.244.1.0/24", target_node=dns))
    assert calls.mutating() == []  # converged: nothing to do


async def test_configured_route_tables_override_the_tags(env: AwsEnv) -> None:
    chosen = env.ec2.create_route_table(VpcId=env.vpc_id)["RouteTable"]["RouteTableId"]
    iid, dns = launch(env)
    routes = env.provider(config=replace(env.config, route_table_ids=(chosen,))).routes
    assert routes is not None
    await routes.create_route(env.config.cluster_id, "uid", Route("10.244.2.0/24", target_node=dns))
    assert routes_of(env, chosen) == {"10.244.2.0/24": iid}
    assert routes_of(env, env.route_table) == {}


async def test_a_route_to_another_instance_is_replaced(env: AwsEnv, calls: Calls) -> None:
    old, _ = launch(env)
    new, new_dns = launch(env)
    env.ec2.create_route(RouteTableId=env.route_table, DestinationCidrBlock="10.244.3.0/24", InstanceId=old)
    calls.reset()
    await capability(env).create_route(
        env.config.cluster_id, "uid", Route("10.244.3.0/24", target_node=new_dns)
    )
    assert routes_of(env, env.route_table) == {"10.244.3.0/24": new}
    assert calls.count("ReplaceRoute") == 1
    assert calls.count("CreateRoute") == 0


async def test_blackholes_are_listed_so_they_get_deleted(env: AwsEnv) -> None:
    iid, dns = launch(env)
    routes = capability(env)
    await routes.create_route(env.config.cluster_id, "uid", Route("10.244.4.0/24", target_node=dns))

    # moto never blackholes a route; AWS does once the instance is gone.
    def blackhole(parsed: dict[str, Any], **_: Any) -> None:
        for table in parsed.get("RouteTables", []):
            for r in table.get("Routes", []):
                if r.get("InstanceId") == iid:
                    r["State"] = "blackhole"

    env.ec2.meta.events.register("after-call.ec2.DescribeRouteTables", blackhole)
    [listed] = await routes.list_routes(env.config.cluster_id)
    assert listed.blackhole
    await routes.delete_route(env.config.cluster_id, listed)
    assert routes_of(env, env.route_table) == {}


async def test_delete_leaves_a_cidr_that_now_points_elsewhere(env: AwsEnv) -> None:
    iid, _ = launch(env)
    other, _ = launch(env)
    env.ec2.create_route(RouteTableId=env.route_table, DestinationCidrBlock="10.244.5.0/24", InstanceId=other)
    stale = Route("10.244.5.0/24", target_provider_id=f"aws:///us-east-1a/{iid}")
    await capability(env).delete_route(env.config.cluster_id, stale)
    assert routes_of(env, env.route_table) == {"10.244.5.0/24": other}


async def test_the_route_limit_is_a_clear_error(env: AwsEnv) -> None:
    _, dns = launch(env)
    faults = Faults(env.clients, rate=1.0, codes=(("RouteLimitExceeded", 400),))
    faults.only = {"CreateRoute"}
    with pytest.raises(RouteLimitExceeded) as caught:
        await capability(env).create_route(
            env.config.cluster_id, "uid", Route("10.244.6.0/24", target_node=dns)
        )
    message = str(caught.value)
    assert env.route_table in message
    assert "50 routes" in message
    assert faults.injected == 1  # a quota is not retried


async def test_no_route_table_is_a_configuration_error(env: AwsEnv) -> None:
    launch(env)
    with pytest.raises(InvalidConfiguration, match=r"kubernetes\.io/cluster/elsewhere"):
        await capability(env).list_routes("elsewhere")


async def test_a_route_to_a_terminated_instance_counts_as_a_blackhole(env: AwsEnv) -> None:
    iid, dns = launch(env)
    routes = capability(env)
    await routes.create_route(env.config.cluster_id, "uid", Route("10.244.8.0/24", target_node=dns))
    env.ec2.terminate_instances(InstanceIds=[iid])
    [listed] = await routes.list_routes(env.config.cluster_id)
    assert listed.blackhole
