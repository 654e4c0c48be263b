"""The simulated node agent against a real `pinnace server`.

The agent runs in-process (its own asyncio tasks) with the server's admin kubeconfig; pods are
bound by creating them with spec.nodeName or through pods/binding; a pod the test binds itself
names a schedulerName no scheduler serves, so the server's in-process scheduler leaves it alone.
Every test plays its own nodes and namespace, so tests do not see each other's pods.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
import pytest

from controlplane.api import errors
from controlplane.client import Client, ResourcePath, load_kubeconfig
from node_bootstrap.agent import AgentConfig, NodeAgent
from node_bootstrap.agent.clock import parse_time
from node_bootstrap.agent.kube import LEASES, NODES, PODS
from tests.integration.conftest import REPO, ServerProcess, start_server

NAMESPACES = ResourcePath("", "v1", "namespaces", namespaced=False)
T = TypeVar("T")
Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(120)


async def eventually(fn: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0, what: str = "") -> T:
    """Poll `fn` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await fn()
        except errors.NotFound as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or fn}: last {last!r}")


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(server.kubeconfig)) as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> str:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def agent_config(server: ServerProcess, *names: str, **overrides: Any) -> AgentConfig:
    return AgentConfig(
        node_names=names,
        kubeconfig=server.kubeconfig,
        bind_address="127.0.0.1",
        port=0,
        node_ip="127.0.0.1",
        **overrides,
    )


@asynccontextmanager
async def running(config: AgentConfig) -> AsyncIterator[NodeAgent]:
    agent = NodeAgent(config)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        done, _ = await asyncio.wait(
            {task, asyncio.create_task(agent.started.wait())}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()
        assert agent.started.is_set(), "agent did not start"
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def ensure_pod_cidr(client: Client, node: str, cidr: str) -> str:
    """What node IPAM does; a controller may already have done it."""
    await asyncio.sleep(0.5)
    current = await client.get(NODES, node)
    if current["spec"].get("podCIDR"):
        return str(current["spec"]["podCIDR"])
    with suppress(errors.StatusError):  # IPAM got there first
        await client.patch(NODES, node, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
    return str((await client.get(NODES, node))["spec"]["podCIDR"])


def pod_manifest(name: str, node: str | None, annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}], **spec},
    }
    if node:
        body["spec"]["nodeName"] = node
    return body


async def create_pod(client: Client, namespace: str, body: Obj) -> Obj:
    # Admission may refuse pods until the namespace's default ServiceAccount exists.
    deadline = time.monotonic() + 10
    while True:
        try:
            return await client.create(PODS, body, namespace)
        except errors.Forbidden:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def conditions(pod: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}


async def pod_where(client: Client, namespace: str, name: str, test: Callable[[Obj], bool], what: str) -> Obj:
    async def check() -> Obj | None:
        pod = await client.get(PODS, name, namespace)
        return pod if test(pod) else None

    return await eventually(check, what=f"{name}: {what}")


def running_and_ready(pod: Obj) -> bool:
    return pod["status"].get("phase") == "Running" and conditions(pod).get("Ready") == "True"


