"""A node joins with a bootstrap token, end to end, against a real `pinnace server`.

`pinnace token create --print-join-command` gives the server, the token and the CA's public-key
hash; `pinnace node-agent --server --token --discovery-token-ca-cert-hash` then discovers the CA
by that pin, asks for its certificate with a CSR (auto-approved for the kubeadm default node
token group, signed by the in-process signer) and from then on runs as system:node:<name> only:
it has no other credentials, and the Node authorizer lets a node write only its own objects.

The server is a stock one: the agent finds the CA in the kube-public/cluster-info ConfigMap,
which the server publishes and lets anyone read, as kubeadm sets it up.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from controlplane.client import Client, ResourcePath, load_kubeconfig
from controlplane.tokens_cli import token_secret
from node_bootstrap.agent import AgentConfig, NodeAgent
from node_bootstrap.agent.kube import LEASES, NODE_LEASE_NAMESPACE, NODES, PODS
from tests.integration.conftest import REPO, ServerProcess, start_server

CSRS = ResourcePath("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
SECRETS = ResourcePath("", "v1", "secrets")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def join_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("pinnace-join") / "data", "--cloud-provider", "none")
    try:
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"server did not shut down cleanly ({code}):\n{proc.log()[-4000:]}"


def pinnace(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", *args],
        cwd=REPO,
        env=env or agent_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def agent_env() -> dict[str, str]:
    # No KUBECONFIG: the agent must get by on the bootstrap token alone.
    return {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}


def join_parameters(proc: ServerProcess, *extra: str) -> tuple[str, str, str]:
    result = pinnace("token", "create", "--kubeconfig", str(proc.kubeconfig), "--print-join-command", *extra)
    assert result.returncode == 0, result.stderr
    match = re.search(
        r"join (\S+) --token (\S+) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})", result.stdout
    )
    assert match, result.stdout
    return f"https://{match.group(1)}", match.group(2), match.group(3)


def bootstrap_kubeconfig(directory: Path, server: str, ca: Path, token: str) -> Path:
    """A kubelet's --bootstrap-kubeconfig: the server, its CA and the bootstrap token."""
    conf = directory / "bootstrap-kubelet.conf"
    conf.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: tls-bootstrap\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: {ca}}}}}]\n"
        "contexts: [{name: tls-bootstrap, context: {cluster: c, user: kubelet-bootstrap}}]\n"
        f"users: [{{name: kubelet-bootstrap, user: {{token: {token}}}}}]\n"
    )
    return conf


def join_flags(server: str, token: str, ca_hash: str) -> list[str]:
    return ["--server", server, "--token", token, "--discovery-token-ca-cert-hash", ca_hash]


def agent_args(server: str, token: str, ca_hash: str, cert_dir: Path, *extra: str) -> list[str]:
    return conf_agent_args(join_flags(server, token, ca_hash), cert_dir, *extra)


def conf_agent_args(source: list[str], cert_dir: Path, *extra: str) -> list[str]:
    return [
        "node-agent",
        *source,
        "--cert-dir",
        str(cert_dir),
        "--port",
        "0",
        "--address",
        "127.0.0.1",
        "--node-lease-duration-seconds",
        "4",
        "--node-status-update-frequency",
        "1s",
        *extra,
    ]


def start_agent(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "controlplane", *args],
            cwd=REPO,
            env=agent_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_agent(agent: subprocess.Popen[bytes], log: Path) -> None:
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, log.read_text(errors="replace")[-4000:]


