"""The NodePool and Machine reconcilers and the orphan sweep on an in-memory API and cloud."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ccm.provisioning import api
from ccm.provisioning.context import MACHINES, NODEPOOLS, Context, NodeIndex
from ccm.provisioning.machines import FINALIZER, MachineReconciler
from ccm.provisioning.nodepools import NodePoolReconciler
from ccm.provisioning.orphans import sweep_orphans
from ccm.provisioning.settings import ProvisionerSettings
from ccm.provisioning.tokens import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, TOKEN_ANNOTATION
from controlplane.controllers.runtime import FakeClock, R
from node_bootstrap.cloudinit.spec import BootstrapSpec
from providers.capabilities import CloudProvider
from providers.model import InstanceSpec, Owner
from tests.unit.ccm.fakes import Events
from tests.unit.ccm.provisioning.fakes import FakeAPI, FakeInstances, ca_pem

CA = ca_pem()


class World:
    def __init__(self, **settings: Any) -> None:
        self.api = FakeAPI()
        self.cloud = FakeInstances()
        self.clock = FakeClock()
        self.specs: list[BootstrapSpec] = []
        self.events = Events()
        self.machines_woken: list[str] = []
        self.pools_woken: list[str] = []

        def render(spec: BootstrapSpec) -> bytes:
            self.specs.append(spec)
            return f"#cloud-config token={spec.token}".encode()

        self.settings = ProvisionerSettings(
            provider=CloudProvider("local", instances=self.cloud),
            cluster_id="c1",
            server_url="https://10.0.0.1:6443",
            ca_pem=CA,
            user_data=render,
            clock=self.clock,
            **settings,
        )
        self.ctx = Context(
            client=self.api,  # type: ignore[arg-type]
            evict_client=self.api,  # type: ignore[arg-type]
            settings=self.settings,
            recorder=self.events,  # type: ignore[arg-type]
            nodes=NodeIndex(),
            enqueue_machine=self.machines_woken.append,
            enqueue_pool=self.pools_woken.append,
        )
        self.machines = MachineReconciler(self.ctx)
        self.pools = NodePoolReconciler(self.ctx, rng=random.Random(7))

    def pool(self, name: str = "p", replicas: int = 2, **spec: Any) -> dict[str, Any]:
        return self.api.put(
            NODEPOOLS,
            {
                "apiVersion": api.API_VERSION,
                "kind": "NodePool",
                "metadata": {"name": name},
                "spec": {"replicas": replicas, "zones": ["z-a", "z-b"], "labels": {"team": "a"}, **spec},
            },
        )

    def machine(self, name: str) -> dict[str, Any]:
        found = self.api.objects.get(("machines", name))
        assert found is not None, name
        return found

    def node(self, name: str, provider_id: str, ready: str = "True") -> None:
        self.api.put(
            R.NODES,
            {
                "kind": "Node",
                "metadata": {"name": name, "labels": {}},
                "spec": {"providerID": provider_id},
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                    ]
                },
            },
        )


async def test_a_pool_makes_its_machines_as_objects_first() -> None:
    w = World()
    w.pool(replicas=3)
    assert await w.pools.reconcile("p") is not None
    machines = w.api.items(MACHINES)
    assert len(machines) == 3
    assert sorted(m["spec"]["zone"] for m in machines) == ["z-a", "z-a", "z-b"]
    for m in machines:
        assert m["metadata"]["name"].startswith("p-") and len(m["metadata"]["name"]) == 7
        assert m["metadata"]["finalizers"] == [FINALIZER]
        assert m["metadata"]["labels"] == {api.LABEL_NODE_POOL: "p"}
        assert (
            m["metadata"]["ownerReferences"][0]["uid"] == w.api.objects[("nodepools", "p")]["metadata"]["uid"]
        )
    assert w.cloud.instances == {}  # instances are the Machines' business
    assert sorted(w.machines_woken) == sorted(m["metadata"]["name"] for m in machines)
    assert w.events.reasons("p") == ["MachineCreated"] * 3
    status = w.api.objects[("nodepools", "p")]["status"]
    assert status["replicas"] == 3 and status["selector"] == f"{api.LABEL_NODE_POOL}=p"
    # Again: nothing more to do.
    await w.pools.reconcile("p")
    assert len(w.api.items(MACHINES)) == 3


async def provisioned(w: World, replicas: int = 1) -> list[str]:
    w.pool(replicas=replicas)
    await w.pools.reconcile("p")
    names = sorted(m["metadata"]["name"] for m in w.api.items(MACHINES))
    for name in names:
        await w.machines.reconcile(name)
    return names


async def test_a_machine_gets_a_token_its_rbac_and_an_instance() -> None:
    w = World()
    (name,) = await provisioned(w)
    m = w.machine(name)
    assert m["status"]["phase"] == "Bootstrapping"
    (instance,) = w.cloud.instances.values()
    assert m["status"]["instanceID"] == instance.id
    assert m["status"]["providerID"] == instance.provider_id
    assert m["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.1"}]
    (spec,) = w.cloud.created
    assert spec.name == name and spec.owner == Owner("Machine", name, uid=m["metadata"]["uid"])
    assert spec.tags[api.LABEL_NODE_POOL] == "p"
    (bootstrap,) = w.specs
    token_id = m["metadata"]["annotations"][TOKEN_ANNOTATION]
    assert bootstrap.token.startswith(token_id + ".")
    assert spec.user_data == f"#cloud-config token={bootstrap.token}".encode()
    assert bootstrap.server == "https://10.0.0.1:6443" and bootstrap.metadata == "local"
    assert bootstrap.provider_id_template == "local:///{zone}/{instance_id}"
    assert bootstrap.machine is not None and bootstrap.machine.name == name
    assert bootstrap.node_labels[api.LABEL_NODE_POOL] == "p" and bootstrap.node_labels["team"] == "a"
    assert bootstrap.ca_cert_hashes and bootstrap.ca_cert_hashes[0].startswith("sha256:")
    secret = w.api.objects[("secrets", f"kube-system/bootstrap-token-{token_id}")]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == m["metadata"]["uid"]
    binding = w.api.items(CLUSTER_ROLE_BINDINGS)[0]
    assert binding["subjects"][0]["name"] == f"system:bootstrap:{token_id}"
    assert w.api.items(CLUSTER_ROLES)[0]["rules"][0]["resourceNames"] == [name]
    assert "InstanceCreated" in w.events.reasons(name)


async def test_a_restarted_operator_finds_the_instance_an_interrupted_attempt_launched() -> None:
    w = World()
    w.pool(replicas=1)
    await w.pools.reconcile("p")
    (name,) = [m["metadata"]["name"] for m in w.api.items(MACHINES)]
    # The crash: the status said Provisioning and the instance was launched, but never recorded.
    w.api.put(MACHINES, {**w.machine(name), "status": {"phase": "Provisioning"}})
    first = await w.cloud.create_instance(
        "c1", InstanceSpec(name=name, owner=Owner("Machine", name), instance_type="", image="")
    )
    await w.machines.reconcile(name)
    assert len(w.cloud.live()) == 1
    assert w.machine(name)["status"]["instanceID"] == first.id
    token = w.specs[-1].token
    # A second pass keeps the same token (it is still valid) and launches nothing new.
    w.api.put(MACHINES, {**w.machine(name), "status": {"phase": "Provisioning"}})
    await w.machines.reconcile(name)
    assert w.specs[-1].token == token and len(w.cloud.live()) == 1


async def test_joined_and_ready_is_running_and_the_token_goes() -> None:
    w = World()
    (name,) = await provisioned(w)
    m = w.machine(name)
    w.api.put(
        MACHINES,
        {
            **m,
            "status": {
                **m["status"],
                "bootstrap": {
                    "steps": [{"name": "install-kubelet", "state": "Succeeded"}],
                    "completed": True,
                },
            },
        },
    )
    w.node("i-0001", m["status"]["providerID"])
    await w.machines.reconcile(name)
    m = w.machine(name)
    assert m["status"]["phase"] == "Running" and m["status"]["nodeName"] == "i-0001"
    conditions = {c["type"]: c["status"] for c in m["status"]["conditions"]}
    assert (
        conditions["InstallKubelet"] == conditions["BootstrapSucceeded"] == conditions["NodeReady"] == "True"
    )
    labels = w.api.objects[("nodes", "i-0001")]["metadata"]["labels"]
    assert labels == {api.LABEL_NODE_POOL: "p", api.LABEL_MACHINE: name}
    assert not [k for k in w.api.objects if k[0] == "secrets"]
    assert "NodeReady" in w.events.reasons(name)


async def test_a_node_that_never_joins_fails_the_machine_and_the_pool_replaces_it() -> None:
    w = World(join_timeout=60.0)
    (name,) = await provisioned(w)
    await w.machines.reconcile(name)
    assert w.machine(name)["status"]["phase"] == "Bootstrapping"
    w.clock.advance(61)
    assert await w.machines.reconcile(name) is None
    status = w.machine(name)["status"]
    assert (status["phase"], status["failureReason"]) == ("Failed", "NodeStartupTimeout")
    assert w.pools_woken[-1] == "p"
    await w.pools.reconcile("p")
    assert "Remediating" in w.events.reasons(name)
    assert w.machine(name)["metadata"].get("deletionTimestamp")
    live = [m for m in w.api.items(MACHINES) if not m["metadata"].get("deletionTimestamp")]
    assert len(live) == 1 and live[0]["metadata"]["name"] != name


async def test_deletion_drains_respecting_budgets_then_deletes_node_and_instance() -> None:
    w = World()
    (name,) = await provisioned(w)
    provider_id = w.machine(name)["status"]["providerID"]
    w.node("i-0001", provider_id)
    await w.machines.reconcile(name)
    for pod, kind in (("web", "ReplicaSet"), ("agent", "DaemonSet")):
        w.api.put(
            R.PODS,
            {
                "metadata": {
                    "name": pod,
                    "namespace": "ns",
                    "ownerReferences": [{"kind": kind, "name": "x", "controller": True}],
                },
                "spec": {"nodeName": "i-0001"},
            },
        )
    w.api.refuse_evictions = 1
    await w.api.delete(MACHINES, name)
    assert await w.machines.reconcile(name) == w.settings.drain_poll_interval
    assert w.machine(name)["status"]["phase"] == "Deleting"
    assert w.api.objects[("nodes", "i-0001")]["spec"]["unschedulable"] is True
    assert w.events.reasons(name)[-2:] == ["Draining", "DrainBlocked"]
    assert await w.machines.reconcile(name) == w.settings.drain_poll_interval  # evicted now
    assert w.api.evictions == ["ns/web"]
    # Drained (the DaemonSet pod stays): the Node goes, then the instance shuts down.
    assert await w.machines.reconcile(name) == w.settings.instance_poll_interval
    assert ("nodes", "i-0001") not in w.api.objects
    # Shutting down is still there: the finalizer stays until the instance is gone.
    assert await w.machines.reconcile(name) == w.settings.instance_poll_interval
    assert ("machines", name) in w.api.objects
    assert await w.machines.reconcile(name) is None
    assert w.cloud.live() == []
    assert ("machines", name) not in w.api.objects  # the finalizer went last
    assert not [k for k in w.api.objects if k[0] in ("secrets", "clusterroles", "clusterrolebindings")]


async def test_scale_down_and_pool_deletion_delete_machines() -> None:
    w = World()
    names = await provisioned(w, replicas=3)
    w.api.put(NODEPOOLS, {**w.api.objects[("nodepools", "p")], "spec": {"replicas": 1, "zones": ["z-a"]}})
    await w.pools.reconcile("p")
    deleting = [n for n in names if w.machine(n)["metadata"].get("deletionTimestamp")]
    assert len(deleting) == 2
    w.api.objects.pop(("nodepools", "p"))
    await w.pools.reconcile("p")
    assert all(w.machine(n)["metadata"].get("deletionTimestamp") for n in names)


async def test_orphan_sweep_terminates_instances_whose_machine_is_gone() -> None:
    w = World()
    (name,) = await provisioned(w)
    uid = w.machine(name)["metadata"]["uid"]
    stale = await w.cloud.create_instance(
        "c1",
        InstanceSpec(name="p-zzzzz", owner=Owner("Machine", "p-zzzzz", uid="x"), instance_type="", image=""),
    )
    reused = await w.cloud.create_instance(
        "c1",
        InstanceSpec(
            name="other", owner=Owner("Machine", name, uid="not-" + uid), instance_type="", image=""
        ),
    )
    foreign = await w.cloud.create_instance(
        "c1", InstanceSpec(name="lb", owner=Owner("Service", "s", "ns"), instance_type="", image="")
    )
    assert sorted(await sweep_orphans(w.ctx)) == sorted([stale.id, reused.id])
    assert {i.id for i in w.cloud.instances.values() if i.state == "running"} == {
        w.machine(name)["status"]["instanceID"],
        foreign.id,
    }


@pytest.mark.parametrize("phase", ["Pending", "Provisioning"])
async def test_a_machine_whose_pool_is_gone_launches_nothing(phase: str) -> None:
    w = World()
    w.api.put(
        MACHINES,
        {
            "metadata": {"name": "p-aaaaa", "finalizers": [FINALIZER]},
            "spec": {"nodePool": "gone"},
            "status": {"phase": phase},
        },
    )
    assert await w.machines.reconcile("p-aaaaa") is None
    assert w.cloud.instances == {}


async def test_a_machine_without_the_finalizer_gets_it_first() -> None:
    w = World()
    w.pool(replicas=0)
    w.api.put(MACHINES, {"metadata": {"name": "p-bbbbb"}, "spec": {"nodePool": "p"}})
    assert await w.machines.reconcile("p-bbbbb") == 0.0
    assert w.machine("p-bbbbb")["metadata"]["finalizers"] == [FINALIZER]
    assert w.cloud.instances == {}


async def test_a_dead_nodes_terminating_pods_do_not_hold_its_deletion() -> None:
    w = World()
    (name,) = await provisioned(w)
    w.node("i-0001", w.machine(name)["status"]["providerID"], ready="Unknown")
    w.api.put(
        R.PODS,
        {
            "metadata": {"name": "stuck", "namespace": "ns", "deletionTimestamp": "t"},
            "spec": {"nodeName": "i-0001"},
        },
    )
    await w.api.delete(MACHINES, name)
    for _ in range(5):
        if await w.machines.reconcile(name) is None:
            break
    assert ("machines", name) not in w.api.objects
    assert ("nodes", "i-0001") not in w.api.objects
