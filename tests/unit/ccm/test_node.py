"""The cloud node controller against the local cloud: initialisation in one update, addresses
honouring the kubelet's node IP, a Warning Event when it cannot initialise, periodic refresh."""

from __future__ import annotations

from typing import Any

from ccm.node import EVENT_INIT_FAILED, CloudNodeController
from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.controllers.runtime import FakeClock, R
from providers.capabilities import CloudProvider
from providers.local import LocalCloud
from tests.unit.ccm.conftest import launch
from tests.unit.ccm.fakes import FakeAPI, make, ready, settings_for

UNINIT = {"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"}


def kubelet_node(
    name: str, provider_id: str = "", node_ip: str = "", taints: list[Any] | None = None
) -> dict[str, Any]:
    """As a kubelet with --cloud-provider=external registers."""
    node: dict[str, Any] = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}, "annotations": {}},
        "spec": {"taints": [UNINIT, *(taints or [])]},
        "status": {**ready(), "addresses": [{"type": "Hostname", "address": name}]},
    }
    if provider_id:
        node["spec"]["providerID"] = provider_id
    if node_ip:
        node["metadata"]["annotations"]["alpha.kubernetes.io/provided-node-ip"] = node_ip
    return node


async def test_a_tainted_node_is_initialised_in_one_update(provider: CloudProvider) -> None:
    instance = await launch(provider, "worker-1")
    api = FakeAPI()
    other = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    api.add(R.NODES, kubelet_node("worker-1", instance.provider_id, taints=[other]))
    ctrl, events = make(CloudNodeController, api, settings_for(provider))
    await ctrl.reconcile("worker-1")
    node = api.obj(R.NODES, "worker-1")
    assert node is not None
    labels = node["metadata"]["labels"]
    for key in ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"):
        assert labels[key] == "local.small"
    for key in ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"):
        assert labels[key] == instance.zone
    for key in ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"):
        assert labels[key] == instance.region
    assert node["spec"]["taints"] == [other]
    assert node["spec"]["providerID"] == instance.provider_id
    types = [a["type"] for a in node["status"]["addresses"]]
    assert types == ["InternalIP", "InternalDNS", "Hostname"]  # the cloud gave a Hostname: kubelet's dropped
    assert [w[0] for w in api.writes] == ["update", "patch/status"]
    assert events.find("Synced") == [("Node", "worker-1", "Normal", "Synced", "Node synced successfully")]


async def test_provider_id_is_found_by_name_and_the_node_ip_goes_first(
    cloud: LocalCloud, provider: CloudProvider
) -> None:
    instance = await launch(provider, "worker-2")
    internal = next(a.address for a in instance.addresses if a.type == "InternalIP")
    api = FakeAPI()
    api.add(R.NODES, kubelet_node("worker-2", node_ip=internal))
    ctrl, _ = make(CloudNodeController, api, settings_for(provider))
    await ctrl.reconcile("worker-2")
    node = api.obj(R.NODES, "worker-2")
    assert node is not None
    assert node["spec"]["providerID"] == instance.provider_id
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": internal}
    assert "taints" not in node["spec"]


async def test_failures_leave_the_taint_and_say_why_on_the_node(provider: CloudProvider) -> None:
    instance = await launch(provider, "worker-3")
    api = FakeAPI()
    api.add(R.NODES, kubelet_node("ghost", "local:///local-1a/i-00000000000000000"))
    api.add(R.NODES, kubelet_node("bad-ip", instance.provider_id, node_ip="10.99.99.99"))
    clock = FakeClock()
    ctrl, events = make(CloudNodeController, api, settings_for(provider), clock)
    for name in ("ghost", "bad-ip"):
        await ctrl.process(name)
        node = api.obj(R.NODES, name)
        assert node is not None and node["spec"]["taints"] == [UNINIT]
    failed = events.find(EVENT_INIT_FAILED)
    assert [(e[1], e[2]) for e in failed] == [("ghost", "Warning"), ("bad-ip", "Warning")]
    assert "InvalidInstanceID.NotFound" in failed[0][4] and TAINT_UNINITIALIZED in failed[0][4]
    assert "10.99.99.99" in failed[1][4]
    # NotFound may heal (an instance still launching); a bad node IP needs the user: longest wait.
    delays = {key: due - clock.monotonic() for due, _, key in ctrl.queue._waiting}
    assert delays["ghost"] < 1.0 and delays["bad-ip"] == ctrl.give_up_delay
    assert api.writes == []


async def test_periodic_refresh_updates_addresses_of_our_nodes_only(provider: CloudProvider) -> None:
    instance = await launch(provider, "worker-4")
    api = FakeAPI()
    stale = {
        "metadata": {"name": "worker-4"},
        "spec": {"providerID": instance.provider_id},
        "status": {**ready(), "addresses": [{"type": "InternalIP", "address": "10.9.9.9"}]},
    }
    sim = {
        "metadata": {"name": "sim-1"},
        "spec": {"providerID": "sim://sim-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
    }
    api.add(R.NODES, stale)
    api.add(R.NODES, sim)
    ctrl, _ = make(CloudNodeController, api, settings_for(provider))
    await ctrl.update_node_status()
    node = api.obj(R.NODES, "worker-4")
    assert node is not None
    assert [a["address"] for a in node["status"]["addresses"]] == [a.address for a in instance.addresses]
    assert api.writes == [("patch/status", "nodes", "worker-4")]
    await ctrl.update_node_status()  # nothing changed: nothing written
    assert len(api.writes) == 1


async def test_beta_labels_are_reconciled_to_ga_on_initialised_nodes(provider: CloudProvider) -> None:
    api = FakeAPI()
    labels = {"failure-domain.beta.kubernetes.io/zone": "z1", "topology.kubernetes.io/zone": "old"}
    api.add(R.NODES, {"metadata": {"name": "n", "labels": labels}, "spec": {}, "status": {}})
    ctrl, _ = make(CloudNodeController, api, settings_for(provider))
    await ctrl.reconcile("n")
    node = api.obj(R.NODES, "n")
    assert node is not None and node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "z1"
