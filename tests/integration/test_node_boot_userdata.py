"""Issue 7 section 2: nodes booted by the cloud from their instance's actual user-data.

A real `pinnace server`; the local cloud on a temporary state file; instances launched with
user-data from the renderer (node_bootstrap/cloudinit/render.py), each for its own Machine with
its own bootstrap token, which RBAC lets patch only that Machine's status. The Fleet reads each
instance's user-data back from the cloud, checks the CA by its pinned hash, plays the steps
(reporting each to the Machine), joins through a CSR and registers a Node named after the
instance. A planned fault at one step leaves that step Failed with its log tail and no Node.
A second Fleet over the same data directory resumes without bootstrapping again.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import ssl
import string
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from ccm.provisioning.crds import ensure_crds
from ccm.provisioning.instance_source import ProviderInstanceSource
from controlplane.api import errors
from controlplane.client import Client, Credentials, ResourcePath
from controlplane.tokens_cli import DEFAULT_GROUP, DEFAULT_USAGES, token_secret
from node_bootstrap.agent.bootsteps import BootState
from node_bootstrap.agent.discovery import spki_hash
from node_bootstrap.agent.kube import NODES
from node_bootstrap.cloudinit.joinconfig import MachineRef
from node_bootstrap.cloudinit.render import user_data
from node_bootstrap.cloudinit.spec import BootstrapSpec
from node_bootstrap.cloudinit.steps import STEPS
from node_bootstrap.fleet import BootFault, BootFaults, Fleet
from providers.capabilities import CloudProvider
from providers.config import parse_cloud_config
from providers.local import LocalCloud, open_cloud, provider_for
from providers.model import Instance, InstanceSpec, Owner
from tests.integration.conftest import ServerProcess, start_server
from tests.integration.controller_harness import client_for, eventually

pytestmark = pytest.mark.timeout(90)

CLUSTER = "boot-itest"
MACHINES = ResourcePath("infra.pinnace.dev", "v1alpha1", "machines", namespaced=False)
CSRS = ResourcePath("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
SECRETS = ResourcePath("", "v1", "secrets")
CLUSTER_ROLES = ResourcePath("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = ResourcePath(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", namespaced=False
)
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
FAST_NODE = {"node_lease_duration_seconds": 4, "node_status_update_frequency": 1.0}


@pytest.fixture(scope="module")
def boot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # No cloud provider in the server: its CCM would initialise (untaint) the nodes.
    proc = start_server(
        tmp_path_factory.mktemp("boot-server") / "data", "--cloud-provider", "none", "--disable-scheduler"
    )
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest.fixture
async def admin(boot_server: ServerProcess) -> AsyncIterator[Client]:
    async with client_for(boot_server) as client:
        await ensure_crds(client)
        yield client


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[LocalCloud, CloudProvider]]:
    config = parse_cloud_config(
        {"clusterID": CLUSTER, "qps": 500, "burst": 500, "local": {"stateFile": str(tmp_path / "cloud.db")}}
    )
    local = open_cloud(config)
    yield local, provider_for(local)
    local.close()


def _token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return (
        "".join(secrets.choice(alphabet) for _ in range(6))
        + "."
        + "".join(secrets.choice(alphabet) for _ in range(16))
    )


async def machine_with_token(admin: Client, name: str) -> tuple[dict[str, Any], str]:
    """A Machine, a bootstrap token for it, and RBAC letting the token patch only its status."""
    machine = await admin.create(
        MACHINES,
        {
            "apiVersion": "infra.pinnace.dev/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": name},
            "spec": {},
        },
    )
    token = _token()
    secret = token_secret(
        token,
        ttl=timedelta(minutes=10),
        usages=DEFAULT_USAGES,
        groups=[DEFAULT_GROUP],
        description=f"bootstrap token of Machine {name}",
        now=datetime.now(UTC),
    )
    await admin.create(SECRETS, secret, "kube-system")
    user = f"system:bootstrap:{token.split('.')[0]}"
    role = f"pinnace:machine-bootstrap:{name}"
    await admin.create(
        CLUSTER_ROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {
                    "apiGroups": ["infra.pinnace.dev"],
                    "resources": ["machines/status"],
                    "resourceNames": [name],
                    "verbs": ["get", "patch"],
                }
            ],
        },
    )
    await admin.create(
        CLUSTER_ROLE_BINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    return machine, token


async def launch(
    admin: Client, provider: CloudProvider, server: ServerProcess, name: str
) -> tuple[Instance, str]:
    machine, token = await machine_with_token(admin, name)
    spec = BootstrapSpec(
        os="ubuntu-24.04",
        kubernetes_version="1.33",
        server=server.url,
        ca_pem=server.ca.read_bytes(),
        token=token,
        metadata="local",
        machine=MachineRef(name, machine["metadata"]["uid"]),
        node_labels={"infra.pinnace.dev/node-pool": "pool-a"},
    )
    instances = provider.require(provider.instances, "instances")
    instance = await instances.create_instance(
        CLUSTER,
        InstanceSpec(
            name=name,
            owner=Owner(kind="Machine", name=name, uid=machine["metadata"]["uid"]),
            instance_type="local.medium",
            image="ubuntu-24.04",
            user_data=user_data(spec),
        ),
    )
    return instance, token


async def bootstrap_status(admin: Client, name: str) -> dict[str, Any]:
    obj = await admin.get(MACHINES, name)
    return dict((obj.get("status") or {}).get("bootstrap") or {})


async def node_csrs(admin: Client, username: str) -> list[dict[str, Any]]:
    return [c for c in (await admin.list(CSRS))["items"] if c["spec"]["username"] == username]


def suffix() -> str:
    return secrets.token_hex(3)


async def test_fleet_boots_nodes_from_their_user_data(
    boot_server: ServerProcess, admin: Client, cloud: tuple[LocalCloud, CloudProvider], tmp_path: Path
) -> None:
    _, provider = cloud
    good_name, bad_name = f"pool-a-{suffix()}", f"pool-b-{suffix()}"
    good, good_token = await launch(admin, provider, boot_server, good_name)
    bad, bad_token = await launch(admin, provider, boot_server, bad_name)
    source = ProviderInstanceSource(provider, CLUSTER)
    faults = BootFaults([BootFault("install-kubelet", "pool-b-*")])
    fleet = Fleet(
        source, data_dir=tmp_path / "fleet", faults=faults, poll_interval=0.2, agent_overrides=FAST_NODE
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        node = await eventually(lambda: _get_node(admin, good.id), timeout=30)
        # Named after the instance, with its providerID and the uninitialized taint.
        assert node["spec"]["providerID"] == f"local:///{good.zone}/{good.id}"
        assert {"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
        assert node["metadata"]["labels"]["infra.pinnace.dev/node-pool"] == "pool-a"
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == good.zone

        async def internal_ip() -> str:
            node = await admin.get(NODES, good.id)
            found = [a["address"] for a in node["status"].get("addresses") or [] if a["type"] == "InternalIP"]
            return found[0] if found else ""

        address = await eventually(internal_ip, timeout=10)
        assert address == next(a.address for a in good.addresses if a.type == "InternalIP")

        # Joined through a CSR made with the Machine's bootstrap token, and approved.
        csrs = await node_csrs(admin, f"system:bootstrap:{good_token.split('.')[0]}")
        assert len(csrs) == 1
        assert any(c["type"] == "Approved" for c in csrs[0]["status"]["conditions"])
        assert csrs[0]["status"].get("certificate")

        async def completed() -> dict[str, Any]:
            status = await bootstrap_status(admin, good_name)
            return status if status.get("completed") else {}

        status = await eventually(completed, timeout=20)
        assert [(s["name"], s["state"]) for s in status["steps"]] == [(s, "Succeeded") for s in STEPS]
        assert status.get("failedStep") is None
        assert all(s["startedAt"] and s["finishedAt"] for s in status["steps"])
        start = next(s for s in status["steps"] if s["name"] == "start-kubelet")
        assert start["logTail"] == "kubelet joined"
        await eventually(lambda: _is(fleet, good.id, BootState.RUNNING), timeout=20)
        # The reports went through with least privilege: that token may patch no other Machine.
        tls = ssl.create_default_context(cafile=str(boot_server.ca))
        async with Client(Credentials(boot_server.url, tls, token=good_token)) as as_token:
            with pytest.raises(errors.Forbidden):
                await as_token.patch(
                    MACHINES, bad_name, {"status": {"phase": "Running"}}, subresource="status"
                )

        # The faulty instance: that step Failed with its log tail, and it never joined.
        async def failed() -> dict[str, Any]:
            status = await bootstrap_status(admin, bad_name)
            return status if status.get("failedStep") else {}

        status = await eventually(failed, timeout=20)
        assert status["failedStep"] == "install-kubelet"
        assert status["completed"] is False
        names = [s["name"] for s in status["steps"]]
        assert names == list(STEPS[: STEPS.index("install-kubelet") + 1])
        last = status["steps"][-1]
        assert last["state"] == "Failed"
        assert "E: Unable to locate package" in last["logTail"]
        assert last["logTail"].endswith("step install-kubelet failed: exit status 100")
        assert fleet.state(bad.id) is BootState.FAILED
        with pytest.raises(errors.NotFound):
            await admin.get(NODES, bad.id)
        assert await node_csrs(admin, f"system:bootstrap:{bad_token.split('.')[0]}") == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)

    # A second Fleet over the same directory: the node comes back on its certificate (no new
    # CSR, no steps replayed); the failed instance stays failed.
    before = await bootstrap_status(admin, good_name)
    fleet2 = Fleet(source, data_dir=tmp_path / "fleet", poll_interval=0.2, agent_overrides=FAST_NODE)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(fleet2.run(stop2))
    try:
        await eventually(lambda: _is(fleet2, good.id, BootState.RUNNING), timeout=20)
        assert fleet2.state(bad.id) is BootState.FAILED
        assert len(await node_csrs(admin, f"system:bootstrap:{good_token.split('.')[0]}")) == 1
        assert await bootstrap_status(admin, good_name) == before

        # Terminated: its node is stopped.
        await provider.require(provider.instances, "instances").delete_instance(CLUSTER, good.id)
        await eventually(lambda: _is(fleet2, good.id, BootState.STOPPED), timeout=10)
    finally:
        stop2.set()
        await asyncio.wait_for(task2, 20)


async def test_user_data_of_another_ca_is_refused(
    boot_server: ServerProcess, admin: Client, cloud: tuple[LocalCloud, CloudProvider], tmp_path: Path
) -> None:
    """User-data whose CA is not the pinned one: no report with the token, no CSR, no Node."""
    _, provider = cloud
    name = f"pool-c-{suffix()}"
    instance, token = await launch(admin, provider, boot_server, name)
    instances = provider.require(provider.instances, "instances")
    original = await instances.get_user_data(CLUSTER, instance.id)
    if original[:2] == b"\x1f\x8b":  # rendered user-data over 16 KiB is launched compressed
        original = gzip.decompress(original)
    pin = spki_hash(x509.load_pem_x509_certificate(boot_server.ca.read_bytes())).removeprefix("sha256:")
    assert pin.encode() in original
    tampered = original.replace(pin.encode(), b"0" * 64)

    class Tampered(ProviderInstanceSource):
        async def user_data(self, instance_id: str) -> bytes:
            return tampered

    fleet = Fleet(
        Tampered(provider, CLUSTER), data_dir=tmp_path / "fleet", poll_interval=0.2, retry_initial=60.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        await eventually(lambda: _is(fleet, instance.id, BootState.ERROR), timeout=10)
        assert "refusing to join" in fleet.booted[instance.id].message
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await bootstrap_status(admin, name) == {}
    assert await node_csrs(admin, f"system:bootstrap:{token.split('.')[0]}") == []


async def _get_node(admin: Client, name: str) -> dict[str, Any] | None:
    try:
        return await admin.get(NODES, name)
    except errors.NotFound:
        return None


async def _is(fleet: Fleet, instance_id: str, state: BootState) -> bool:
    return fleet.state(instance_id) is state
