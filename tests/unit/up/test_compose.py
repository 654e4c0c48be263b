"""`pinnace up`'s driver against a fake API: the default pool on a new cluster only, the wait
for Ready nodes (Leases renewed since it started), the instructions, and the timeout."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controlplane.up.compose import Upper, UpSettings, default_pool
from controlplane.up.record import ClusterRecord


class FakeAPI:
    def __init__(self, pools: list[dict[str, Any]] | None = None) -> None:
        self.pools = pools or []
        self.machines: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []
        self.leases: list[dict[str, Any]] = []
        self.lists = 0
        self.on_list: Any = None

    async def list(self, rp: Any, namespace: str | None = None, **_: Any) -> dict[str, Any]:
        self.lists += 1
        if self.on_list is not None:
            self.on_list(self)
        items = {
            "nodepools": self.pools,
            "machines": self.machines,
            "nodes": self.nodes,
            "leases": self.leases,
        }
        return {"items": list(items[rp.plural])}

    async def create(self, rp: Any, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        assert rp.plural == "nodepools"
        self.pools.append(obj)
        return obj


def settings(tmp_path: Path, **kw: Any) -> UpSettings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "record": ClusterRecord(provider="local", cluster_name="c"),
        "cloud_config": tmp_path / "cloud.yaml",
        "progress_interval": 0.01,
        "wait_timeout": 5.0,
    }
    return UpSettings(**{**base, **kw})


def bring_up(api: FakeAPI, count: int) -> None:
    now = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    api.machines = [
        {
            "metadata": {"name": f"default-{i}"},
            "spec": {"nodePool": "default"},
            "status": {"phase": "Running", "nodeName": f"n{i}", "instanceID": f"i-{i}"},
        }
        for i in range(count)
    ]
    api.nodes = [
        {"metadata": {"name": f"n{i}"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        for i in range(count)
    ]
    api.leases = [{"metadata": {"name": f"n{i}"}, "spec": {"renewTime": now}} for i in range(count)]


def test_default_pool_shape(tmp_path: Path) -> None:
    pool = default_pool(settings(tmp_path, nodes=2, zones=("a", "b"), instance_type="t3.small"))
    assert pool == {
        "apiVersion": "infra.pinnace.dev/v1alpha1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {"replicas": 2, "provider": "local", "instanceType": "t3.small", "zones": ["a", "b"]},
    }


async def test_new_cluster_gets_the_default_pool_and_instructions_once_ready(tmp_path: Path) -> None:
    api = FakeAPI()
    out = io.StringIO()
    upper = Upper(settings(tmp_path, nodes=2), out=out)
    stop = asyncio.Event()

    def progress(fake: FakeAPI) -> None:
        if fake.lists > 8:
            bring_up(fake, 2)
        if "is up" in out.getvalue():
            stop.set()

    api.on_list = progress
    await asyncio.wait_for(upper.drive(api, tmp_path / "admin.kubeconfig", stop), 10)  # type: ignore[arg-type]
    text = out.getvalue()
    assert [p["spec"]["replicas"] for p in api.pools] == [2]
    assert "Created NodePool 'default' with 2 node(s) on the local cloud" in text
    assert "nodes ready: 0/2 (default 0/2)" in text
    assert "Cluster 'c' is up: 2 node(s) Ready" in text
    assert f"export KUBECONFIG={tmp_path / 'admin.kubeconfig'}" in text
    assert upper.exit_code == 0


async def test_a_stale_ready_node_does_not_count(tmp_path: Path) -> None:
    """Nodes Ready from before a restart, whose Leases were not renewed since: still waiting."""
    api = FakeAPI(pools=[{"metadata": {"name": "default"}, "spec": {"replicas": 1}}])
    bring_up(api, 1)
    api.leases[0]["spec"]["renewTime"] = "2020-01-01T00:00:00Z"
    out = io.StringIO()
    upper = Upper(settings(tmp_path, wait_timeout=0.1), out=out)
    await upper.drive(api, tmp_path / "k", asyncio.Event())  # type: ignore[arg-type]
    assert "Resuming cluster 'c': node pools default" in out.getvalue()
    assert api.pools == [{"metadata": {"name": "default"}, "spec": {"replicas": 1}}]
    assert "nodes ready: 0/1" in out.getvalue()
    assert upper.exit_code == 1


async def test_timeout_reports_stuck_machines_stops_and_fails(tmp_path: Path) -> None:
    api = FakeAPI()
    api.machines = [
        {
            "metadata": {"name": "default-x"},
            "spec": {"nodePool": "default"},
            "status": {
                "phase": "Failed",
                "bootstrap": {
                    "steps": [
                        {"name": "install-kubelet", "state": "Failed", "logTail": "E: no such package"}
                    ],
                    "failedStep": "install-kubelet",
                },
            },
        }
    ]
    out = io.StringIO()
    upper = Upper(settings(tmp_path, nodes=1, wait_timeout=0.05), out=out)
    stop = asyncio.Event()
    await upper.drive(api, tmp_path / "k", stop)  # type: ignore[arg-type]
    text = out.getvalue()
    assert upper.exit_code == 1
    assert stop.is_set()
    assert "error: the nodes were not all Ready after 0.05s (--wait-timeout):" in text
    assert "  default-x: Failed, node -: step install-kubelet failed: E: no such package" in text
    assert "is up" not in text


async def test_keep_running_on_timeout_keeps_reporting(tmp_path: Path) -> None:
    api = FakeAPI()
    out = io.StringIO()
    upper = Upper(settings(tmp_path, nodes=1, wait_timeout=0.05, keep_running_on_timeout=True), out=out)
    stop = asyncio.Event()

    def later(fake: FakeAPI) -> None:
        if "Still running" in out.getvalue():
            bring_up(fake, 1)
            if "machine default-0" in out.getvalue():
                stop.set()

    api.on_list = later
    await asyncio.wait_for(upper.drive(api, tmp_path / "k", stop), 10)  # type: ignore[arg-type]
    text = out.getvalue()
    assert upper.exit_code == 0
    assert "Still running (--keep-running-on-timeout)" in text
    assert "machine default-0: Running instance=i-0 node=n0 ready step=-" in text
