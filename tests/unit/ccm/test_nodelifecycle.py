"""The cloud node lifecycle controller: gone instances take their Node with them, stopped ones
taint it, Ready removes the taint; Nodes of no instance of ours are never touched."""

from __future__ import annotations

from typing import Any

from ccm.nodelifecycle import SHUTDOWN_TAINT, CloudNodeLifecycleController
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from providers.local import LocalCloud, split_provider_id
from tests.unit.ccm.conftest import launch
from tests.unit.ccm.fakes import FakeAPI, make, ready, settings_for


def node(name: str, provider_id: str, status: str, taints: list[Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"providerID": provider_id, "taints": taints or []},
        "status": ready(status),
    }


async def test_terminated_deleted_stopped_tainted_ready_untainted(
    cloud: LocalCloud, provider: CloudProvider
) -> None:
    gone, stopped, back = [await launch(provider, n) for n in ("gone", "stopped", "back")]
    await cloud.terminate_instance(split_provider_id(gone.provider_id)[1])
    await cloud.stop_instance(split_provider_id(stopped.provider_id)[1])
    api = FakeAPI()
    api.add(R.NODES, node("gone", gone.provider_id, "Unknown"))
    api.add(R.NODES, node("stopped", stopped.provider_id, "False"))
    api.add(R.NODES, node("back", back.provider_id, "True", [dict(SHUTDOWN_TAINT)]))
    api.add(R.NODES, node("sim", "sim://sim", "False"))  # a simulated agent: not the cloud's to judge
    api.add(R.NODES, node("other", "aws:///us-east-1a/i-1", "False"))
    excluded = node("excluded", gone.provider_id, "False")
    excluded["metadata"]["labels"] = {"node.kubernetes.io/exclude-from-lifecycle-management": ""}
    api.add(R.NODES, excluded)
    ctrl, events = make(CloudNodeLifecycleController, api, settings_for(provider))
    await ctrl.monitor_nodes()
    assert api.obj(R.NODES, "gone") is None
    assert events.find("DeletingNode") == [
        (
            "Node",
            "gone",
            "Normal",
            "DeletingNode",
            "Deleting node gone because it does not exist in the cloud provider",
        )
    ]
    stopped_node = api.obj(R.NODES, "stopped")
    back_node = api.obj(R.NODES, "back")
    assert stopped_node is not None and stopped_node["spec"]["taints"] == [SHUTDOWN_TAINT]
    assert back_node is not None and "taints" not in back_node["spec"]
    for untouched in ("sim", "other", "excluded"):
        assert api.obj(R.NODES, untouched) is not None
    writes = list(api.writes)
    await ctrl.monitor_nodes()  # converged: nothing more to do
    assert api.writes == writes
