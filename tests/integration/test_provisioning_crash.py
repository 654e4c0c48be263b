"""`pinnace provisioner` as a process of its own, SIGKILLed mid scale-up and mid scale-down.

A real `pinnace server --cloud-provider local` keeps its local cloud in a state file under its
data directory; the provisioner opens that file through its cloud config (rate-limited there to
two calls a second, so that scaling takes long enough to be caught half-way) and this test opens
it too, to count the instances. No nodes join (no fleet): Machines stay Bootstrapping, with a
join timeout long enough never to fire. After each kill a new process waits out the dead one's
short lease and must finish the work without a second instance for any Machine and without an
instance that no Machine owns.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from ccm.manager import open_provider
from ccm.provisioning import api
from ccm.provisioning.context import MACHINES, NODEPOOLS
from ccm.provisioning.crds import ensure_crds
from controlplane.client import Client, load_kubeconfig
from providers.capabilities import CloudProvider
from providers.model import Instance
from tests.integration.conftest import REPO, ServerProcess, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

POOL = "crash"


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("provisioning-crash") / "data", "--cloud-provider", "local")
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(crash_server: ServerProcess) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(crash_server.kubeconfig)) as client:
        await ensure_crds(client)
        yield client


@pytest.fixture(scope="module")
def cloud(crash_server: ServerProcess) -> tuple[CloudProvider, str]:
    provider, config = open_provider("local", None, data_dir=crash_server.data_dir)
    return provider, config.cluster_id


class Provisioner:
    """`pinnace provisioner` on the server's provisioner credential and local cloud."""

    def __init__(self, server: ServerProcess, *extra: str) -> None:
        self.server = server
        config = server.data_dir.parent / "provisioner-cloud.yaml"
        state = server.data_dir / "cloud" / "local.db"
        config.write_text(yaml.safe_dump({"local": {"stateFile": str(state), "qps": 2, "burst": 1}}))
        self.log_path = server.data_dir.parent / "provisioner.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controlplane",
                    "--log-format",
                    "text",
                    "provisioner",
                    "--kubeconfig",
                    str(server.data_dir / "provisioner.kubeconfig"),
                    "--cloud-provider",
                    "local",
                    "--cloud-config",
                    str(config),
                    "--leader-elect-lease-duration",
                    "2",
                    "--leader-elect-renew-deadline",
                    "1.5",
                    "--leader-elect-retry-period",
                    "0.25",
                    "--machine-poll-interval",
                    "0.3",
                    "--instance-poll-interval",
                    "0.2",
                    "--drain-poll-interval",
                    "0.2",
                    "--orphan-sweep-interval",
                    "1",
                    "--running-resync-interval",
                    "5",
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def machines(admin: Client) -> list[dict[str, Any]]:
    listing = await admin.list(MACHINES, None, params={"labelSelector": f"{api.LABEL_NODE_POOL}={POOL}"})
    return list(listing["items"])


async def instances(cloud: tuple[CloudProvider, str]) -> list[Instance]:
    provider, cluster_id = cloud
    assert provider.instances is not None
    return [i for i in await provider.instances.list_instances(cluster_id) if i.name.startswith(POOL + "-")]


async def assert_one_instance_per_machine(admin: Client, cloud: tuple[CloudProvider, str], n: int) -> None:
    """Exactly `n` live Machines, each with exactly one instance, and no instance besides."""
    items = [m for m in await machines(admin) if not m["metadata"].get("deletionTimestamp")]
    live = await instances(cloud)
    per_name = collections.Counter(i.name for i in live)
    assert [name for name, count in per_name.items() if count > 1] == [], f"duplicates: {per_name}"
    assert sorted(per_name) == sorted(m["metadata"]["name"] for m in items), "instance without a Machine"
    assert len(items) == n
    by_id = {i.id for i in live}
    for machine in items:
        assert (machine.get("status") or {}).get("phase") == "Bootstrapping", machine.get("status")
        assert machine["status"].get("instanceID") in by_id, (machine["status"], by_id)


async def converged(admin: Client, cloud: tuple[CloudProvider, str], n: int) -> bool:
    items = await machines(admin)
    live = await instances(cloud)
    phases = [str((m.get("status") or {}).get("phase")) for m in items]
    return (
        phases == ["Bootstrapping"] * n
        and all((m.get("status") or {}).get("instanceID") for m in items)
        and sorted(i.name for i in live) == sorted(m["metadata"]["name"] for m in items)
    )


async def test_sigkill_mid_scale_up_and_down_leaves_no_duplicate_or_orphan(
    crash_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str]
) -> None:
    first = Provisioner(crash_server)
    try:
        await admin.create(
            NODEPOOLS,
            {
                "apiVersion": api.API_VERSION,
                "kind": "NodePool",
                "metadata": {"name": POOL},
                "spec": {
                    "replicas": 0,
                    "zones": ["local-1a", "local-1b"],
                    "instanceType": "local.small",
                    "bootstrap": {"joinTimeout": "1h"},
                },
            },
        )
        await admin.patch(NODEPOOLS, POOL, {"spec": {"replicas": 6}})

        async def some_not_all() -> bool:
            assert first.process.poll() is None, first.log()
            return 0 < len(await instances(cloud)) < 6

        await eventually(some_not_all, 30, "the first instances", interval=0.05)
        first.kill()
        caught = len(await instances(cloud))
        assert caught < 6, "scale-up finished before the kill"
    finally:
        if first.process.poll() is None:
            first.kill()

    second = Provisioner(crash_server)
    try:
        await eventually(lambda: converged(admin, cloud, 6), 30, "6 machines with one instance each")
        await assert_one_instance_per_machine(admin, cloud, 6)
        await admin.patch(NODEPOOLS, POOL, {"spec": {"replicas": 2}})

        async def some_terminated() -> bool:
            assert second.process.poll() is None, second.log()
            return 2 < len(await instances(cloud)) < 6

        await eventually(some_terminated, 20, "the first instances to terminate", interval=0.05)
        second.kill()
        assert len(await instances(cloud)) > 2, "scale-down finished before the kill"
    finally:
        if second.process.poll() is None:
            second.kill()

    # (--install-crds: the CRDs are already as wanted, so the read-only credential is enough)
    third = Provisioner(crash_server, "--install-crds")
    try:
        await eventually(lambda: converged(admin, cloud, 2), 30, "2 machines with one instance each")
        await assert_one_instance_per_machine(admin, cloud, 2)
    finally:
        code = third.terminate()
    assert code == 0, f"the provisioner did not stop cleanly on SIGTERM ({code}):\n{third.log()}"
