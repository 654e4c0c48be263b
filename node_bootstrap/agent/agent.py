"""The node agent process: one log server, two API clients (pods; heartbeats), one or many
simulated nodes.

Start-up order matters: the log server listens first (its port is each Node's
daemonEndpoints.kubeletEndpoint.Port), then every node registers, then one watch of Nodes and
one watch of pods feed the nodes and their pod workers; `started` is set once the pods are
listed and every node holds its Lease. Everything runs in one TaskGroup; `stop` ends it.
Nothing is cleaned up in the API on the way out: a kubelet that stops just stops renewing its
Lease, and the node lifecycle controller does the rest.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from typing import Any

from controlplane.client import Client, load_kubeconfig
from node_bootstrap.agent import certs
from node_bootstrap.agent.bootstrap import BootstrapError, CertificateManager, bootstrap_source, stored_source
from node_bootstrap.agent.clock import Clock, RealClock
from node_bootstrap.agent.config import AgentConfig
from node_bootstrap.agent.kube import NODES, PODS, Api
from node_bootstrap.agent.logs import LogStore
from node_bootstrap.agent.node import KUBELET_VERSION, SimNode, identities
from node_bootstrap.agent.pods import Backoff
from node_bootstrap.agent.podworker import PodWorker
from node_bootstrap.agent.server import LogServer
from node_bootstrap.agent.watch import Reflector

__all__ = ["NodeAgent", "run_agents"]

log = logging.getLogger("pinnace.nodeagent")

Obj = dict[str, Any]

# Past this many nodes the serving certificate names only localhost: the API server does not
# verify kubelet certificates by default, and a certificate with thousands of names is slow.
MAX_CERT_NODES = 64


class _Stopped(Exception):
    pass


class NodeAgent:
    """Runs `config.node_names` as simulated kubelets until `run`'s stop event is set.

    `api` and `clock` are for tests and in-process use (`pinnace up`); by default the agent
    builds its client from `config.kubeconfig` and uses the wall clock."""

    def __init__(self, config: AgentConfig, *, api: Api | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self._api = api
        self._clock: Clock = clock or RealClock()
        self.logs = LogStore(config.log_lines_per_container)
        self.nodes: dict[str, SimNode] = {}
        self.workers: dict[str, PodWorker] = {}
        self.started = asyncio.Event()
        self.port = 0
        self._tg: asyncio.TaskGroup | None = None
        self._backoff = Backoff(config.container_restart_backoff, config.container_restart_backoff_max)
        self.pod_reflector: Reflector | None = None
        self._live_api: Api | None = None
        # With TLS bootstrap every node talks as itself: its own clients and certificate.
        self._node_apis: dict[str, tuple[Api, Api]] = {}
        self.certificates: dict[str, CertificateManager] = {}
        self._cluster_ca: bytes | None = None

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        own_clients: list[Client] = []
        api = self._api
        heartbeat = api
        agent = f"kubelet/{KUBELET_VERSION} (linux/amd64) pinnace-node-agent"
        if api is None and config.bootstraps:
            await self._bootstrap()
            for name, manager in self.certificates.items():
                # Two clients per node, as below; each presents that node's certificate.
                pair = (
                    Client(manager.credentials(), user_agent=agent),
                    Client(manager.credentials(), user_agent=agent),
                )
                own_clients += pair
                self._node_apis[name] = pair
                manager.on_rotated = functools.partial(_close_connections, pair)
            api, heartbeat = self._node_apis[config.node_names[0]]
        elif api is None:
            if config.kubeconfig is None:
                raise ValueError("a kubeconfig is required")
            credentials = load_kubeconfig(config.kubeconfig)
            # "kubelet/..." first, so field managers read "kubelet" as they do upstream.
            # Two clients, as the kubelet has: Leases and NodeStatus on the heartbeat client's
            # own connections. With many nodes in one process, a burst of pod status writes
            # would otherwise hold every connection and leases would expire behind it.
            api, heartbeat = Client(credentials, user_agent=agent), Client(credentials, user_agent=agent)
            own_clients += [api, heartbeat]
        self._live_api = api
        server = LogServer(
            self.logs,
            clock=self._clock,
            ssl_context=self._ssl_context(),
            bind_address=config.bind_address,
            port=config.port,
        )
        try:
            self.port = await server.start()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for ident in identities(config):
                    node_api, node_heartbeat = self._node_apis.get(ident.name, (api, heartbeat))
                    node = SimNode(
                        config,
                        ident,
                        api=node_api,
                        heartbeat_api=node_heartbeat,
                        clock=self._clock,
                        port=self.port,
                    )
                    self.nodes[node.name] = node
                    tg.create_task(node.register())
                    tg.create_task(node.lease_loop())
                    tg.create_task(node.status_loop())
                    rotator = self.certificates.get(node.name)
                    if rotator is not None and config.rotate_certificates:
                        tg.create_task(rotator.rotate_forever(node_api))
                tg.create_task(self._watch(api, tg))
                await stop.wait()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            self._tg = None
            self.logs.close_all()
            await server.stop()
            for client in own_clients:
                await client.close()
            log.info("node agent stopped")

    async def _bootstrap(self) -> None:
        """Every node's client certificate: reused when still valid, else by TLS bootstrap."""
        config = self.config
        assert config.cert_dir is not None  # AgentConfig checks this
        try:
            source = None
            if config.bootstrap_kubeconfig is None:
                source = stored_source(
                    config.cert_dir,
                    config.node_names,
                    server=config.bootstrap_server,
                    token=config.bootstrap_token,
                    ca_cert_hashes=config.discovery_ca_cert_hashes,
                    now=self._clock.now(),
                )
            if source is None:
                source = await bootstrap_source(
                    bootstrap_kubeconfig=config.bootstrap_kubeconfig,
                    server=config.bootstrap_server,
                    token=config.bootstrap_token,
                    ca_cert_hashes=config.discovery_ca_cert_hashes,
                    clock=self._clock,
                    discovery_timeout=config.discovery_timeout,
                )
        except ValueError as exc:
            raise BootstrapError(str(exc)) from exc
        self._cluster_ca = source.ca_pem
        for name in config.node_names:
            self.certificates[name] = CertificateManager(
                name,
                config.cert_dir,
                source,
                clock=self._clock,
                expiration_seconds=config.certificate_expiration_seconds,
                timeout=config.bootstrap_timeout,
            )
        try:
            async with asyncio.TaskGroup() as tg:
                for manager in self.certificates.values():
                    tg.create_task(manager.ensure())
        except* BootstrapError as group:
            # One clear message, not a group: every node fails the same way on a bad token.
            raise group.exceptions[0] from None
        except* Exception as group:
            first = group.exceptions[0]
            raise BootstrapError(f"TLS bootstrap failed: {type(first).__name__}: {first}") from first

    def _ssl_context(self) -> ssl.SSLContext:
        config = self.config
        if config.client_ca_file is not None:
            client_ca = config.client_ca_file.read_bytes()
        elif self._cluster_ca is not None:
            client_ca = self._cluster_ca
        elif config.kubeconfig is not None:
            found = certs.ca_from_kubeconfig(config.kubeconfig)
            if found is None:
                raise ValueError("the kubeconfig names no certificate authority; pass --client-ca-file")
            client_ca = found
        else:
            raise ValueError("a client CA is required to serve logs (--client-ca-file or --kubeconfig)")
        if config.tls_cert_file is not None and config.tls_private_key_file is not None:
            cert_pem, key_pem = config.tls_cert_file.read_bytes(), config.tls_private_key_file.read_bytes()
        else:
            idents = identities(config)
            dns = ["localhost"]
            ips = ["127.0.0.1"]
            if len(idents) <= MAX_CERT_NODES:
                dns += [i.name for i in idents]
                ips += [i.ip for i in idents]
            cert_pem, key_pem = certs.load_or_create_serving_cert(config.data_dir, idents[0].name, dns, ips)
        return certs.server_ssl_context(cert_pem, key_pem, client_ca)

    async def _watch(self, api: Api, tg: asyncio.TaskGroup) -> None:
        await asyncio.gather(*(node.registered.wait() for node in self.nodes.values()))
        log.info("%d node(s) registered; watching their pods", len(self.nodes))
        names = list(self.nodes)
        # A node talking as itself may list only its own Node and its own pods (the Node
        # authorizer's selector rules), so with per-node identities every node watches alone.
        groups = [[n] for n in names] if self._node_apis else [names]
        pod_reflectors = []
        for group in groups:
            single = len(group) == 1
            node_params = {"fieldSelector": f"metadata.name={group[0]}"} if single else {}
            pod_params = {"fieldSelector": f"spec.nodeName={group[0]}" if single else "spec.nodeName!="}
            watch_api = self._node_apis[group[0]][0] if self._node_apis else api
            nodes = Reflector(
                watch_api,
                NODES,
                params=node_params,
                on_upsert=self._on_node,
                on_delete=self._on_node_deleted,
                clock=self._clock,
            )
            pods = Reflector(
                watch_api,
                PODS,
                params=pod_params,
                on_upsert=self._on_pod,
                on_delete=self._on_pod_deleted,
                clock=self._clock,
            )
            pod_reflectors.append(pods)
            tg.create_task(nodes.run())
            tg.create_task(pods.run())
        self.pod_reflector = pod_reflectors[0]
        await asyncio.gather(*(r.synced.wait() for r in pod_reflectors))
        # Ready means heartbeating too: a Node without its Lease would soon be marked Unknown.
        await asyncio.gather(*(node.heartbeating.wait() for node in self.nodes.values()))
        log.info("node agent ready: %d node(s), kubelet endpoint port %d", len(names), self.port)
        self.started.set()

    # -- dispatch ------------------------------------------------------------------------------

    def _on_node(self, obj: Obj) -> None:
        node = self.nodes.get(str((obj.get("metadata") or {}).get("name")))
        if node is not None:
            node.observe(obj)

    def _on_node_deleted(self, obj: Obj) -> None:
        node = self.nodes.get(str((obj.get("metadata") or {}).get("name")))
        if node is not None:
            node.observe_deleted()

    def _on_pod(self, pod: Obj) -> None:
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if node is None or not uid or self._tg is None or self._live_api is None:
            return
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        worker_api = self._node_apis[node.name][0] if node.name in self._node_apis else self._live_api
        worker = PodWorker(
            pod, host=node, api=worker_api, clock=self._clock, logs=self.logs, backoff=self._backoff
        )
        self.workers[uid] = worker
        self._tg.create_task(self._run_worker(worker))

    def _on_pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.get(str((pod.get("metadata") or {}).get("uid") or ""))
        if worker is not None:
            worker.remove()

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]


async def _close_connections(clients: tuple[Client, ...]) -> None:
    """Drop pooled connections; each client opens new ones (with the new certificate) on demand."""
    for client in clients:
        await client.close()


async def run_agents(
    config: AgentConfig, stop: asyncio.Event, *, api: Api | None = None, clock: Clock | None = None
) -> None:
    """Run the simulated nodes of `config` until `stop` is set."""
    await NodeAgent(config, api=api, clock=clock).run(stop)
