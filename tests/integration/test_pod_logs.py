"""`kubectl logs` through a real `pinnace server` to a fake kubelet.

The fake kubelet is a small aiohttp HTTPS server on loopback that, like a real kubelet, only
talks to clients presenting a certificate from the cluster CA, and records what it was asked.
Nodes point at it through `status.addresses` and `status.daemonEndpoints.kubeletEndpoint.Port`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from aiohttp import web
from kubernetes.client import ApiClient, CoreV1Api

from controlplane.apiserver import pki
from tests.integration.conftest import KUBECTL_DIR, ServerProcess, free_port, kubectl_binaries
from tests.integration.kubectl_helpers import KUBECTL_NAMES, Kubectl, LineReader

WAITING = 'container "waiting" in pod "{pod}" is waiting to start: ContainerCreating'


@dataclass
class FakeKubelet:
    """Serves /containerLogs on 127.0.0.1:<port> from its own thread and event loop."""

    ca: Path
    serving_dir: Path
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _release: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10), "fake kubelet did not start"

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def release_follow(self) -> None:
        """Let a following stream end (a container that exits)."""
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    async def _serve(self) -> None:
        self._release = asyncio.Event()
        # Its own serving certificate from another CA: the API server does not verify kubelets.
        own = pki.ensure_pki(self.serving_dir, hostnames=["localhost"], ips=["127.0.0.1"])
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(own.serving_cert, own.serving_key)
        tls.load_verify_locations(cafile=self.ca)
        tls.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=tls).start()

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = {k: v for rdn in (peer or {}).get("subject", ()) for k, v in rdn}
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "cn": subject.get("commonName"),
                "o": subject.get("organizationName"),
            }
        )
        pod, container = request.match_info["pod"], request.match_info["container"]
        if container == "waiting":
            return web.Response(status=400, text=WAITING.format(pod=pod))
        if container == "gone":
            return web.Response(status=404, text="404 page not found")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        prefix = "2026-01-01T00:00:00.000000000Z " if request.query.get("timestamps") == "true" else ""
        for i in range(1, 4):
            await response.write(f"{prefix}{pod}/{container} line {i}\n".encode())
        if request.query.get("follow") == "true":
            assert self._release is not None
            await self._release.wait()
            await response.write(f"{pod}/{container} last line\n".encode())
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def kubelet(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubelet]:
    fake = FakeKubelet(ca=server.ca, serving_dir=tmp_path_factory.mktemp("kubelet") / "pki")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def core(server: ServerProcess) -> Iterator[CoreV1Api]:
    client: ApiClient = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield CoreV1Api(client)
    client.close()


def make_node(core: CoreV1Api, port: int) -> str:
    name = f"logs-node-{uuid.uuid4().hex[:8]}"
    core.create_node({"metadata": {"name": name}})
    core.patch_node_status(
        name,
        {
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": name},
                    {"type": "InternalIP", "address": "127.0.0.1"},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            }
        },
    )
    return name


@pytest.fixture(scope="module")
def node(core: CoreV1Api, kubelet: FakeKubelet) -> Iterator[str]:
    name = make_node(core, kubelet.port)
    yield name
    core.delete_node(name)


@pytest.fixture(scope="module")
def namespace(core: CoreV1Api) -> Iterator[str]:
    name = f"logs-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def make_pod(core: CoreV1Api, namespace: str, node: str | None, *containers: str, default: str = "") -> str:
    name = f"p-{uuid.uuid4().hex[:6]}"
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"kubectl.kubernetes.io/default-container": default}
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox:1.36"} for c in containers]}
    if node:
        spec["nodeName"] = node
    else:
        spec["schedulerName"] = "no-such-scheduler"  # stays unscheduled even with a scheduler running
    core.create_namespaced_pod(namespace, {"metadata": meta, "spec": spec})
    return name


@pytest.fixture(params=KUBECTL_NAMES[:2])
def kubectl(request: pytest.FixtureRequest, kube_env: dict[str, str]) -> Kubectl:
    for path in kubectl_binaries():
        if Path(path).name == request.param:
            return Kubectl(path, kube_env)
    pytest.skip(f"{request.param} is not installed (looked in {KUBECTL_DIR} and on PATH)")


def raw_get(server: ServerProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(server.url + path, context=server.ssl_context(), timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.kubectl
def test_kubectl_logs_reach_the_kubelet_with_the_client_certificate(
    kubectl: Kubectl, core: CoreV1Api, kubelet: FakeKubelet, node: str, namespace: str
) -> None:
    pod = make_pod(core, namespace, node, "app", "sidecar", default="app")
    before = len(kubelet.requests)
    out = kubectl.run("logs", "-n", namespace, pod, "-c", "sidecar").stdout
    assert out.splitlines() == [f"{pod}/sidecar line {i}" for i in (1, 2, 3)]
    seen = kubelet.requests[before]
    assert seen["path"] == f"/containerLogs/{namespace}/{pod}/sidecar"
    assert (seen["cn"], seen["o"]) == ("kube-apiserver-kubelet-client", "system:masters")

    # kubectl picks the annotated default container itself.
    out = kubectl.run("logs", "-n", namespace, pod).stdout
    assert out.splitlines()[0] == f"{pod}/app line 1"

    # Options travel to the kubelet.
    out = kubectl.run(
        "logs", "-n", namespace, pod, "-c", "app", "--tail=2", "--timestamps", "--limit-bytes=100"
    ).stdout
    assert out.startswith("2026-01-01T00:00:00.000000000Z ")
    assert kubelet.requests[-1]["query"] == {"tailLines": "2", "timestamps": "true", "limitBytes": "100"}

    failed = kubectl.run("logs", "-n", namespace, pod, "-c", "nope", check=False)
    assert failed.returncode != 0
    assert f"container nope is not valid for pod {pod}" in failed.stderr


@pytest.mark.kubectl
def test_kubectl_logs_follow_streams_until_the_container_ends(
    kubectl: Kubectl, core: CoreV1Api, kubelet: FakeKubelet, node: str, namespace: str
) -> None:
    pod = make_pod(core, namespace, node, "app")
    reader = LineReader(kubectl.popen("logs", "-f", "-n", namespace, pod))
    try:
        # Lines arrive while the stream is still open.
        reader.wait_for(lambda line: line == f"{pod}/app line 3")
        assert kubelet.requests[-1]["query"] == {"follow": "true"}
        assert reader.process.poll() is None
        kubelet.release_follow()
        reader.wait_for(lambda line: line == f"{pod}/app last line")
        assert reader.process.wait(timeout=30) == 0
    finally:
        reader.stop()


def test_container_choice_and_kubelet_refusals(
    server: ServerProcess, core: CoreV1Api, kubelet: FakeKubelet, node: str, namespace: str
) -> None:
    pod = make_pod(core, namespace, node, "app", "sidecar", "waiting", "gone")
    base = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    status, body = raw_get(server, base)
    assert status == 400
    assert json.loads(body)["message"] == (
        f"a container name must be specified for pod {pod}, choose one of: [app sidecar waiting gone]"
    )
    status, body = raw_get(server, base + "?container=waiting")
    assert status == 400 and json.loads(body)["message"] == WAITING.format(pod=pod)
    status, body = raw_get(server, base + "?container=gone")
    assert status == 404
    assert (
        json.loads(body)["message"] == f"the server could not find the requested resource ( pods/log {pod})"
    )
    status, body = raw_get(server, base + "?container=app&tailLines=-1")
    assert status == 422 and json.loads(body)["reason"] == "Invalid"
    status, body = raw_get(server, base + "?container=app")
    assert status == 200 and body.startswith(f"{pod}/app line 1\n")


def test_unscheduled_pods_and_unreachable_kubelets(
    server: ServerProcess, core: CoreV1Api, namespace: str
) -> None:
    pending = make_pod(core, namespace, None, "app")
    status, body = raw_get(server, f"/api/v1/namespaces/{namespace}/pods/{pending}/log")
    assert (status, body) == (204, "")

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    dead = make_node(core, dead_port)
    try:
        pod = make_pod(core, namespace, dead, "app")
        status, body = raw_get(server, f"/api/v1/namespaces/{namespace}/pods/{pod}/log")
        status_body = json.loads(body)
        assert status == 500 and "reason" not in status_body
        assert status_body["message"] == (
            f'Get "https://127.0.0.1:{dead_port}/containerLogs/{namespace}/{pod}/app": '
            f"dial tcp 127.0.0.1:{dead_port}: connect: connection refused"
        )
    finally:
        core.delete_node(dead)


def test_the_fake_kubelet_refuses_clients_without_a_certificate(kubelet: FakeKubelet) -> None:
    # What makes the proxy tests above prove that the API server presents its client certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{kubelet.port}/containerLogs/a/b/c"
    with (
        pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)),
        urllib.request.urlopen(url, context=context, timeout=10) as resp,
    ):
        resp.read()