async def eventually(fn: Any, *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await fn()
        except Exception as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


def subject(pem: bytes) -> tuple[list[str], list[str]]:
    """CN and O of a certificate or a certificate request."""
    cert: x509.Certificate | x509.CertificateSigningRequest
    if b"CERTIFICATE REQUEST" in pem:
        cert = x509.load_pem_x509_csr(pem)
    else:
        cert = x509.load_pem_x509_certificate(pem)
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return cns, orgs


async def node_csrs(admin: Client, names: list[str]) -> list[dict[str, Any]]:
    found = []
    for item in (await admin.list(CSRS))["items"]:
        cn, _ = subject(base64.b64decode(item["spec"]["request"]))
        if cn and cn[0] in {f"system:node:{n}" for n in names}:
            found.append(item)
    return found


async def test_node_joins_with_a_bootstrap_token(join_server: ServerProcess, tmp_path: Path) -> None:
    server, token, ca_hash = join_parameters(join_server)
    token_id = token.split(".")[0]
    prefix = f"join-{uuid.uuid4().hex[:5]}"
    names = [f"{prefix}-0", f"{prefix}-1"]
    cert_dir = tmp_path / "pki"
    log = tmp_path / "agent.log"
    agent = start_agent(
        agent_args(server, token, ca_hash, cert_dir, "--nodes", "2", "--node-name-prefix", prefix), log
    )
    try:
        async with Client(load_kubeconfig(join_server.kubeconfig)) as admin:
            for name in names:
                await eventually(lambda n=name: _ready(admin, n), what=f"node {name} Ready")
            # One CSR per node, made by the bootstrap token, approved by the approver, signed.
            csrs = await node_csrs(admin, names)
            assert len(csrs) == 2, csrs
            for item in csrs:
                assert item["metadata"]["name"].startswith("node-csr-")
                spec = item["spec"]
                assert spec["username"] == f"system:bootstrap:{token_id}"
                assert "system:bootstrappers:kubeadm:default-node-token" in spec["groups"]
                assert spec["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                assert sorted(spec["usages"]) == ["client auth", "digital signature"]
                approved = [c for c in item["status"]["conditions"] if c["type"] == "Approved"]
                assert approved and approved[0]["reason"] == "AutoApproved"
                assert item["status"].get("certificate")
            # Each node keeps its own certificate: CN system:node:<name>, O system:nodes.
            seen_keys = set()
            for name in names:
                pem = (cert_dir / name / "kubelet-client-current.pem").read_bytes()
                assert subject(pem) == ([f"system:node:{name}"], ["system:nodes"])
                seen_keys.add(pem)
                assert (cert_dir / name / "kubelet.conf").exists()
            assert len(seen_keys) == 2
            # The Lease is renewed by the node (the agent holds no other credentials).
            lease = await admin.get(LEASES, names[0], NODE_LEASE_NAMESPACE)
            first = lease["spec"]["renewTime"]

            async def renewed() -> bool:
                again = await admin.get(LEASES, names[0], NODE_LEASE_NAMESPACE)
                return bool(
                    again["spec"]["renewTime"] != first and again["spec"]["holderIdentity"] == names[0]
                )

            await eventually(renewed, what="lease renewed")
            # A pod bound to the node runs.
            pod_name = f"pod-{uuid.uuid4().hex[:5]}"
            await admin.create(
                PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod_name},
                    "spec": {"nodeName": names[1], "containers": [{"name": "c", "image": "busybox"}]},
                },
                "default",
            )

            async def running() -> bool:
                pod = await admin.get(PODS, pod_name, "default")
                return bool(pod.get("status", {}).get("phase") == "Running")

            await eventually(running, what="pod Running")
            await admin.delete(PODS, pod_name, "default", options={"gracePeriodSeconds": 0})

            # A restart reuses the still-valid certificates: no token needed, no new CSR.
            stop_agent(agent, log)
            deleted = pinnace("token", "delete", "--kubeconfig", str(join_server.kubeconfig), token_id)
            assert deleted.returncode == 0, deleted.stderr
            agent = start_agent(
                agent_args(server, token, ca_hash, cert_dir, "--nodes", "2", "--node-name-prefix", prefix),
                log,
            )
            lease = await admin.get(LEASES, names[0], NODE_LEASE_NAMESPACE)
            before = lease["spec"]["renewTime"]

            async def renewed_again() -> bool:
                again = await admin.get(LEASES, names[0], NODE_LEASE_NAMESPACE)
                return bool(again["spec"]["renewTime"] != before)

            await eventually(renewed_again, what="lease renewed after restart")
            assert len(await node_csrs(admin, names)) == 2
    finally:
        stop_agent(agent, log)


async def _ready(admin: Client, name: str) -> bool:
    return ready(await admin.get(NODES, name))


