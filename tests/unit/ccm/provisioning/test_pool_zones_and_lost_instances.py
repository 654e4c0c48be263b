"""A pool's Ready count from its Nodes, its spread over the provider's zones, and a Running
Machine whose instance was terminated behind the operator's back."""

from __future__ import annotations

import copy

import pytest

from ccm.provisioning.context import MACHINES, NODEPOOLS
from ccm.provisioning.machines import INSTANCE_TERMINATED
from controlplane.controllers.runtime import R
from providers import errors as cloud_errors
from providers.capabilities import CloudProvider
from providers.model import Instance, InstanceSpec, InstanceState, Zone
from tests.unit.ccm.provisioning.fakes import _with_state
from tests.unit.ccm.provisioning.test_reconcilers import World, provisioned


class FakeZones:
    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.calls = 0
        self.fail = False

    async def list_zones(self) -> list[Zone]:
        self.calls += 1
        if self.fail:
            raise cloud_errors.Transient("throttled")
        return [Zone(failure_domain=n, region="r") for n in self.names]

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone:
        raise cloud_errors.NotFound(provider_id)


def with_zones(w: World, zones: FakeZones) -> None:
    provider = CloudProvider("local", instances=w.cloud, zones=zones)
    object.__setattr__(w.settings, "provider", provider)


def zones_of_machines(w: World) -> list[str]:
    live = [m for m in w.api.items(MACHINES) if not m["metadata"].get("deletionTimestamp")]
    return sorted(str(m["spec"].get("zone", "")) for m in live)


async def test_a_pool_without_zones_spreads_over_the_providers_zones() -> None:
    w = World()
    zones = FakeZones("r-1a", "r-1b", "r-1c")
    with_zones(w, zones)
    w.pool(replicas=4, zones=[])
    await w.pools.reconcile("p")
    assert zones_of_machines(w) == ["r-1a", "r-1a", "r-1b", "r-1c"]
    # Growing fills the least used zones first; the zone list is asked for once.
    await w.api.patch(NODEPOOLS, "p", {"spec": {"replicas": 6}})
    await w.pools.reconcile("p")
    assert zones_of_machines(w) == ["r-1a", "r-1a", "r-1b", "r-1b", "r-1c", "r-1c"]
    assert zones.calls == 1


async def test_zones_stay_as_the_pool_or_its_subnets_say() -> None:
    w = World()
    zones = FakeZones("r-1a", "r-1b")
    with_zones(w, zones)
    w.pool("named", replicas=2, zones=["r-1b"])
    w.pool("subnets", replicas=2, zones=[], subnets=["subnet-1"])
    await w.pools.reconcile("named")
    await w.pools.reconcile("subnets")
    spec_zones = {m["metadata"]["name"]: m["spec"].get("zone", "") for m in w.api.items(MACHINES)}
    assert sorted(spec_zones.values()) == ["", "", "r-1b", "r-1b"]
    assert zones.calls == 0


async def test_zones_unknown_for_now_or_for_good_mean_the_default_zone() -> None:
    w = World()  # a provider without the zones capability
    w.pool(replicas=2, zones=[])
    await w.pools.reconcile("p")
    assert zones_of_machines(w) == ["", ""]
    w2 = World()
    zones = FakeZones("r-1a", "r-1b")
    zones.fail = True
    with_zones(w2, zones)
    w2.pool(replicas=1, zones=[])
    await w2.pools.reconcile("p")  # a failed listing is not cached
    zones.fail = False
    await w2.api.patch(NODEPOOLS, "p", {"spec": {"replicas": 2}})
    await w2.pools.reconcile("p")
    assert zones_of_machines(w2) == ["", "r-1a"] and zones.calls == 2


