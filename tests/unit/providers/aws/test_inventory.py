"""Inventory: routes to the cluster's instances are listed with their owner and deletable."""

from __future__ import annotations

import uuid

import pytest

from providers.errors import Conflict
from providers.model import InstanceSpec, LoadBalancerService, Owner, Route, ServicePort
from tests.unit.providers.aws.moto_env import AwsEnv


async def test_routes_security_groups_and_load_balancers_are_listed_and_deleted(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    provider = env.provider()
    assert provider.instances and provider.routes and provider.inventory and provider.load_balancers
    owner = Owner("Machine", "m1", "kube-system", str(uuid.uuid4()))
    inst = await provider.instances.create_instance(
        cluster, InstanceSpec(name="m1", owner=owner, instance_type="t3.micro", image=env.image)
    )
    await provider.routes.create_route(
        cluster, "uid", Route("10.244.7.0/24", target_provider_id=inst.provider_id)
    )
    service = LoadBalancerService(
        "default",
        "inv",
        str(uuid.uuid4()),
        (ServicePort("p", "TCP", 80, 30080),),
        {"service.beta.kubernetes.io/aws-load-balancer-type": "classic"},
    )
    await provider.load_balancers.ensure_load_balancer(cluster, service, [])
    listed = await provider.inventory.list_owned(cluster)
    kinds = {r.kind: r for r in listed}
    assert set(kinds) == {"instance", "route", "classic-load-balancer", "security-group"}
    route = kinds["route"]
    assert route.id == f"{env.route_table}|10.244.7.0/24"
    assert route.owner == owner
    assert kinds["classic-load-balancer"].owner == service.owner
    assert kinds["security-group"].owner == service.owner

    await provider.inventory.delete_resource(cluster, route)
    assert await provider.routes.list_routes(cluster) == []
    await provider.inventory.delete_resource(cluster, kinds["classic-load-balancer"])
    await provider.inventory.delete_resource(cluster, kinds["security-group"])
    await provider.inventory.delete_resource(cluster, kinds["instance"])
    assert await provider.inventory.list_owned(cluster) == []


async def test_a_target_group_in_use_is_a_conflict(env: AwsEnv) -> None:
    cluster = env.config.cluster_id
    provider = env.provider()
    assert provider.inventory and provider.load_balancers
    service = LoadBalancerService("default", "tg", str(uuid.uuid4()), (ServicePort("p", "TCP", 80, 30080),))
    await provider.load_balancers.ensure_load_balancer(cluster, service, [])
    [group] = [r for r in await provider.inventory.list_owned(cluster) if r.kind == "target-group"]
    with pytest.raises(Conflict):
        await provider.inventory.delete_resource(cluster, group)
