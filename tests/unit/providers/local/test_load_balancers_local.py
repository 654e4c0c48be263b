from __future__ import annotations

from pathlib import Path

import pytest

from providers.config import CloudConfig
from providers.errors import Conflict, InvalidConfiguration, QuotaExceeded
from providers.local import open_cloud
from providers.local.cloud import FIREWALL, LOAD_BALANCER, TARGET_GROUP, LocalCloud
from providers.local.instances import LocalInstances
from providers.local.inventory import LocalInventory
from providers.local.load_balancers import LocalLoadBalancers
from providers.model import InstanceSpec, LoadBalancerIngress, LoadBalancerService, NodeRef, Owner
from tests.unit.providers.contract.harness import node_for, service
from tests.unit.providers.local.conftest import MakeCloud


async def nodes(cloud: LocalCloud, *names: str) -> list[NodeRef]:
    instances = LocalInstances(cloud)
    owner = Owner(kind="Machine", name="m")
    made = [
        await instances.create_instance(
            "test", InstanceSpec(name=n, owner=owner, instance_type="t", image="i")
        )
        for n in names
    ]
    return [node_for(i) for i in made]


async def test_addresses_come_from_the_range_in_order(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    lbs = LocalLoadBalancers(cloud)
    first = await lbs.ensure_load_balancer("test", service("a"), [])
    second = await lbs.ensure_load_balancer("test", service("b"), [])
    assert first.ingress == (LoadBalancerIngress(ip="192.0.2.4"),)
    assert second.ingress == (LoadBalancerIngress(ip="192.0.2.5"),)


@pytest.mark.parametrize(("mode", "ip", "hostname"), [("hostname", False, True), ("both", True, True)])
async def test_hostname_ingress(make_cloud: MakeCloud, mode: str, ip: bool, hostname: bool) -> None:
    lbs = LocalLoadBalancers(make_cloud(loadBalancerIngress=mode))
    svc = service("h", uid="8d1f2b7c-0000-4000-8000-000000000001")
    [ingress] = (await lbs.ensure_load_balancer("test", svc, [])).ingress
    assert bool(ingress.ip) is ip
    assert bool(ingress.hostname) is hostname
    assert ingress.hostname == "" or ingress.hostname.startswith("a8d1f2b7c00004000800000000000000-")
    assert (
        lbs.load_balancer_name("test", svc) == "a8d1f2b7c00004000800000000000000"
    )  # upstream: 32 characters


async def test_requested_load_balancer_ip(make_cloud: MakeCloud) -> None:
    lbs = LocalLoadBalancers(make_cloud())
    wanted = LoadBalancerService(**{**service("ip").__dict__, "load_balancer_ip": "192.0.2.77"})
    assert (await lbs.ensure_load_balancer("test", wanted, [])).ingress[0].ip == "192.0.2.77"
    clash = LoadBalancerService(**{**service("clash").__dict__, "load_balancer_ip": "192.0.2.77"})
    with pytest.raises(InvalidConfiguration, match="already used"):
        await lbs.ensure_load_balancer("test", clash, [])
    outside = LoadBalancerService(**{**service("out").__dict__, "load_balancer_ip": "10.1.2.3"})
    with pytest.raises(InvalidConfiguration, match="outside"):
        await lbs.ensure_load_balancer("test", outside, [])


async def test_address_exhaustion_is_quota(make_cloud: MakeCloud) -> None:
    lbs = LocalLoadBalancers(make_cloud(loadBalancerCIDR="203.0.113.0/29"))
    for name in ("a", "b", "c"):
        await lbs.ensure_load_balancer("test", service(name), [])
    with pytest.raises(QuotaExceeded):
        await lbs.ensure_load_balancer("test", service("d"), [])


async def test_source_ranges_become_firewall_rules(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    lbs = LocalLoadBalancers(cloud)
    svc = service("fw", [("TCP", 80, 30080)], source_ranges=("10.1.0.0/16", "192.168.1.7/32"))
    await lbs.ensure_load_balancer("test", svc, [])
    [firewall] = await cloud.describe_all(FIREWALL)
    assert sorted(map(tuple, firewall.data["rules"])) == [
        ("TCP", 30080, "10.1.0.0/16"),
        ("TCP", 30080, "192.168.1.7/32"),
    ]
    annotated = LoadBalancerService(
        **{
            **service("fw2").__dict__,
            "annotations": {
                "service.beta.kubernetes.io/load-balancer-source-ranges": "10.2.0.0/16, 10.3.0.0/16"
            },
        }
    )
    await lbs.ensure_load_balancer("test", annotated, [])
    rules = {tuple(r) for f in await cloud.describe_all(FIREWALL) for r in f.data["rules"]}
    assert ("TCP", 30080, "10.2.0.0/16") in rules
    bad = LoadBalancerService(
        **{
            **service("fw3").__dict__,
            "annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": "nope"},
        }
    )
    with pytest.raises(InvalidConfiguration, match="'nope'"):
        await lbs.ensure_load_balancer("test", bad, [])


async def test_targets_leave_out_unknown_and_terminated_nodes(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    lbs = LocalLoadBalancers(cloud)
    a, b = await nodes(cloud, "a", "b")
    await cloud.terminate_instance(b.provider_id.rsplit("/", 1)[-1])
    await lbs.ensure_load_balancer("test", service("t"), [a, b, NodeRef(name="ghost")])
    [group] = await cloud.describe_all(TARGET_GROUP)
    assert group.data["targets"] == [a.provider_id.rsplit("/", 1)[-1]]
    assert group.data["health_check"] == {"protocol": "TCP", "port": 30080}


async def test_the_sweep_must_delete_the_load_balancer_before_its_pieces(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    inventory = LocalInventory(cloud)
    await LocalLoadBalancers(cloud).ensure_load_balancer("test", service("s"), [])
    by_kind = {r.kind: r for r in await inventory.list_owned("test")}
    assert set(by_kind) == {LOAD_BALANCER, TARGET_GROUP, FIREWALL}
    for kind in (TARGET_GROUP, FIREWALL):
        with pytest.raises(Conflict):
            await inventory.delete_resource("test", by_kind[kind])
    await inventory.delete_resource("test", by_kind[LOAD_BALANCER])
    await inventory.delete_resource("test", by_kind[TARGET_GROUP])
    await inventory.delete_resource("test", by_kind[FIREWALL])
    assert await inventory.list_owned("test") == []


async def test_half_made_load_balancer_is_found_and_deleted(make_cloud: MakeCloud) -> None:
    """A crash after the first pieces were made: ensure-deleted still finds them by name."""
    cloud = make_cloud()
    lbs = LocalLoadBalancers(cloud)
    cloud.faults.configure(1.0, throttle_share=0.0, operations={"CreateLoadBalancer"})
    svc = service("crash")
    with pytest.raises(Exception, match="injected"):
        await lbs.ensure_load_balancer("test", svc, [])
    cloud.faults.configure(0.0)
    kinds = sorted(r.kind for r in await LocalInventory(cloud).list_owned("test"))
    assert kinds == [FIREWALL, TARGET_GROUP]
    await lbs.ensure_load_balancer_deleted("test", svc)
    assert await LocalInventory(cloud).list_owned("test") == []


async def test_steady_state_is_one_read_and_no_writes(make_cloud: MakeCloud) -> None:
    cloud = make_cloud()
    lbs = LocalLoadBalancers(cloud)
    a, b = await nodes(cloud, "a", "b")
    svc = service("steady", [("TCP", 80, 30080), ("UDP", 53, 30053)])
    status = await lbs.ensure_load_balancer("test", svc, [a, b])
    cloud.calls.clear()
    assert await lbs.ensure_load_balancer("test", svc, [b, a]) == status
    assert dict(cloud.calls) == {"DescribeLoadBalancers": 1}
    await lbs.ensure_load_balancer("test", svc, [a])
    assert cloud.calls["CreateTargetGroup"] == 2


def test_an_unopenable_state_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = CloudConfig(
        cluster_id="c", provider_options={"local": {"stateFile": str(tmp_path / "no" / "such" / "dir.db")}}
    )
    with pytest.raises(InvalidConfiguration, match="cannot open the state file"):
        open_cloud(config)
