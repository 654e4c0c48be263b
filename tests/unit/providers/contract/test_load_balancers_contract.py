"""LoadBalancers: idempotent, converging, tagged, and deleted without leftovers."""

from __future__ import annotations

import pytest

from providers.capabilities import Instances, Inventory, LoadBalancers
from providers.errors import InvalidConfiguration, NotFound
from providers.model import LoadBalancerService, NodeRef, Owner
from providers.tags import cluster_tag_key, owner_tags
from tests.unit.providers.contract.harness import ContractCloud, machine_owner, node_for, service


def _lbs(cloud: ContractCloud) -> LoadBalancers:
    return cloud.provider.require(cloud.provider.load_balancers, "load balancers")


def _inventory(cloud: ContractCloud) -> Inventory:
    return cloud.provider.require(cloud.provider.inventory, "inventory")


async def _nodes(cloud: ContractCloud, *names: str) -> list[NodeRef]:
    instances: Instances = cloud.provider.require(cloud.provider.instances, "instances")
    created = [
        await instances.create_instance(
            cloud.config.cluster_id, cloud.helpers.instance_spec(n, machine_owner(n))
        )
        for n in names
    ]
    return [node_for(i) for i in created]


def _ids(nodes: list[NodeRef]) -> frozenset[str]:
    return frozenset(n.provider_id.rsplit("/", 1)[-1] for n in nodes)


async def _owned_by(cloud: ContractCloud, owner: Owner) -> list[str]:
    resources = await _inventory(cloud).list_owned(cloud.config.cluster_id)
    return sorted(f"{r.kind}/{r.id}" for r in resources if r.owner is not None and r.owner.key == owner.key)


async def test_ensure_creates_and_is_idempotent(cloud: ContractCloud) -> None:
    lbs = _lbs(cloud)
    cluster = cloud.config.cluster_id
    nodes = await _nodes(cloud, "n1", "n2")
    svc = service("web", [("TCP", 80, 30080), ("TCP", 443, 30443)])
    assert await lbs.get_load_balancer(cluster, svc) is None
    status = await lbs.ensure_load_balancer(cluster, svc, nodes)
    assert status.ingress
    assert all(i.ip or i.hostname for i in status.ingress)
    assert await lbs.get_load_balancer(cluster, svc) == status
    made = await _owned_by(cloud, svc.owner)
    assert made
    assert await lbs.ensure_load_balancer(cluster, svc, nodes) == status
    assert await _owned_by(cloud, svc.owner) == made
    view = await cloud.helpers.load_balancer_view(cluster, svc)
    assert view is not None
    assert view.listeners == {("TCP", 80, 30080), ("TCP", 443, 30443)}
    assert all(targets == _ids(nodes) for targets in view.targets.values())
    assert lbs.load_balancer_name(cluster, svc) == lbs.load_balancer_name(cluster, svc)


async def test_every_resource_made_is_tagged_for_the_cluster_and_the_service(cloud: ContractCloud) -> None:
    cluster = cloud.config.cluster_id
    nodes = await _nodes(cloud, "t1")
    svc = service("tagged")
    await _lbs(cloud).ensure_load_balancer(cluster, svc, nodes)
    resources = await _inventory(cloud).list_owned(cluster)
    mine = [r for r in resources if r.owner is not None and r.owner.kind == "Service"]
    assert mine
    for resource in resources:
        assert resource.tags.get(cluster_tag_key(cluster)) == "owned", resource
        assert resource.owner is not None, resource
    for resource in mine:
        for key, value in owner_tags(cluster, svc.owner).items():
            assert resource.tags.get(key) == value, (resource, key)


