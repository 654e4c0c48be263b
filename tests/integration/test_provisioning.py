"""The NodePool/Machine operator against a real `pinnace server` and the local cloud.

The operator runs in-process (as `pinnace server` and `pinnace up` run it) with its own
credential (`system:pinnace-provisioner`, so the bootstrap RBAC policy is exercised too) over the
same local-cloud state file as the server's CCM. Nodes are not booted here (no fleet), except in
the last two tests when the simulated fleet is available (nodes joining, scale-down draining a
Ready node, and autoscaling end to end): the rest checks everything up to the instances, and what
happens to Machines whose nodes never come.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ccm.manager import open_provider
from ccm.provisioning import api
from ccm.provisioning.context import MACHINES, NODEPOOLS
from ccm.provisioning.crds import CRD_PATH, ensure_crds
from ccm.provisioning.machines import FINALIZER
from ccm.provisioning.operator import run_provisioner
from ccm.provisioning.settings import ProvisionerSettings
from ccm.provisioning.tokens import TOKEN_ANNOTATION
from controlplane.api import errors
from controlplane.client import Client, load_kubeconfig
from controlplane.controllers.runtime import R
from providers.capabilities import CloudProvider
from providers.model import Instance, InstanceSpec, Owner
from tests.integration.conftest import ServerProcess, kubectl_binaries, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def prov_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("provisioning") / "data", "--cloud-provider", "local")
    yield proc
    code = proc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(prov_server: ServerProcess) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(prov_server.kubeconfig)) as client:
        await ensure_crds(client)
        crd = await client.get(CRD_PATH, "nodepools.infra.pinnace.dev")
        await ensure_crds(client)  # already there as wanted: left alone
        assert (await client.get(CRD_PATH, crd["metadata"]["name"]))["metadata"]["resourceVersion"] == crd[
            "metadata"
        ]["resourceVersion"]
        yield client


@pytest.fixture(scope="module")
def cloud(prov_server: ServerProcess) -> tuple[CloudProvider, str]:
    provider, config = open_provider("local", None, data_dir=prov_server.data_dir)
    return provider, config.cluster_id


def settings_for(
    prov_server: ServerProcess, cloud: tuple[CloudProvider, str], **overrides: Any
) -> ProvisionerSettings:
    provider, cluster_id = cloud
    base = ProvisionerSettings(
        provider=provider,
        cluster_id=cluster_id,
        server_url=prov_server.url,
        ca_pem=prov_server.ca.read_bytes(),
        machine_poll_interval=0.3,
        drain_poll_interval=0.2,
        instance_poll_interval=0.2,
        running_resync_interval=5.0,
        orphan_sweep_interval=0.5,
    )
    return replace(base, **overrides)


class Operator:
    """One run of the operator as a task; `kill` cancels it as a crash would end it."""

    def __init__(self, prov_server: ServerProcess, settings: ProvisionerSettings) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_provisioner(prov_server.data_dir / "provisioner.kubeconfig", self.stop, settings)
        )

    async def kill(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 40)


@contextlib.asynccontextmanager
async def operator(prov_server: ServerProcess, settings: ProvisionerSettings) -> AsyncIterator[Operator]:
    op = Operator(prov_server, settings)
    try:
        yield op
    finally:
        if op.task.done():
            if not op.task.cancelled() and op.task.exception() is not None:
                raise op.task.exception()  # type: ignore[misc]
        else:
            await op.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def pool(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "zones": ["local-1a", "local-1b"],
            "instanceType": "local.small",
            **spec,
        },
    }


async def machines_of(admin: Client, pool_name: str) -> list[dict[str, Any]]:
    listing = await admin.list(MACHINES, None, params={"labelSelector": f"{api.LABEL_NODE_POOL}={pool_name}"})
    return list(listing["items"])


async def instances_of(cloud: tuple[CloudProvider, str], pool_name: str) -> list[Instance]:
    provider, cluster_id = cloud
    assert provider.instances is not None
    return [
        i for i in await provider.instances.list_instances(cluster_id) if i.name.startswith(pool_name + "-")
    ]


def phases(items: list[dict[str, Any]]) -> list[str]:
    return sorted(str((m.get("status") or {}).get("phase")) for m in items)


def kubectl(prov_server: ServerProcess, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(prov_server.kubeconfig), "HOME": str(tmp_path)}
    binary = kubectl_binaries()[-1]
    result = subprocess.run([binary, *args], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def delete_pool_and_wait(admin: Client, cloud: tuple[CloudProvider, str], name: str) -> None:
    with contextlib.suppress(errors.NotFound):
        await admin.delete(NODEPOOLS, name)

    async def gone() -> bool:
        return not await machines_of(admin, name) and not await instances_of(cloud, name)

    await eventually(gone, what=f"pool {name}'s machines and instances to go")


async def test_pool_machines_instances_scale_and_delete(
    prov_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str], tmp_path: Path
) -> None:
    async with operator(prov_server, settings_for(prov_server, cloud)):
        await admin.create(NODEPOOLS, pool("alpha", 2))

        async def two_bootstrapping() -> bool:
            items = await machines_of(admin, "alpha")
            return phases(items) == ["Bootstrapping", "Bootstrapping"]

        await eventually(two_bootstrapping, what="2 machines bootstrapping")
        items = await machines_of(admin, "alpha")
        by_name = {m["metadata"]["name"]: m for m in items}
        instances = await instances_of(cloud, "alpha")
        assert sorted(i.name for i in instances) == sorted(by_name)
        assert sorted(i.zone for i in instances) == ["local-1a", "local-1b"]  # spread over the zones
        provider, _ = cloud
        for instance in instances:
            machine = by_name[instance.name]
            assert machine["metadata"]["finalizers"] == [FINALIZER]
            assert machine["metadata"]["ownerReferences"][0]["kind"] == "NodePool"
            status = machine["status"]
            assert status["instanceID"] == instance.id
            assert status["providerID"] == f"local:///{instance.zone}/{instance.id}"
            assert {c["type"]: c["status"] for c in status["conditions"]}["InstanceProvisioned"] == "True"
            assert instance.owner == Owner("Machine", instance.name, uid=machine["metadata"]["uid"])
            # Its user-data names the Machine and carries the Machine's own fresh token.
            raw = await provider.instances.cloud.user_data(instance.id)  # type: ignore[union-attr]
            text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
            assert text.startswith("#cloud-config")
            token_id = machine["metadata"]["annotations"][TOKEN_ANNOTATION]
            assert token_id in text
            secret = await admin.get(R.SECRETS, f"bootstrap-token-{token_id}", "kube-system")
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            assert data["usage-bootstrap-authentication"] == "true"
            assert data["auth-extra-groups"] == "system:bootstrappers:kubeadm:default-node-token"
            assert "expiration" in data
            assert secret["metadata"]["ownerReferences"][0]["uid"] == machine["metadata"]["uid"]

        pool_obj = await admin.get(NODEPOOLS, "alpha")
        assert pool_obj["spec"]["os"] == "ubuntu-24.04"  # the CRD's defaults
        assert pool_obj["spec"]["bootstrap"]["joinTimeout"] == "10m"

        async def status_replicas(n: int) -> bool:
            st = (await admin.get(NODEPOOLS, "alpha")).get("status") or {}
            return st.get("replicas") == n and st.get("selector") == f"{api.LABEL_NODE_POOL}=alpha"

        await eventually(lambda: status_replicas(2), what="pool status")

        # The scale subresource, through real kubectl.
        await asyncio.to_thread(kubectl, prov_server, tmp_path, "scale", "nodepool", "alpha", "--replicas=3")

        async def count(n: int) -> bool:
            items = await machines_of(admin, "alpha")
            live = [i for i in await instances_of(cloud, "alpha")]
            return phases(items) == ["Bootstrapping"] * n and len(live) == n

        await eventually(lambda: count(3), what="3 machines and instances")
        table = await asyncio.to_thread(kubectl, prov_server, tmp_path, "get", "np", "alpha")
        assert table.split("\n")[0].split()[:3] == ["NAME", "DESIRED", "READY"]
        assert table.split("\n")[1].split()[:2] == ["alpha", "3"]

        # Scaling down drains (nothing to drain here), terminates and lets the Machines go.
        doomed = sorted(m["metadata"]["name"] for m in await machines_of(admin, "alpha"))[0]
        await admin.patch(
            MACHINES, doomed, {"metadata": {"annotations": {api.ANNOTATION_DELETE_MACHINE: ""}}}
        )
        await asyncio.to_thread(kubectl, prov_server, tmp_path, "scale", "nodepool", "alpha", "--replicas=1")
        await eventually(lambda: count(1), what="1 machine and instance")
        assert doomed not in {m["metadata"]["name"] for m in await machines_of(admin, "alpha")}
        await eventually(lambda: status_replicas(1), what="pool status after scale down")

        # Deleting the pool deletes every Machine, their instances and their tokens.
        await delete_pool_and_wait(admin, cloud, "alpha")
        secrets = await admin.list(R.SECRETS, "kube-system", params={"labelSelector": api.LABEL_MACHINE})
        assert [s["metadata"]["name"] for s in secrets["items"]] == []


async def test_crash_mid_scale_up_and_down_leaves_no_duplicate_or_orphan(
    prov_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str]
) -> None:
    settings = settings_for(prov_server, cloud)
    provider, cluster_id = cloud
    assert provider.instances is not None
    # An instance made for a Machine that does not exist (a crash after a Machine was deleted
    # by hand, finalizer and all): the sweep terminates it.
    ghost = await provider.instances.create_instance(
        cluster_id,
        InstanceSpec(
            name="ghost-bbbbb", owner=Owner("Machine", "ghost-bbbbb", uid="gone"), instance_type="x", image=""
        ),
    )
    op = Operator(prov_server, settings)
    await admin.create(NODEPOOLS, pool("beta", 4))

    async def some_machines() -> bool:
        return len(await machines_of(admin, "beta")) >= 1

    await eventually(some_machines, what="the first machine")
    await op.kill()  # mid scale-up: some Machines exist, some instances may not
    async with operator(prov_server, settings):

        async def converged(n: int) -> bool:
            items = await machines_of(admin, "beta")
            instances = await instances_of(cloud, "beta")
            return (
                phases(items) == ["Bootstrapping"] * n
                and len(instances) == n
                and sorted(i.name for i in instances) == sorted(m["metadata"]["name"] for m in items)
            )

        await eventually(lambda: converged(4), what="4 machines with one instance each")

        async def ghost_gone() -> bool:
            return ghost.id not in {i.id for i in await provider.instances.list_instances(cluster_id)}  # type: ignore[union-attr]

        await eventually(ghost_gone, what="the orphan to be terminated")
        await admin.patch(NODEPOOLS, "beta", {"spec": {"replicas": 1}})

        async def deleting() -> bool:
            items = await machines_of(admin, "beta")
            return any(m["metadata"].get("deletionTimestamp") for m in items)

        await eventually(deleting, what="scale-down to start")
    # (the context manager stopped it; now crash a second one mid scale-down)
    op = Operator(prov_server, settings)
    await asyncio.sleep(0.3)
    await op.kill()
    async with operator(prov_server, settings):
        await eventually(lambda: converged(1), what="1 machine with one instance")
        await delete_pool_and_wait(admin, cloud, "beta")


async def test_machine_whose_node_never_joins_fails_and_is_replaced(
    prov_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str]
) -> None:
    settings = settings_for(prov_server, cloud, join_timeout=1.5)
    async with operator(prov_server, settings):
        await admin.create(NODEPOOLS, pool("gamma", 1))

        async def first() -> bool:
            return len(await machines_of(admin, "gamma")) == 1

        await eventually(first, what="the first machine")
        original = (await machines_of(admin, "gamma"))[0]["metadata"]["name"]

        async def failed() -> bool:
            with contextlib.suppress(errors.NotFound):
                machine = await admin.get(MACHINES, original)
                st = machine.get("status") or {}
                return st.get("failureReason") == "NodeStartupTimeout"
            return True  # already replaced; checked below through the events

        await eventually(failed, what="the machine to fail")

        async def replaced() -> bool:
            names = {m["metadata"]["name"] for m in await machines_of(admin, "gamma")}
            return original not in names and len(names) == 1

        await eventually(replaced, what="the failed machine to be replaced")
        events = await admin.list(
            R.EVENTS, "default", params={"fieldSelector": f"involvedObject.name={original}"}
        )
        reasons = {e["reason"] for e in events["items"]}
        assert {"InstanceCreated", "NodeStartupTimeout", "Remediating"} <= reasons, reasons
        await admin.patch(NODEPOOLS, "gamma", {"spec": {"replicas": 0}})
        await delete_pool_and_wait(admin, cloud, "gamma")


FAST_NODE = {"node_lease_duration_seconds": 4, "node_status_update_frequency": 1.0}


async def test_fleet_nodes_join_and_machines_run(
    prov_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str], tmp_path: Path
) -> None:
    from ccm.provisioning.instance_source import ProviderInstanceSource
    from node_bootstrap.fleet import BootFault, BootFaults, Fleet

    provider, cluster_id = cloud
    fleet = Fleet(
        ProviderInstanceSource(provider, cluster_id),
        data_dir=tmp_path / "fleet",
        faults=BootFaults([BootFault("install-kubelet", "omega-*")]),
        poll_interval=0.2,
        agent_overrides=FAST_NODE,
    )
    fleet_stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(fleet_stop))
    try:
        async with operator(prov_server, settings_for(prov_server, cloud)):
            await admin.create(NODEPOOLS, pool("delta", 2, labels={"team": "a"}))
            # maxUnhealthy 0: the failed Machine is kept for inspection instead of replaced.
            await admin.create(NODEPOOLS, pool("omega", 1, remediation={"maxUnhealthy": 0}))

            async def running() -> bool:
                items = await machines_of(admin, "delta")
                # The node may report its last step after it is Ready: wait for both.
                done = [m for m in items if condition(m, "BootstrapSucceeded") == "True"]
                return phases(items) == ["Running", "Running"] and len(done) == 2

            await eventually(running, timeout=40, what="2 machines Running")
            for machine in await machines_of(admin, "delta"):
                status = machine["status"]
                conditions = {c["type"]: c for c in status["conditions"]}
                assert conditions["NodeJoined"]["status"] == "True"
                assert conditions["NodeReady"]["status"] == "True"
                assert conditions["BootstrapSucceeded"]["status"] == "True"
                assert conditions["InstallKubelet"]["status"] == "True"
                node = await admin.get(R.NODES, status["nodeName"])
                assert node["spec"]["providerID"] == status["providerID"]
                labels = node["metadata"]["labels"]
                assert labels[api.LABEL_NODE_POOL] == "delta"
                assert labels[api.LABEL_MACHINE] == machine["metadata"]["name"]
                assert labels["team"] == "a"
                token_id = machine["metadata"]["annotations"][TOKEN_ANNOTATION]
                with pytest.raises(errors.NotFound):  # joined: its token is gone
                    await admin.get(R.SECRETS, f"bootstrap-token-{token_id}", "kube-system")

            async def ready_replicas() -> bool:
                return ((await admin.get(NODEPOOLS, "delta")).get("status") or {}).get("readyReplicas") == 2

            await eventually(ready_replicas, what="readyReplicas 2")

            async def failed() -> dict[str, Any] | None:
                items = await machines_of(admin, "omega")
                return items[0] if items and items[0].get("status", {}).get("phase") == "Failed" else None

            await eventually(lambda: _truthy(failed()), timeout=30, what="the faulty machine to fail")
            bad = await failed()
            assert bad is not None
            assert bad["status"]["failureReason"] == "BootstrapFailed"
            assert 'bootstrap step "install-kubelet" failed' in bad["status"]["failureMessage"]
            step = {c["type"]: c for c in bad["status"]["conditions"]}["InstallKubelet"]
            assert step["status"] == "False" and "install-kubelet" in step["message"]
            omega = await admin.get(NODEPOOLS, "omega")
            remediation = {c["type"]: c for c in omega["status"]["conditions"]}["RemediationAllowed"]
            assert remediation["status"] == "False" and remediation["reason"] == "TooManyUnhealthy"

            # Scale down: the node is cordoned, drained and deleted, then its instance terminated.
            await admin.patch(NODEPOOLS, "delta", {"spec": {"replicas": 1}})

            async def one_left() -> bool:
                nodes = await admin.list(
                    R.NODES, None, params={"labelSelector": f"{api.LABEL_NODE_POOL}=delta"}
                )
                return (
                    phases(await machines_of(admin, "delta")) == ["Running"]
                    and len(nodes["items"]) == 1
                    and len(await instances_of(cloud, "delta")) == 1
                )

            await eventually(one_left, timeout=30, what="scale down to 1 node")

            # Its instance terminated behind the operator's back (`pinnace down --force`, a
            # console click): the Machine fails at once, not after notReadyTimeout (5m here),
            # and is replaced. Whichever is seen first names it: the instance found terminated,
            # or the Node the CCM deleted for it.
            (survivor,) = await machines_of(admin, "delta")
            assert provider.instances is not None
            await provider.instances.delete_instance(cluster_id, survivor["status"]["instanceID"])
            started = time.monotonic()

            async def failed_and_replaced() -> bool:
                items = await machines_of(admin, "delta")
                return survivor["metadata"]["name"] not in {m["metadata"]["name"] for m in items}

            await eventually(failed_and_replaced, timeout=30, what="the lost machine to be replaced")
            assert time.monotonic() - started < 20
            events = await admin.list(
                R.EVENTS,
                "default",
                params={"fieldSelector": f"involvedObject.name={survivor['metadata']['name']}"},
            )
            reasons = {e["reason"] for e in events["items"]}
            assert reasons & {"InstanceTerminated", "NodeNotFound"} and "Remediating" in reasons, reasons
            await delete_pool_and_wait(admin, cloud, "delta")
            await delete_pool_and_wait(admin, cloud, "omega")
    finally:
        fleet_stop.set()
        await asyncio.wait_for(fleet_task, 30)


def condition(machine: dict[str, Any], type_: str) -> str:
    conditions = (machine.get("status") or {}).get("conditions") or []
    return next((str(c["status"]) for c in conditions if c["type"] == type_), "")


async def _truthy(value: Awaitable[Any]) -> bool:
    return bool(await value)


async def test_autoscaling_grows_the_pool_for_pending_pods_and_shrinks_it_when_empty(
    prov_server: ServerProcess, admin: Client, cloud: tuple[CloudProvider, str], tmp_path: Path
) -> None:
    """The issue's done-when 5: pods that do not fit grow an autoscaling pool (never past its
    maxReplicas), the new node joins and runs them; once they are gone the emptied node is
    removed after scaleDownDelay and the pool is back at minReplicas."""
    from ccm.provisioning.instance_source import ProviderInstanceSource
    from node_bootstrap.fleet import Fleet

    provider, cluster_id = cloud
    fleet = Fleet(
        ProviderInstanceSource(provider, cluster_id),
        data_dir=tmp_path / "fleet",
        poll_interval=0.2,
        agent_overrides=FAST_NODE,
    )
    fleet_stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(fleet_stop))
    autoscaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "scaleDownDelay": "5s"}
    # The drain is what a Ready node's removal waits on: the Machine's resync is far off.
    settings = settings_for(prov_server, cloud, autoscale_interval=0.5, running_resync_interval=60.0)
    seen_replicas: set[int] = set()

    async def pool_replicas() -> int:
        replicas = int((await admin.get(NODEPOOLS, "eps"))["spec"]["replicas"])
        seen_replicas.add(replicas)
        return replicas

    async def running_machines(n: int) -> bool:
        await pool_replicas()
        items = await machines_of(admin, "eps")
        return phases(items) == ["Running"] * n

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {
                    # Only this pool's nodes, whatever other tests left behind.
                    "nodeSelector": {api.LABEL_NODE_POOL: "eps"},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.k8s.io/pause:3.9",
                            # 3 of a node's 4 CPUs: one pod per node.
                            "resources": {"requests": {"cpu": "3"}},
                        }
                    ],
                },
            },
        },
    }
    try:
        async with operator(prov_server, settings):
            await admin.create(NODEPOOLS, pool("eps", 1, zones=[], autoscaling=autoscaling))
            await eventually(lambda: running_machines(1), timeout=30, what="the first node Running")
            (first,) = await machines_of(admin, "eps")
            await admin.create(R.DEPLOYMENTS, deployment, "default")

            async def pods_running() -> bool:
                await pool_replicas()
                pods = (await admin.list(R.PODS, "default", params={"labelSelector": "app=big"}))["items"]
                return len(pods) == 2 and all(p.get("status", {}).get("phase") == "Running" for p in pods)

            await eventually(pods_running, timeout=30, what="both pods Running on two nodes")
            pods = (await admin.list(R.PODS, "default", params={"labelSelector": "app=big"}))["items"]
            assert len({p["spec"]["nodeName"] for p in pods}) == 2

            async def settled() -> bool:
                return await running_machines(await pool_replicas())

            await eventually(settled, timeout=20, what="every replica's Machine Running")
            grown = await pool_replicas()
            # Exactly one more node was needed: a Ready node still carrying the uninitialized
            # taint counts as capacity on its way, so no pass asks for a third.
            assert grown == 2 and max(seen_replicas) == 2
            events = await admin.list(
                R.EVENTS, "default", params={"fieldSelector": "involvedObject.name=eps"}
            )
            assert "TriggeredScaleUp" in {e["reason"] for e in events["items"]}

            async def all_ready() -> bool:
                status = (await admin.get(NODEPOOLS, "eps")).get("status") or {}
                return (status.get("replicas"), status.get("readyReplicas")) == (grown, grown)

            await eventually(all_ready, timeout=10, what="status.readyReplicas to count the new node")
            # No zones in the pool's spec: spread over the provider's zones, not all in one.
            machines = await machines_of(admin, "eps")
            assert len({m["status"]["zone"] for m in machines}) >= 2

            # Empty the nodes: the extra ones go (after scaleDownDelay), back to minReplicas.
            await admin.patch(R.DEPLOYMENTS, "big", {"spec": {"replicas": 0}}, "default")
            started = time.monotonic()

            async def back_to_one() -> bool:
                nodes = await admin.list(
                    R.NODES, None, params={"labelSelector": f"{api.LABEL_NODE_POOL}=eps"}
                )
                return (
                    await running_machines(1)
                    and await pool_replicas() == 1
                    and len(nodes["items"]) == 1
                    and len(await instances_of(cloud, "eps")) == 1
                )

            await eventually(back_to_one, timeout=30, what="the pool back to 1 node")
            # scaleDownDelay (5 s) plus a few passes, not a 60 s resync of the removed Machine.
            assert time.monotonic() - started < 20
            assert max(seen_replicas) <= 3
            (left,) = await machines_of(admin, "eps")
            removed = {m["metadata"]["name"] for m in machines} - {left["metadata"]["name"]}
            assert len(removed) == grown - 1
            events = await admin.list(
                R.EVENTS, "default", params={"fieldSelector": "involvedObject.name=eps"}
            )
            assert "ScaleDown" in {e["reason"] for e in events["items"]}, {
                e["reason"] for e in events["items"]
            }
            assert first["metadata"]["name"] in {m["metadata"]["name"] for m in machines}
            await delete_pool_and_wait(admin, cloud, "eps")
    finally:
        with contextlib.suppress(errors.NotFound):
            await admin.delete(R.DEPLOYMENTS, "big", "default")
        fleet_stop.set()
        await asyncio.wait_for(fleet_task, 30)
