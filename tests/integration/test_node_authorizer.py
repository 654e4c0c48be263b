"""Done-when 3 of the identity issue: a node reads its own pods' secrets and not another node's,
and cannot modify another Node. A real server (in this process, to issue node certificates from
its CA; the Node authorizer sits before RBAC as upstream's --authorization-mode=Node,RBAC) and
real kubectl with a `system:node:<name>` client certificate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.apiserver import kubeconfig, pki, server


@dataclass
class Cluster:
    admin: Path
    nodes: dict[str, Path]
    home: Path

    async def kubectl(
        self, kubeconfig_path: Path, *args: str, stdin: str | None = None
    ) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig_path), "HOME": str(self.home)}
        proc = await asyncio.create_subprocess_exec(
            "kubectl",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def as_admin(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = await self.kubectl(self.admin, *args, stdin=stdin)
        assert code == 0, err
        return out

    async def as_node(self, node: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return await self.kubectl(self.nodes[node], *args, stdin=stdin)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    config = server.ServerConfig(data_dir=tmp_path / "data", port=0, compaction_interval=0)
    running = await server.start(config)
    stop = asyncio.Event()
    task = asyncio.create_task(running.run_controllers(stop))
    nodes = {}
    for node in ("node-a", "node-b"):
        cert, key = pki.issue_client_cert(running.pki, f"system:node:{node}", ["system:nodes"])
        path = tmp_path / f"{node}.kubeconfig"
        kubeconfig.write_kubeconfig(
            path, server=running.url, ca_pem=running.pki.ca_pem(), client_cert_pem=cert, client_key_pem=key
        )
        nodes[node] = path
    try:
        yield Cluster(config.kubeconfig_path, nodes, tmp_path)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await running.stop()


def pod(name: str, node: str, secret: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
        },
    }


async def test_a_node_reads_only_its_pods_secrets_and_modifies_only_itself(cluster: Cluster) -> None:
    # Upstream binds system:node to no one: what a node may do is the Node authorizer's call.
    binding = json.loads(await cluster.as_admin("get", "clusterrolebinding", "system:node", "-o", "json"))
    assert not binding.get("subjects")
    await cluster.as_admin("create", "namespace", "apps")
    await cluster.as_admin("create", "serviceaccount", "default", "-n", "apps")
    for name in ("secret-a", "secret-b", "unused"):
        await cluster.as_admin("create", "secret", "generic", name, "-n", "apps", f"--from-literal=k={name}")
    for node in ("node-a", "node-b"):
        await cluster.as_admin(
            "create",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
        )
    await cluster.as_admin("create", "-f", "-", stdin=json.dumps(pod("pod-a", "node-a", "secret-a")))
    await cluster.as_admin("create", "-f", "-", stdin=json.dumps(pod("pod-b", "node-b", "secret-b")))

    code, out, err = await cluster.as_node("node-a", "get", "secret", "secret-a", "-n", "apps", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["metadata"]["name"] == "secret-a"
    code, _, err = await cluster.as_node("node-a", "get", "secret", "secret-b", "-n", "apps")
    assert code != 0
    assert 'User "system:node:node-a" cannot get resource "secrets"' in err
    assert "no relationship found between node 'node-a' and this object" in err
    code, _, err = await cluster.as_node("node-a", "get", "secret", "unused", "-n", "apps")
    assert code != 0 and "forbidden" in err
    code, _, err = await cluster.as_node("node-a", "get", "secrets", "-n", "apps")
    assert code != 0 and "forbidden" in err
    code, _, err = await cluster.as_node("node-b", "get", "secret", "secret-b", "-n", "apps")
    assert code == 0, err

    # its own Node: readable and labelable with kubelet labels; another node's: neither
    code, _, err = await cluster.as_node("node-a", "get", "node", "node-a")
    assert code == 0, err
    code, _, err = await cluster.as_node(
        "node-a", "label", "node", "node-a", "topology.kubernetes.io/zone=z1"
    )
    assert code == 0, err
    code, _, err = await cluster.as_node(
        "node-a", "label", "node", "node-a", "node-restriction.kubernetes.io/gpu=yes"
    )
    assert code != 0 and "is not allowed to modify labels: node-restriction.kubernetes.io/gpu" in err
    code, _, err = await cluster.as_node(
        "node-a", "label", "node", "node-b", "topology.kubernetes.io/zone=z1"
    )
    assert code != 0
    # reading node-b is already refused; a blind write gets past the authorizer to NodeRestriction
    other = json.loads(await cluster.as_admin("get", "node", "node-b", "-o", "json"))
    other["metadata"].setdefault("labels", {})["stolen"] = "yes"
    code, _, err = await cluster.as_node(
        "node-a", "replace", "--raw", "/api/v1/nodes/node-b", "-f", "-", stdin=json.dumps(other)
    )
    assert code != 0 and 'node "node-a" is not allowed to modify node "node-b"' in err, err
    code, _, err = await cluster.as_node("node-a", "delete", "node", "node-b")
    assert code != 0 and "forbidden" in err
    # pods: the status of its own (written blind, as a kubelet does), nothing of the other's
    for name, allowed in (("pod-b", False), ("pod-a", True)):
        obj = json.loads(await cluster.as_admin("get", "pod", name, "-n", "apps", "-o", "json"))
        obj["status"]["message"] = "seen by node-a"
        path = f"/api/v1/namespaces/apps/pods/{name}/status"
        code, _, err = await cluster.as_node(
            "node-a", "replace", "--raw", path, "-f", "-", stdin=json.dumps(obj)
        )
        if allowed:
            assert code == 0, err
        else:
            assert (
                code != 0 and "can only update pod status for pods with spec.nodeName set to itself" in err
            ), err
    code, _, err = await cluster.as_node("node-a", "delete", "pod", "pod-b", "-n", "apps")
    assert code != 0 and "can only delete pods with spec.nodeName set to itself" in err, err