def tls_client(server: ServerProcess, *, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the agent's serving certificate is self-signed, as a kubelet's
    if with_cert:
        pki = server.data_dir / "pki"
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


# ---------------------------------------------------------------------------------------------


async def test_registration_lease_and_status(server: ServerProcess, client: Client) -> None:
    name = f"reg-{uuid.uuid4().hex[:6]}"
    config = agent_config(
        server,
        name,
        labels={"tier": "web"},
        taints=({"key": "dedicated", "value": "sim", "effect": "NoSchedule"},),
        provider_id="sim://{name}",
        instance_type="sim.large",
        zone="zone-a",
        region="region-1",
        capacity={"cpu": "8", "memory": "16Gi", "pods": "50", "ephemeral-storage": "20Gi"},
        node_lease_duration_seconds=4,  # renewed every second
    )
    async with running(config) as agent:
        node = await client.get(NODES, name)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["node.kubernetes.io/instance-type"] == "sim.large"
        assert labels["topology.kubernetes.io/zone"] == "zone-a"
        assert labels["topology.kubernetes.io/region"] == "region-1"
        assert labels["tier"] == "web"
        assert {"key": "dedicated", "value": "sim", "effect": "NoSchedule"} in node["spec"]["taints"]
        assert node["spec"]["providerID"] == f"sim://{name}"
        status = node["status"]
        assert status["capacity"]["cpu"] == "8" and status["allocatable"]["memory"] == "16Gi"
        assert status["addresses"] == [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ]
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == agent.port > 0
        assert status["nodeInfo"]["kubeletVersion"] == "v1.33.0"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
        lease = await client.get(LEASES, name, "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == name
        assert lease["spec"]["leaseDurationSeconds"] == 4
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = parse_time(lease["spec"]["renewTime"])

        async def renewed() -> bool:
            current = await client.get(LEASES, name, "kube-node-lease")
            renew = parse_time(current["spec"]["renewTime"])
            return renew is not None and first is not None and renew > first

        await eventually(renewed, timeout=5, what="lease renewal")


async def test_pod_lifecycle(server: ServerProcess, client: Client, namespace: str) -> None:
    name = f"life-{uuid.uuid4().hex[:6]}"
    async with running(agent_config(server, name, pod_cidr_wait=10.0)):
        cidr = ipaddress.ip_network(await ensure_pod_cidr(client, name, "10.250.7.0/24"))
        await create_pod(client, namespace, pod_manifest("web", name))
        await create_pod(client, namespace, pod_manifest("web2", name))
        web = await pod_where(client, namespace, "web", running_and_ready, "Running and Ready")
        web2 = await pod_where(client, namespace, "web2", running_and_ready, "Running and Ready")
        status = web["status"]
        assert ipaddress.ip_address(status["podIP"]) in cidr
        assert status["podIP"] != web2["status"]["podIP"]
        assert status["podIPs"] == [{"ip": status["podIP"]}]
        assert status["hostIP"] == "127.0.0.1" and status["hostIPs"] == [{"ip": "127.0.0.1"}]
        assert status["qosClass"] == "BestEffort" and status["startTime"]
        (cs,) = status["containerStatuses"]
        assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert cs["state"]["running"]["startedAt"]
        assert cs["containerID"].startswith("containerd://")
        assert cs["image"] == "docker.io/library/nginx:1.25"
        assert set(conditions(web)) >= {
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodScheduled",
        }

        # Readiness follows the annotation on a running pod, both ways.
        await client.patch(
            PODS, "web", {"metadata": {"annotations": {"sim.pinnace.dev/ready": "false"}}}, namespace
        )
        unready = await pod_where(
            client, namespace, "web", lambda p: conditions(p).get("Ready") == "False", "unready"
        )
        assert unready["status"]["phase"] == "Running"
        assert unready["status"]["containerStatuses"][0]["ready"] is False
        await client.patch(
            PODS, "web", {"metadata": {"annotations": {"sim.pinnace.dev/ready": "true"}}}, namespace
        )
        await pod_where(client, namespace, "web", running_and_ready, "ready again")

        # A Job-style pod runs for its run-seconds and succeeds.
        await create_pod(
            client,
            namespace,
            pod_manifest("job", name, {"sim.pinnace.dev/run-seconds": "1"}, restartPolicy="Never"),
        )
        done = await pod_where(
            client, namespace, "job", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded"
        )
        term = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"

        # Bound through pods/binding, as a scheduler would.
        await create_pod(client, namespace, pod_manifest("bound", None, schedulerName="test-binds-itself"))
        await client.request(
            "POST",
            PODS.url(namespace, "bound", "binding"),
            body={
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": "bound"},
                "target": {"kind": "Node", "name": name},
            },
        )
        await pod_where(client, namespace, "bound", running_and_ready, "bound pod running")

        # Graceful deletion: the API only marks it; the agent stops it and removes it.
        await client.delete(PODS, "web", namespace)

        async def gone() -> bool:
            try:
                await client.get(PODS, "web", namespace)
            except errors.NotFound:
                return True
            return False

        await eventually(gone, timeout=10, what="pod removal")


async def test_log_server(server: ServerProcess, client: Client, namespace: str) -> None:
    name = f"logs-{uuid.uuid4().hex[:6]}"
    async with running(agent_config(server, name, pod_cidr_wait=0.5)) as agent:
        await create_pod(client, namespace, pod_manifest("web", name))
        await create_pod(
            client,
            namespace,
            pod_manifest("short", name, {"sim.pinnace.dev/run-seconds": "2"}, restartPolicy="Never"),
        )
        await pod_where(client, namespace, "web", running_and_ready, "running")
        await pod_where(
            client, namespace, "short", lambda p: p["status"].get("phase") == "Running", "running"
        )
        base = f"https://127.0.0.1:{agent.port}/containerLogs/{namespace}"

        # No client certificate: the handshake (or the first read) fails.
        async with aiohttp.ClientSession() as anonymous:
            with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
                async with anonymous.get(f"{base}/web/web", ssl=tls_client(server, with_cert=False)) as resp:
                    await resp.read()

        async with aiohttp.ClientSession() as http:
            tls = tls_client(server, with_cert=True)
            async with http.get(f"{base}/web/web", ssl=tls) as resp:
                assert resp.status == 200
                text = await resp.text()
            assert 'Pulling image "nginx:1.25"' in text
            assert "Started container web" in text
            assert "Readiness probe succeeded" in text
            async with http.get(
                f"{base}/web/web", params={"tailLines": "1", "timestamps": "true"}, ssl=tls
            ) as resp:
                (line,) = (await resp.text()).splitlines()
                assert line.split(" ")[0].endswith("Z")
            async with http.get(f"{base}/nope/web", ssl=tls) as resp:
                assert resp.status == 404
                assert await resp.text() == 'pod "nope" does not exist'
            async with http.get(f"{base}/web/other", ssl=tls) as resp:
                assert resp.status == 404
            async with http.get(f"{base}/web/web", params={"previous": "true"}, ssl=tls) as resp:
                assert resp.status == 400
            # follow streams until the container exits.
            started = time.monotonic()
            async with http.get(f"{base}/short/web", params={"follow": "true"}, ssl=tls) as resp:
                followed = await asyncio.wait_for(resp.text(), 10)
            assert "exited with code 0" in followed.splitlines()[-1]
            assert time.monotonic() - started < 8


async def test_restart_adopts_node_and_pods(server: ServerProcess, client: Client, namespace: str) -> None:
    names = tuple(f"adopt-{uuid.uuid4().hex[:6]}-{i}" for i in range(3))
    config = agent_config(server, *names, pod_cidr_wait=0.5)
    async with running(config) as agent:
        assert len(agent.nodes) == 3
        await create_pod(client, namespace, pod_manifest("web", names[2]))
        before = await pod_where(client, namespace, "web", running_and_ready, "running")
        node_before = await client.get(NODES, names[2])
    # The agent is gone; a new one for the same nodes adopts them and their pods.
    async with running(replace(config)) as agent:
        node_after = await client.get(NODES, names[2])
        assert node_after["metadata"]["uid"] == node_before["metadata"]["uid"]
        worker = agent.workers[before["metadata"]["uid"]]
        assert worker.sim is not None and not worker.sim.needs_sandbox
        after = await pod_where(client, namespace, "web", running_and_ready, "still running")
        for key in ("podIP", "startTime"):
            assert after["status"][key] == before["status"][key]
        cs_before, cs_after = (
            before["status"]["containerStatuses"][0],
            after["status"]["containerStatuses"][0],
        )
        assert cs_after["containerID"] == cs_before["containerID"]
        assert cs_after["restartCount"] == 0
        assert cs_after["state"] == cs_before["state"]
        logs = agent.logs.get(namespace, "web")
        assert logs is not None
        assert "node agent restarted" in logs.buffer("web").lines()[0].text
        # The adopted pod is still managed: deleting it removes it.
        await client.delete(PODS, "web", namespace)

        async def gone() -> bool:
            try:
                await client.get(PODS, "web", namespace)
            except errors.NotFound:
                return True
            return False

        await eventually(gone, timeout=10, what="adopted pod removal")


async def test_agent_rides_out_an_api_server_restart(tmp_path: Any) -> None:
    own = start_server(tmp_path / "data")
    try:
        name = f"restart-{uuid.uuid4().hex[:6]}"
        async with running(
            agent_config(own, name, pod_cidr_wait=0.5, node_lease_duration_seconds=4)
        ) as agent:
            port = own.port
            assert own.stop() == 0
            await asyncio.sleep(1.0)
            own = await asyncio.to_thread(start_server, tmp_path / "data", port=port)
            async with Client(load_kubeconfig(own.kubeconfig)) as c:
                lease = await c.get(LEASES, name, "kube-node-lease")
                renewed_before = parse_time(lease["spec"]["renewTime"]) or 0.0

                async def renewed() -> bool:
                    current = await c.get(LEASES, name, "kube-node-lease")
                    return (parse_time(current["spec"]["renewTime"]) or 0.0) > renewed_before

                await eventually(renewed, timeout=10, what="lease renewal after the restart")
                # The pod watch came back too: a pod created now is run.
                await create_pod(c, "default", pod_manifest("after-restart", name))
                await pod_where(c, "default", "after-restart", running_and_ready, "running after restart")
                assert agent.pod_reflector is not None and agent.pod_reflector.lists >= 2
                await c.delete(PODS, "after-restart", "default")
    finally:
        own.stop()


def test_cli_runs_until_sigterm(server: ServerProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    code = (
        "import argparse, sys\n"
        "from node_bootstrap.agent.cli import add_parser, run\n"
        "p = argparse.ArgumentParser(prog='pinnace')\n"
        "add_parser(p.add_subparsers(dest='command', required=True))\n"
        "sys.exit(run(p.parse_args(sys.argv[1:])))\n"
    )
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "node-agent",
            "--node-name",
            name,
            "--port",
            "0",
            "--address",
            "127.0.0.1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        async def wait_ready() -> None:
            async with Client(load_kubeconfig(server.kubeconfig)) as c:

                async def ready() -> bool:
                    node = await c.get(NODES, name)
                    return any(
                        x["type"] == "Ready" and x["status"] == "True"
                        for x in node["status"].get("conditions") or []
                    )

                await eventually(ready, timeout=20, what="node Ready")

        asyncio.run(wait_ready())
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=15)
        assert exit_code == 0, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
