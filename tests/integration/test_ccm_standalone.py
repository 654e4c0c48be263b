"""`pinnace ccm` alone against a server running none in process: leader election on the Lease
kube-system/cloud-controller-manager, a standby taking over when the leader stops."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from ccm.nodeutil import TAINT_UNINITIALIZED
from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import R
from providers.config import load_cloud_config
from providers.local import open_cloud, provider_for
from providers.model import InstanceSpec, Owner
from tests.integration.conftest import REPO, ServerProcess, start_server
from tests.integration.controller_harness import client_for, eventually

CLUSTER = "standalone"


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("ccm-standalone") / "data", "--cloud-provider", "none", "--disable-scheduler"
    )
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture
async def client(plain_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(plain_server) as c:
        yield c


def start_ccm(server: ServerProcess, config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlplane",
            "--log-format",
            "text",
            "ccm",
            "--kubeconfig",
            str(server.kubeconfig),
            "--cloud-provider",
            "local",
            "--cloud-config",
            str(config),
            "--cluster-cidr",
            "10.244.0.0/16",
            "--leader-elect-lease-duration",
            "4",
            "--leader-elect-renew-deadline",
            "3",
            "--leader-elect-retry-period",
            "0.5",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


async def test_leader_election_and_takeover(
    plain_server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(
        yaml.safe_dump({"clusterID": CLUSTER, "local": {"stateFile": str(tmp_path / "cloud.db")}})
    )
    cloud = open_cloud(load_cloud_config(config))
    instances = provider_for(cloud).instances
    first = start_ccm(plain_server, config, tmp_path / "ccm-1.log")
    second = start_ccm(plain_server, config, tmp_path / "ccm-2.log")
    try:

        async def holder() -> str:
            try:
                lease = await client.get(R.LEASES, "cloud-controller-manager", "kube-system")
            except errors.NotFound:
                return ""
            return str(lease["spec"].get("holderIdentity") or "")

        leader = await eventually(holder, timeout=30)

        async def initialise(name: str) -> None:
            owner = Owner(kind="Machine", name=name)
            assert instances is not None
            instance = await instances.create_instance(
                CLUSTER, InstanceSpec(name=name, owner=owner, instance_type="local.small", image="img")
            )
            taint = {"key": TAINT_UNINITIALIZED, "value": "true", "effect": "NoSchedule"}
            spec = {"taints": [taint], "providerID": instance.provider_id}
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}
            await client.create(R.NODES, node)

            async def done() -> bool:
                current = await client.get(R.NODES, name)
                return (
                    not current["spec"].get("taints")
                    and "node.kubernetes.io/instance-type" in current["metadata"]["labels"]
                )

            await eventually(done, timeout=30)

        await initialise(f"a-{uuid.uuid4().hex[:5]}")
        # Stop whichever leads; the standby takes the lease (released on a clean stop) and works.
        leading, standby = (
            (first, second)
            if (tmp_path / "ccm-1.log").read_text().count("became the leader")
            else (second, first)
        )
        assert stop(leading) == 0

        async def new_holder() -> str:
            current = await holder()
            return current if current and current != leader else ""

        await eventually(new_holder, timeout=30)
        await initialise(f"b-{uuid.uuid4().hex[:5]}")
        assert standby.poll() is None
    finally:
        codes = [stop(first), stop(second)]
        cloud.close()
    assert codes == [0, 0], (tmp_path / "ccm-1.log").read_text()[-2000:] + (
        tmp_path / "ccm-2.log"
    ).read_text()[-2000:]