async def test_ensure_converges_on_changed_ports(cloud: ContractCloud) -> None:
    lbs = _lbs(cloud)
    cluster = cloud.config.cluster_id
    nodes = await _nodes(cloud, "p1")
    svc = service(
        "ports", [("TCP", 80, 30080), ("TCP", 81, 30081)], uid="0b6a4f5e-1111-4222-8333-444455556666"
    )
    status = await lbs.ensure_load_balancer(cluster, svc, nodes)
    changed = service(
        "ports", [("TCP", 80, 30090), ("UDP", 53, 30053)], uid="0b6a4f5e-1111-4222-8333-444455556666"
    )
    assert await lbs.ensure_load_balancer(cluster, changed, nodes) == status
    view = await cloud.helpers.load_balancer_view(cluster, changed)
    assert view is not None
    assert view.listeners == {("TCP", 80, 30090), ("UDP", 53, 30053)}
    assert set(view.targets) == {("TCP", 80), ("UDP", 53)}
    # What the old ports needed is gone once the new shape converged, not left for the sweep.
    again = await _owned_by(cloud, svc.owner)
    await lbs.ensure_load_balancer(cluster, changed, nodes)
    assert await _owned_by(cloud, svc.owner) == again


async def test_ensure_and_update_converge_on_changed_nodes(cloud: ContractCloud) -> None:
    lbs = _lbs(cloud)
    cluster = cloud.config.cluster_id
    a, b, c = await _nodes(cloud, "a", "b", "c")
    svc = service("nodes")
    await lbs.ensure_load_balancer(cluster, svc, [a, b])
    await lbs.update_load_balancer(cluster, svc, [b, c])
    view = await cloud.helpers.load_balancer_view(cluster, svc)
    assert view is not None
    assert view.all_targets == _ids([b, c])
    await lbs.ensure_load_balancer(cluster, svc, [a])
    view = await cloud.helpers.load_balancer_view(cluster, svc)
    assert view is not None
    assert view.all_targets == _ids([a])


async def test_external_traffic_policy_local_health_checks_the_health_check_node_port(
    cloud: ContractCloud,
) -> None:
    cluster = cloud.config.cluster_id
    nodes = await _nodes(cloud, "l1")
    svc = service("local-policy", external_traffic_policy="Local", health_check_node_port=32000)
    await _lbs(cloud).ensure_load_balancer(cluster, svc, nodes)
    view = await cloud.helpers.load_balancer_view(cluster, svc)
    assert view is not None
    assert view.health_check_ports == {32000}


async def test_update_of_a_missing_load_balancer_is_not_found(cloud: ContractCloud) -> None:
    with pytest.raises(NotFound):
        await _lbs(cloud).update_load_balancer(cloud.config.cluster_id, service("missing"), [])


async def test_ensure_deleted_leaves_nothing_of_the_service(cloud: ContractCloud) -> None:
    lbs = _lbs(cloud)
    cluster = cloud.config.cluster_id
    nodes = await _nodes(cloud, "d1", "d2")
    svc = service("doomed", [("TCP", 80, 30080), ("UDP", 53, 30053)])
    other = service("survivor")
    await lbs.ensure_load_balancer(cluster, svc, nodes)
    await lbs.ensure_load_balancer(cluster, other, nodes)
    await lbs.ensure_load_balancer_deleted(cluster, svc)
    assert await _owned_by(cloud, svc.owner) == []
    assert await lbs.get_load_balancer(cluster, svc) is None
    assert await cloud.helpers.load_balancer_view(cluster, svc) is None
    assert await lbs.get_load_balancer(cluster, other) is not None
    await lbs.ensure_load_balancer_deleted(cluster, svc)
    await lbs.ensure_load_balancer_deleted(cluster, service("never-made"))


@pytest.mark.parametrize(
    ("svc", "words"),
    [
        (service("sctp", [("SCTP", 9000, 30900)]), "SCTP"),
        (service("no-ports", []), "no ports"),
        (service("no-hc", external_traffic_policy="Local", health_check_node_port=0), "healthCheckNodePort"),
        (service("bad-range", source_ranges=("10.0.0.0/33",)), "10.0.0.0/33"),
    ],
)
async def test_unsupported_shapes_are_refused_before_anything_is_made(
    cloud: ContractCloud, svc: LoadBalancerService, words: str
) -> None:
    nodes = await _nodes(cloud, "v1")
    with pytest.raises(InvalidConfiguration) as caught:
        await _lbs(cloud).ensure_load_balancer(cloud.config.cluster_id, svc, nodes)
    assert words in str(caught.value)
    assert await _owned_by(cloud, svc.owner) == []