async def test_an_expired_token_is_refused(join_server: ServerProcess, tmp_path: Path) -> None:
    server, _, ca_hash = join_parameters(join_server)
    token = f"{uuid.uuid4().hex[:6]}.{uuid.uuid4().hex[:16]}"
    secret = token_secret(
        token,
        ttl=timedelta(seconds=1),
        usages=["signing", "authentication"],
        groups=["system:bootstrappers:kubeadm:default-node-token"],
        description="already expired",
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    async with Client(load_kubeconfig(join_server.kubeconfig)) as admin:
        await admin.create(SECRETS, secret, "kube-system")
    name = f"expired-{uuid.uuid4().hex[:5]}"
    # Through discovery, as kubeadm: cluster-info is never signed for an expired token, so the
    # join gives up when the discovery timeout runs out.
    args = agent_args(
        server, token, ca_hash, tmp_path / "pki", "--node-name", name, "--discovery-timeout", "2s"
    )
    result = pinnace(*args, timeout=60)
    assert result.returncode == 1, result.stderr
    token_id = token.split(".", maxsplit=1)[0]
    expected = f'could not find a JWS signature in the cluster-info ConfigMap for token ID "{token_id}"'
    assert expected in result.stderr, result.stderr
    assert not (tmp_path / "pki" / name / "kubelet-client-current.pem").exists()
    # With the CA given (a bootstrap kubeconfig), the token reaches the server, which refuses it.
    conf = bootstrap_kubeconfig(tmp_path, server, join_server.ca, token)
    args = conf_agent_args(["--bootstrap-kubeconfig", str(conf)], tmp_path / "pki", "--node-name", name)
    result = pinnace(*args, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Unauthorized" in result.stderr and "bootstrap token" in result.stderr, result.stderr
    assert "expired" in result.stderr
    assert not (tmp_path / "pki" / name / "kubelet-client-current.pem").exists()


async def test_a_wrong_ca_hash_is_refused(join_server: ServerProcess, tmp_path: Path) -> None:
    server, token, _ = join_parameters(join_server)
    wrong = "sha256:" + "0" * 64
    name = f"wrong-ca-{uuid.uuid4().hex[:5]}"
    result = pinnace(*agent_args(server, token, wrong, tmp_path / "pki", "--node-name", name), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "none of the public keys" in result.stderr and wrong in result.stderr, result.stderr
    async with Client(load_kubeconfig(join_server.kubeconfig)) as admin:
        assert await node_csrs(admin, [name]) == []


async def test_rotation_renews_as_the_node(join_server: ServerProcess, tmp_path: Path) -> None:
    """A rotation (forced here; the signer's shortest certificate lives ten minutes) is a CSR
    the node makes as itself, auto-approved through selfnodeclient; the node carries on with it."""
    server, token, ca_hash = join_parameters(join_server)
    name = f"rotate-{uuid.uuid4().hex[:5]}"
    config = AgentConfig(
        node_names=(name,),
        bootstrap_server=server,
        bootstrap_token=token,
        discovery_ca_cert_hashes=(ca_hash,),
        cert_dir=tmp_path / "pki",
        bind_address="127.0.0.1",
        port=0,
        node_lease_duration_seconds=4,
        node_status_update_frequency=1.0,
    )
    agent = NodeAgent(config)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg, Client(load_kubeconfig(join_server.kubeconfig)) as admin:
        tg.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.started.wait(), 60)
            manager = agent.certificates[name]
            first = manager.certificate
            assert first is not None
            async with Client(manager.credentials()) as as_node:
                await manager.rotate(as_node)
            assert (
                manager.certificate is not None and manager.certificate.serial_number != first.serial_number
            )
            on_disk = (tmp_path / "pki" / name / "kubelet-client-current.pem").read_bytes()
            assert x509.load_pem_x509_certificate(on_disk) == manager.certificate
            renewals = [c for c in await node_csrs(admin, [name]) if c["metadata"]["name"].startswith("csr-")]
            assert len(renewals) == 1
            assert renewals[0]["spec"]["username"] == f"system:node:{name}"
            approved = [c for c in renewals[0]["status"]["conditions"] if c["type"] == "Approved"]
            assert approved[0]["reason"] == "AutoApproved"
            assert "self" in approved[0]["message"]
            lease = await admin.get(LEASES, name, NODE_LEASE_NAMESPACE)
            before = lease["spec"]["renewTime"]

            async def renewed() -> bool:
                again = await admin.get(LEASES, name, NODE_LEASE_NAMESPACE)
                return bool(again["spec"]["renewTime"] != before)

            await eventually(renewed, what="lease renewed with the rotated certificate")
        finally:
            stop.set()


async def test_join_with_a_bootstrap_kubeconfig(join_server: ServerProcess, tmp_path: Path) -> None:
    server, token, _ = join_parameters(join_server)
    conf = bootstrap_kubeconfig(tmp_path, server, join_server.ca, token)
    name = f"conf-{uuid.uuid4().hex[:5]}"
    args = conf_agent_args(["--bootstrap-kubeconfig", str(conf)], tmp_path / "pki", "--node-name", name)
    log = tmp_path / "agent.log"
    agent = start_agent(args, log)
    try:
        async with Client(load_kubeconfig(join_server.kubeconfig)) as admin:
            await eventually(lambda: _ready(admin, name), what=f"node {name} Ready")
            [request] = await node_csrs(admin, [name])
            assert request["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"
    finally:
        stop_agent(agent, log)
    assert subject((tmp_path / "pki" / name / "kubelet-client-current.pem").read_bytes())[0] == [
        f"system:node:{name}"
    ]
