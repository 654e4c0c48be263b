"""The service controller against the local cloud: finalizer first, ingress through the status,
node-set updates, switch-away and delete, upstream Events, and no retry storm on bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from ccm.service import CONDITION_TYPE, FINALIZER, NODES_KEY, ServiceController, needs_update
from controlplane.controllers.runtime import FakeClock, R
from providers.capabilities import CloudProvider, LoadBalancers
from providers.model import LoadBalancerService, LoadBalancerStatus, NodeRef
from tests.unit.ccm.conftest import CLUSTER, launch
from tests.unit.ccm.fakes import FakeAPI, drain, make, ready, settings_for


class Spy:
    """The local load balancers, recording each call and what the API held at that moment."""

    def __init__(self, inner: LoadBalancers, api: FakeAPI) -> None:
        self.inner, self.api = inner, api
        self.calls: list[tuple[str, tuple[str, ...], list[str]]] = []  # op, node names, finalizers then

    def _note(self, op: str, service: LoadBalancerService, nodes: Sequence[NodeRef] = ()) -> None:
        svc = self.api.obj(R.SERVICES, f"{service.namespace}/{service.name}") or {"metadata": {}}
        self.calls.append(
            (op, tuple(sorted(n.name for n in nodes)), list(svc["metadata"].get("finalizers") or []))
        )

    def load_balancer_name(self, cluster_id: str, service: LoadBalancerService) -> str:
        return self.inner.load_balancer_name(cluster_id, service)

    async def get_load_balancer(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerStatus | None:
        return await self.inner.get_load_balancer(cluster_id, service)

    async def ensure_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> LoadBalancerStatus:
        self._note("ensure", service, nodes)
        return await self.inner.ensure_load_balancer(cluster_id, service, nodes)

    async def update_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> None:
        self._note("update", service, nodes)
        await self.inner.update_load_balancer(cluster_id, service, nodes)

    async def ensure_load_balancer_deleted(self, cluster_id: str, service: LoadBalancerService) -> None:
        self._note("delete", service)
        await self.inner.ensure_load_balancer_deleted(cluster_id, service)


def lb_service(name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations or {}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "externalTrafficPolicy": "Cluster",
            **spec,
        },
        "status": {"loadBalancer": {}},
    }


@pytest.fixture
async def world(provider: CloudProvider) -> Any:
    api = FakeAPI()
    assert provider.load_balancers is not None
    spy = Spy(provider.load_balancers, api)
    spied = dataclasses.replace(provider, load_balancers=spy)
    nodes = {}
    for name in ("n1", "n2"):
        instance = await launch(provider, name)
        nodes[name] = instance
        api.add(
            R.NODES,
            {"metadata": {"name": name}, "spec": {"providerID": instance.provider_id}, "status": ready()},
        )
    clock = FakeClock()
    ctrl, events = make(ServiceController, api, settings_for(spied), clock)
    return api, spy, ctrl, events, clock


async def inventory(provider: CloudProvider) -> list[str]:
    assert provider.inventory is not None
    return sorted(r.kind for r in await provider.inventory.list_owned(CLUSTER) if r.kind != "instance")


async def test_lifecycle_of_a_load_balancer(world: Any, provider: CloudProvider) -> None:
    api, spy, ctrl, events, _ = world
    api.add(R.SERVICES, lb_service("web"))
    await ctrl.reconcile("ns/web")
    svc = api.obj(R.SERVICES, "ns/web")
    assert svc["metadata"]["finalizers"] == [FINALIZER]
    assert spy.calls == [("ensure", ("n1", "n2"), [FINALIZER])]  # the finalizer was there first
    (ingress,) = svc["status"]["loadBalancer"]["ingress"]
    assert ingress["ip"].startswith("192.0.2.")
    assert events.reasons("web") == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert "load-balancer" in await inventory(provider)

    # A node leaves the set (excluded by label): UpdateLoadBalancer with the rest.
    n2 = api.obj(R.NODES, "n2")
    n2["metadata"]["labels"] = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
    api.add(R.NODES, n2)
    assert NODES_KEY in ctrl.queue._dirty
    await ctrl.reconcile(NODES_KEY)
    assert spy.calls[-1][:2] == ("update", ("n1",))
    assert events.reasons("web")[-1] == "UpdatedLoadBalancer"
    await ctrl.reconcile(NODES_KEY)  # same set: no call
    assert len(spy.calls) == 2

    # Ports change: the informer handler queues it, ensure runs again.
    svc = api.obj(R.SERVICES, "ns/web")
    svc["spec"]["ports"].append(
        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443, "nodePort": 30443}
    )
    await api.patch(R.SERVICES, "web", {"spec": {"ports": svc["spec"]["ports"]}}, "ns")
    assert "ns/web" in ctrl.queue._dirty
    await ctrl.reconcile("ns/web")
    assert spy.calls[-1][:2] == ("ensure", ("n1",))

    # Deleting: the load balancer goes, then the finalizer, then the Service.
    await api.delete(R.SERVICES, "web", "ns")
    await ctrl.reconcile("ns/web")
    assert api.obj(R.SERVICES, "ns/web") is None
    assert spy.calls[-1][0] == "delete" and spy.calls[-1][2] == [FINALIZER]
    assert events.reasons("web")[-2:] == ["DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert await inventory(provider) == []
    calls = len(spy.calls)
    await ctrl.reconcile("ns/web")  # the DELETED event: nothing left to do, no second delete
    assert len(spy.calls) == calls and events.reasons("web")[-1] == "DeletedLoadBalancer"


async def test_switching_away_from_load_balancer_deletes_it(world: Any, provider: CloudProvider) -> None:
    api, _, ctrl, events, _ = world
    api.add(R.SERVICES, lb_service("web"))
    await ctrl.reconcile("ns/web")
    await api.patch(R.SERVICES, "web", {"spec": {"type": "ClusterIP"}}, "ns")
    assert ("Service", "web", "Normal", "Type", "LoadBalancer -> ClusterIP") in events.seen
    await ctrl.reconcile("ns/web")
    svc = api.obj(R.SERVICES, "ns/web")
    assert not svc["metadata"].get("finalizers")
    assert not svc["status"]["loadBalancer"].get("ingress")
    assert await inventory(provider) == []


async def test_other_classes_and_types_are_left_alone(world: Any) -> None:
    api, spy, ctrl, _, _ = world
    api.add(R.SERVICES, lb_service("theirs", loadBalancerClass="example.com/lb"))
    api.add(R.SERVICES, lb_service("ours", loadBalancerClass="pinnace.dev/cloud"))
    api.add(
        R.SERVICES,
        {"metadata": {"name": "plain", "namespace": "ns"}, "spec": {"type": "ClusterIP", "ports": []}},
    )
    assert ctrl.queue._dirty == {"ns/ours", NODES_KEY}  # the nodes came with the first list
    await ctrl.reconcile("ns/theirs")
    assert spy.calls == []
    await ctrl.reconcile("ns/ours")
    assert len(spy.calls) == 1


async def test_bad_annotation_warns_once_and_backs_off(world: Any, provider: CloudProvider) -> None:
    api, _, ctrl, events, clock = world
    annotations = {"service.beta.kubernetes.io/load-balancer-source-ranges": "not-a-cidr"}
    api.add(R.SERVICES, lb_service("bad", annotations=annotations))
    await ctrl.process("ns/bad")
    (failed,) = events.find("SyncLoadBalancerFailed")
    assert (
        failed[2] == "Warning"
        and "not-a-cidr" in failed[4]
        and failed[4].startswith("Error syncing load balancer: ")
    )
    svc = api.obj(R.SERVICES, "ns/bad")
    (cond,) = svc["status"]["conditions"]
    assert (
        cond["type"] == CONDITION_TYPE
        and cond["status"] == "False"
        and cond["reason"] == "InvalidConfiguration"
    )
    assert "not-a-cidr" in cond["message"]
    ((due, _, key),) = ctrl.queue._waiting
    assert key == "ns/bad" and due - clock.monotonic() == 300.0  # upstream's maxRetryDelay, not a storm
    assert await inventory(provider) == []  # nothing half-made
    # Fixing it clears the condition.
    await api.patch(R.SERVICES, "bad", {"metadata": {"annotations": None}}, "ns")
    await ctrl.process("ns/bad")
    svc = api.obj(R.SERVICES, "ns/bad")
    assert svc["status"]["conditions"][0]["status"] == "True"
    assert svc["status"]["loadBalancer"]["ingress"]


async def test_transient_failures_back_off_from_five_seconds(world: Any) -> None:
    api, spy, ctrl, _, clock = world
    api.add(R.SERVICES, lb_service("web"))

    async def boom(*_: Any) -> LoadBalancerStatus:
        from providers.errors import Transient

        raise Transient("503 Service Unavailable", code="ServiceUnavailable")

    spy.ensure_load_balancer = boom
    delays = []
    for _ in range(3):
        await ctrl.process("ns/web")
        due, _, _ = ctrl.queue._waiting.pop()
        delays.append(due - clock.monotonic())
    assert delays == [5.0, 10.0, 20.0]


def test_needs_update_ignores_status_only_changes() -> None:
    old = lb_service("a")
    new = {**old, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.4"}]}}}
    assert needs_update(old, new, "pinnace.dev/cloud") is None
    moved = {**old, "spec": {**old["spec"], "externalTrafficPolicy": "Local"}}
    assert needs_update(old, moved, "pinnace.dev/cloud") == [("ExternalTrafficPolicy", "Cluster -> Local")]


async def test_a_deletion_missed_while_down_is_finished_by_the_next_term(
    world: Any, provider: CloudProvider
) -> None:
    api, _, ctrl, _, _ = world
    api.add(R.SERVICES, lb_service("web"))
    await ctrl.reconcile("ns/web")
    assert "load-balancer" in await inventory(provider)
    api.factory = None  # the CCM is down: nobody watches
    await api.delete(R.SERVICES, "web", "ns")
    svc = api.obj(R.SERVICES, "ns/web")
    assert svc is not None and svc["metadata"]["deletionTimestamp"]
    fresh, _ = make(ServiceController, api, ctrl.settings)  # a new term: fresh caches, first list
    assert "ns/web" in fresh.queue._dirty
    await fresh.reconcile("ns/web")
    assert api.obj(R.SERVICES, "ns/web") is None
    assert await inventory(provider) == []


async def test_readiness_does_not_move_the_hosts(world: Any) -> None:
    """Upstream's stable node set (KEP-3458): a NotReady node stays a target (the cloud's health
    check judges it), so kubelets missing heartbeats cluster-wide do not empty every load balancer."""
    api, spy, ctrl, _, _ = world
    api.add(R.SERVICES, lb_service("web"))
    await ctrl.reconcile("ns/web")
    ctrl.queue._dirty.clear()
    for name in ("n1", "n2"):
        node = api.obj(R.NODES, name)
        api.add(R.NODES, {**node, "status": ready("Unknown")})
    assert NODES_KEY not in ctrl.queue._dirty
    await ctrl.reconcile(NODES_KEY)
    assert [c[:2] for c in spy.calls] == [("ensure", ("n1", "n2"))]
    api.add(R.SERVICES, lb_service("new"))
    await ctrl.reconcile("ns/new")
    assert spy.calls[-1][:2] == ("ensure", ("n1", "n2"))


async def test_exclusion_label_is_parsed_as_a_bool(world: Any) -> None:
    api, spy, ctrl, _, _ = world
    label = "node.kubernetes.io/exclude-from-external-load-balancers"
    n1 = api.obj(R.NODES, "n1")
    api.add(R.NODES, {**n1, "metadata": {**n1["metadata"], "labels": {label: "false"}}})
    n2 = api.obj(R.NODES, "n2")
    api.add(R.NODES, {**n2, "metadata": {**n2["metadata"], "labels": {label: "true"}}})
    api.add(R.SERVICES, lb_service("web"))
    await ctrl.reconcile("ns/web")
    assert spy.calls[-1][:2] == ("ensure", ("n1",))


async def test_a_node_arriving_while_the_load_balancer_is_made_is_added(
    world: Any, provider: CloudProvider
) -> None:
    """The node sync that runs during a first ensure skips that Service (no hosts recorded yet):
    the ensure itself notices the node set moved and queues another node sync."""
    api, spy, ctrl, _, _ = world
    instance = await launch(provider, "n3")
    inner = spy.ensure_load_balancer

    async def slow_ensure(
        cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> LoadBalancerStatus:
        status = await inner(cluster_id, service, nodes)
        api.add(
            R.NODES,
            {"metadata": {"name": "n3"}, "spec": {"providerID": instance.provider_id}, "status": ready()},
        )
        list(drain(ctrl))  # the node sync that the arrival queued runs now, concurrently:
        await ctrl.reconcile(NODES_KEY)  # nothing is recorded for web yet, so it skips it
        return status

    spy.ensure_load_balancer = slow_ensure
    api.add(R.SERVICES, lb_service("web"))
    ctrl.queue._dirty.clear()
    await ctrl.reconcile("ns/web")
    assert spy.calls[-1][:2] == ("ensure", ("n1", "n2"))
    assert NODES_KEY in ctrl.queue._dirty
    await ctrl.reconcile(NODES_KEY)
    assert spy.calls[-1][:2] == ("update", ("n1", "n2", "n3"))