async def test_ready_replicas_counts_running_machines_whose_node_is_ready() -> None:
    w = World()
    names = await provisioned(w, replicas=2)
    provider_ids = {n: w.machine(n)["status"]["providerID"] for n in names}
    for i, name in enumerate(names):
        w.node(f"node-{i}", provider_ids[name])
        w.ctx.nodes.machine_event("MODIFIED", w.machine(name))
        w.ctx.nodes.node_event("ADDED", w.api.objects[("nodes", f"node-{i}")])
        await w.machines.reconcile(name)
        assert w.machine(name)["status"]["phase"] == "Running"
    await w.pools.reconcile("p")
    status = w.api.objects[("nodepools", "p")]["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    # One Node goes NotReady: the watch knows before the Machine's next pass does.
    node = copy.deepcopy(w.api.objects[("nodes", "node-0")])
    node["status"]["conditions"][0]["status"] = "False"
    w.ctx.nodes.node_event("MODIFIED", node)
    await w.pools.reconcile("p")
    status = w.api.objects[("nodepools", "p")]["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 1)


@pytest.mark.parametrize("how", ["terminated", "gone"])
async def test_a_running_machine_whose_instance_is_gone_fails_at_once(how: str) -> None:
    w = World()
    (name,) = await provisioned(w)
    w.node(w.machine(name)["status"]["instanceID"], w.machine(name)["status"]["providerID"])
    await w.machines.reconcile(name)
    assert w.machine(name)["status"]["phase"] == "Running"
    instance_id = w.machine(name)["status"]["instanceID"]
    if how == "terminated":
        w.cloud.instances[instance_id] = _with_state(w.cloud.instances[instance_id], InstanceState.TERMINATED)
    else:
        del w.cloud.instances[instance_id]
    # Its Node still says Ready (its lease has not run out): the resync finds out anyway.
    assert await w.machines.reconcile(name) is None
    status = w.machine(name)["status"]
    assert (status["phase"], status["failureReason"]) == ("Failed", INSTANCE_TERMINATED)
    assert instance_id in status["failureMessage"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["InstanceProvisioned"]["reason"] == INSTANCE_TERMINATED
    assert w.events.reasons(name)[-1] == INSTANCE_TERMINATED
    assert w.pools_woken[-1] == "p"
    # The pool replaces it. Its Node still says Ready, but no kubelet is left to confirm that a
    # terminating pod is gone: the drain does not wait for one; nor is anything left to terminate.
    node_name = w.machine(name)["status"]["nodeName"]
    w.api.put(
        R.PODS,
        {
            "metadata": {"name": "web", "namespace": "ns", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node_name},
        },
    )
    await w.pools.reconcile("p")
    assert w.machine(name)["metadata"].get("deletionTimestamp")
    assert await w.machines.reconcile(name) is None
    assert ("machines", name) not in w.api.objects


async def test_a_running_machine_whose_node_was_deleted_fails_too() -> None:
    # The other path (the CCM deleted the Node of a vanished instance first): NodeNotFound, or
    # InstanceTerminated when the instance is found gone on the same pass.
    w = World()
    (name,) = await provisioned(w)
    w.node(w.machine(name)["status"]["instanceID"], w.machine(name)["status"]["providerID"])
    await w.machines.reconcile(name)
    del w.api.objects[("nodes", w.machine(name)["status"]["instanceID"])]
    assert await w.machines.reconcile(name) is None
    assert w.machine(name)["status"]["failureReason"] == "NodeNotFound"


async def test_a_live_instance_of_a_running_machine_changes_nothing() -> None:
    w = World()
    (name,) = await provisioned(w)
    w.node(w.machine(name)["status"]["instanceID"], w.machine(name)["status"]["providerID"])
    await w.machines.reconcile(name)
    assert await w.machines.reconcile(name) == w.settings.running_resync_interval
    assert w.machine(name)["status"]["phase"] == "Running"
    assert InstanceState(w.cloud.live()[0].state) == InstanceState.RUNNING


async def test_a_provider_zone_the_cloud_config_cannot_launch_in_is_left_out() -> None:
    # An AWS config naming subnets in only some zones: the spread's pick falls back to the
    # provider's default placement once, then the zone is no longer picked.
    w = World()
    zones = FakeZones("r-1a", "r-1b")
    with_zones(w, zones)
    create = w.cloud.create_instance

    async def refuse_r_1b(cluster_id: str, spec: InstanceSpec) -> Instance:
        if spec.zone == "r-1b":
            raise cloud_errors.InvalidConfiguration("none of the configured subnets is in zone r-1b")
        return await create(cluster_id, spec)

    w.cloud.create_instance = refuse_r_1b  # type: ignore[method-assign]
    w.pool(replicas=2, zones=[])
    await w.pools.reconcile("p")
    names = sorted(m["metadata"]["name"] for m in w.api.items(MACHINES))
    for name in names:
        await w.machines.reconcile(name)
    phases = sorted(w.machine(n)["status"]["phase"] for n in names)
    assert phases == ["Bootstrapping", "Bootstrapping"]
    assert w.ctx.unusable_zones == {"r-1b"}
    await w.api.patch(NODEPOOLS, "p", {"spec": {"replicas": 3}})
    await w.pools.reconcile("p")
    new = [m for m in w.api.items(MACHINES) if m["metadata"]["name"] not in names]
    assert [m["spec"]["zone"] for m in new] == ["r-1a"]
    # A zone the pool itself names is no fallback matter: that Machine fails visibly.
    w.pool("strict", replicas=1, zones=["r-1b"])
    await w.pools.reconcile("strict")
    (strict,) = [m["metadata"]["name"] for m in w.api.items(MACHINES) if m["spec"]["nodePool"] == "strict"]
    await w.machines.reconcile(strict)
    assert w.machine(strict)["status"]["failureReason"] == "InstanceCreateFailed"
