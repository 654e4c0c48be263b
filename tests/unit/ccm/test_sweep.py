"""The garbage sweep: what a vanished Service or Node owned is deleted; nothing else is."""

from __future__ import annotations

import dataclasses

from ccm.sweep import GarbageSweep
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from providers.model import CloudResource, LoadBalancerService, NodeRef, Owner, Route, ServicePort
from providers.tags import cluster_tag_key, owner_tags
from tests.unit.ccm.conftest import CLUSTER, launch
from tests.unit.ccm.fakes import FakeAPI, make, settings_for


def service(name: str, uid: str) -> LoadBalancerService:
    return LoadBalancerService(
        namespace="ns", name=name, uid=uid, ports=(ServicePort("http", "TCP", 80, 30080),)
    )


async def owned(provider: CloudProvider) -> list[tuple[str, str]]:
    assert provider.inventory is not None
    return sorted(
        (r.kind, r.owner.key if r.owner else "") for r in await provider.inventory.list_owned(CLUSTER)
    )


async def test_orphans_of_services_and_nodes_are_deleted(provider: CloudProvider) -> None:
    assert provider.load_balancers is not None and provider.routes is not None
    machine = await launch(provider, "m1")  # owned by a Machine: not the sweep's business
    nodes = [NodeRef(name="m1", provider_id=machine.provider_id)]
    await provider.load_balancers.ensure_load_balancer(CLUSTER, service("kept", "uid-kept"), nodes)
    await provider.load_balancers.ensure_load_balancer(CLUSTER, service("gone", "uid-gone"), nodes)
    await provider.load_balancers.ensure_load_balancer(CLUSTER, service("again", "uid-old"), nodes)
    await provider.routes.create_route(CLUSTER, "uid-m1", Route("10.244.0.0/24", "m1", machine.provider_id))
    api = FakeAPI()
    api.add(
        R.SERVICES,
        {
            "metadata": {"name": "kept", "namespace": "ns", "uid": "uid-kept"},
            "spec": {"type": "LoadBalancer"},
        },
    )
    # Deleted and re-created under the same name: the old UID's resources are orphans.
    api.add(
        R.SERVICES,
        {
            "metadata": {"name": "again", "namespace": "ns", "uid": "uid-new"},
            "spec": {"type": "LoadBalancer"},
        },
    )
    ctrl, _ = make(GarbageSweep, api, settings_for(provider))
    before = await owned(provider)
    assert ("load-balancer", "ns/gone") in before and ("route", "m1") in before
    deleted = await ctrl.sweep()
    after = await owned(provider)
    assert {key for _, key in after} == {"ns/kept", "m1"}
    assert ("instance", "m1") in after and ("route", "m1") not in after  # the Node m1 does not exist
    assert deleted == len(before) - len(after)
    assert await ctrl.sweep() == 0


class FakeInventory:
    def __init__(self, resources: list[CloudResource]) -> None:
        self.resources = resources
        self.deleted: list[str] = []

    async def list_owned(self, cluster_id: str) -> list[CloudResource]:
        return self.resources

    async def delete_resource(self, cluster_id: str, resource: CloudResource) -> None:
        self.deleted.append(resource.id)


async def test_shared_and_unlabelled_resources_are_never_touched(provider: CloudProvider) -> None:
    gone = Owner(kind="Service", namespace="ns", name="gone", uid="u1")
    shared_tags = {**owner_tags(CLUSTER, gone), cluster_tag_key(CLUSTER): "shared"}
    inventory = FakeInventory(
        [
            CloudResource("security-group", "sg-shared", tags=shared_tags, owner=gone),
            CloudResource("security-group", "sg-anon", tags={cluster_tag_key(CLUSTER): "owned"}, owner=None),
            CloudResource("load-balancer", "lb-gone", tags=owner_tags(CLUSTER, gone), owner=gone),
        ]
    )
    ctrl, _ = make(GarbageSweep, FakeAPI(), settings_for(dataclasses.replace(provider, inventory=inventory)))
    assert await ctrl.sweep() == 1
    assert inventory.deleted == ["lb-gone"]
