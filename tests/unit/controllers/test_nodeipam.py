"""The node IPAM controller against a fake API: rebuild on start, no double allocation, release."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.nodeipam import NodeIPAMController, build_cidr_sets
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventRecorder,
    FakeClock,
    InformerFactory,
)


class FakeNodes:
    """Node patches only, with resourceVersion preconditions, as the API server does them."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.rv = 10

    def add(self, name: str, cidrs: list[str] | None = None) -> dict[str, Any]:
        self.rv += 1
        node: dict[str, Any] = {
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(self.rv)},
            "spec": {},
        }
        if cidrs:
            node["spec"] = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
        self.nodes[name] = node
        return copy.deepcopy(node)

    async def patch(
        self, rp: ResourcePath, name: str, patch: Any, namespace: str | None = None, **_: Any
    ) -> Any:
        node = self.nodes[name]
        if patch["metadata"]["resourceVersion"] != node["metadata"]["resourceVersion"]:
            raise errors.Conflict(message="the object has been modified")
        self.rv += 1
        node["spec"].update(patch["spec"])
        node["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(node)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))


def controller(api: FakeNodes, config: ControllerConfig, events: Events | None = None) -> NodeIPAMController:
    client = cast(Client, api)
    ctx = ControllerContext(
        client=client,
        informers=InformerFactory(client),
        recorder=cast(EventRecorder, events or Events()),
        clock=FakeClock(),
        config=config,
    )
    return NodeIPAMController(ctx)


def see(ctrl: NodeIPAMController, api: FakeNodes, name: str) -> None:
    """The informer catching up with the API."""
    ctrl.nodes.apply("MODIFIED" if ctrl.nodes.get(name) else "ADDED", copy.deepcopy(api.nodes[name]))


async def test_existing_allocations_are_rebuilt_before_allocating() -> None:
    api = FakeNodes()
    api.add("old", ["10.244.0.0/24"])
    api.add("new")
    ctrl = controller(api, ControllerConfig(cluster_cidr="10.244.0.0/22", node_cidr_mask_size=24))
    see(ctrl, api, "old")
    see(ctrl, api, "new")
    await ctrl.reconcile("new")
    assert api.nodes["new"]["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}


async def test_a_lagging_cache_gets_a_conflict_not_a_second_cidr() -> None:
    api = FakeNodes()
    api.add("n1")
    ctrl = controller(api, ControllerConfig(cluster_cidr="10.244.0.0/22", node_cidr_mask_size=24))
    see(ctrl, api, "n1")
    await ctrl.reconcile("n1")
    assigned = api.nodes["n1"]["spec"]["podCIDRs"]
    # The cache still shows the node without CIDRs: the write must not go through.
    with pytest.raises(errors.Conflict):
        await ctrl.reconcile("n1")
    assert api.nodes["n1"]["spec"]["podCIDRs"] == assigned
    see(ctrl, api, "n1")
    await ctrl.reconcile("n1")
    assert ctrl.cidr_sets[0].allocated == 1


async def test_deleted_nodes_give_their_cidrs_back_and_exhaustion_is_reported() -> None:
    api = FakeNodes()
    events = Events()
    ctrl = controller(api, ControllerConfig(cluster_cidr="10.244.0.0/23", node_cidr_mask_size=24), events)
    for name in ("a", "b", "c"):
        api.add(name)
        see(ctrl, api, name)
        if name == "c":
            with pytest.raises(errors.InternalError, match="no remaining CIDRs"):
                await ctrl.reconcile(name)
        else:
            await ctrl.reconcile(name)
            see(ctrl, api, name)
    assert events.seen == [("Warning", "CIDRNotAvailable", "Node c status is now: CIDRNotAvailable")]
    ctrl.nodes.apply("DELETED", copy.deepcopy(api.nodes.pop("a")))
    await ctrl.reconcile("c")
    assert api.nodes["c"]["spec"]["podCIDRs"] == ["10.244.0.0/24"]


async def test_dual_stack_nodes_get_one_cidr_per_family() -> None:
    api = FakeNodes()
    api.add("n1")
    config = ControllerConfig(cluster_cidr="10.244.0.0/16,fd00:10:244::/56", node_cidr_mask_size=24)
    ctrl = controller(api, config)
    see(ctrl, api, "n1")
    await ctrl.reconcile("n1")
    assert api.nodes["n1"]["spec"] == {
        "podCIDR": "10.244.0.0/24",
        "podCIDRs": ["10.244.0.0/24", "fd00:10:244::/64"],
    }


def test_service_range_is_kept_out_of_the_pod_cidrs() -> None:
    (cidrs,) = build_cidr_sets("10.0.0.0/16", 24, service_cidr="10.0.0.0/24")
    assert str(cidrs.allocate_next()) == "10.0.1.0/24"
