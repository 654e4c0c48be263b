"""Fault injection: the local cloud fails like a busy cloud, and the one retry layer copes."""

from __future__ import annotations

import pytest

from providers.config import parse_cloud_config
from providers.errors import CloudError, Throttled, Transient
from providers.local import open_cloud
from providers.local.faults import FaultInjector
from providers.local.instances import LocalInstances
from providers.local.inventory import LocalInventory
from providers.local.load_balancers import LocalLoadBalancers
from providers.local.routes import LocalRoutes
from providers.model import InstanceSpec, Owner, Route
from tests.unit.providers.contract.harness import node_for, service
from tests.unit.providers.local.conftest import MakeCloud

OWNER = Owner(kind="Machine", name="m")


def spec(name: str) -> InstanceSpec:
    return InstanceSpec(name=name, owner=OWNER, instance_type="t", image="i")


async def test_a_fifth_of_calls_failing_still_converges(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(max_attempts=20, faults={"rate": 0.2, "seed": 3, "afterShare": 0.5})
    instances, lbs, routes = LocalInstances(cloud), LocalLoadBalancers(cloud), LocalRoutes(cloud)
    made = [await instances.create_instance("test", spec(f"n{i}")) for i in range(10)]
    nodes = [node_for(i) for i in made]
    for i, node in enumerate(nodes):
        await routes.create_route("test", node.uid, Route(f"10.244.{i}.0/24", node.name, node.provider_id))
    services = [service(f"s{i}", [("TCP", 80, 30000 + i)]) for i in range(10)]
    for svc in services:
        await lbs.ensure_load_balancer("test", svc, nodes)
    assert cloud.faults.total > 10
    assert any(":after" in key for key in cloud.faults.injected)
    # Retries after a lost response did not duplicate anything.
    assert len(await instances.list_instances("test")) == 10
    assert len(await routes.list_routes("test")) == 10
    for svc in services:
        await lbs.ensure_load_balancer_deleted("test", svc)
    for instance in made:
        await instances.delete_instance("test", instance.id)
    for i, node in enumerate(nodes):
        await routes.delete_route("test", Route(f"10.244.{i}.0/24", node.name))
    cloud.faults.configure(0.0)
    assert await LocalInventory(cloud).list_owned("test") == []


async def test_without_retries_the_injected_errors_surface(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(max_attempts=1, faults={"rate": 1.0, "seed": 1})
    errors = []
    for i in range(20):
        with pytest.raises(CloudError) as caught:
            await LocalInstances(cloud).create_instance("test", spec(f"x{i}"))
        errors.append(type(caught.value))
    assert set(errors) == {Throttled, Transient}
    cloud.faults.configure(0.0)
    assert await LocalInstances(cloud).list_instances("test") == []  # failed before the call took effect


async def test_the_same_seed_gives_the_same_faults() -> None:
    def run() -> list[str]:
        faults = FaultInjector(0.3, seed=42, after_share=0.3)
        outcome = []
        for call in range(200):
            try:
                faults.before("Op", call)
                faults.after("Op", call)
                outcome.append("ok")
            except Throttled:
                outcome.append("throttled")
            except Transient:
                outcome.append("transient")
        return outcome

    first = run()
    assert first == run()
    assert 30 < first.count("ok") < 170 and first.count("ok") < 200


async def test_faults_only_in_chosen_operations_and_with_retry_after() -> None:
    faults = FaultInjector(1.0, throttle_share=1.0, retry_after=2.5, operations={"CreateRoute"})
    faults.before("RunInstances", 1)
    with pytest.raises(Throttled) as caught:
        faults.before("CreateRoute", 2)
    assert caught.value.retry_after == 2.5
    assert faults.injected == {"CreateRoute:Throttled:before": 1}


def test_faults_can_be_turned_on_from_the_cloud_config() -> None:
    """So a `pinnace server --cloud-provider local` started by a chaos test fails on purpose too."""
    config = parse_cloud_config(
        {
            "clusterID": "c",
            "local": {"faults": {"rate": 0.2, "seed": 9, "afterShare": 0.5, "retryAfter": 0.05}},
        }
    )
    cloud = open_cloud(config)
    try:
        assert (cloud.faults.rate, cloud.faults.after_share, cloud.faults.retry_after) == (0.2, 0.5, 0.05)
    finally:
        cloud.close()
