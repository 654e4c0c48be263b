"""`pinnace server`: assemble storage, PKI, the application and the HTTPS listener; run until a
signal; shut down gracefully (stop accepting, end watches, finish in-flight requests, flush storage).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from aiohttp import web

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver import (
    admission,
    audit,
    audit_policy,
    authn_endpoints,
    authorization_reviews,
    authz,
    kubeconfig,
    kubelet_client,
    openapi,
    openapi_v2,
    pki,
    rest,
    tls,
)
from controlplane.apiserver import app as app_module
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.crd.codec import CustomResourceCodec
from controlplane.apiserver.crd.controller import CRDController
from controlplane.apiserver.node_authorizer import NodeAuthorizer, NodeGraph
from controlplane.apiserver.rbac import RBAC, RBACEscalation
from controlplane.apiserver.requestinfo import RequestInfo
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

__all__ = ["RunningServer", "ServerConfig", "start"]

log = logging.getLogger("pinnace.server")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class ServerConfig:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    service_cidr: str = "10.96.0.0/12"
    cluster_cidr: str = "10.244.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)
    tls_sans: list[str] = field(default_factory=list)
    storage_url: str = ""
    synchronous: str = "FULL"
    tls_backend: Literal["openssl", "stdlib"] = "openssl"
    token_file: Path | None = None
    # ServiceAccount tokens: the first issuer signs, all are accepted; the signing key defaults to
    # <data-dir>/pki/sa.key (created on first start), verification keys to its public half, API
    # audiences to the first issuer (kube-apiserver's defaults).
    service_account_issuers: list[str] = field(default_factory=lambda: [authn_endpoints.DEFAULT_ISSUER])
    service_account_signing_key_file: Path | None = None
    service_account_key_files: list[Path] = field(default_factory=list)
    api_audiences: list[str] = field(default_factory=list)
    service_account_max_token_expiration: int = 0
    service_account_extend_token_expiration: bool = True
    bookmark_interval: float = 60.0
    compaction_interval: float = 60.0
    retain_revisions: int = 1000
    retain_seconds: float = 300.0
    shutdown_timeout: float = 30.0
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    # DefaultTolerationSeconds admission (--default-not-ready-toleration-seconds and
    # --default-unreachable-toleration-seconds upstream).
    default_not_ready_toleration_seconds: int = admission.DEFAULT_TOLERATION_SECONDS
    default_unreachable_toleration_seconds: int = admission.DEFAULT_TOLERATION_SECONDS
    # --disable-admission-plugins: upstream's integration servers turn ServiceAccount off.
    disable_admission_plugins: tuple[str, ...] = ()
    # The in-process cloud-controller-manager (ccm.manager.run_in_process): aws, local or none.
    cloud_provider: str = "local"
    cloud_config: Path | None = None
    # Upstream's --audit-log-* flags: no events without both a log path (`-`: stdout) and a policy.
    audit_log_path: str = ""
    audit_policy_file: Path | None = None
    audit_log_maxsize: int = 0
    audit_log_maxbackup: int = 0
    audit_log_maxage: int = 0

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def scheduler_kubeconfig_path(self) -> Path:
        """The in-process scheduler's credential: user `system:kube-scheduler` (kubeadm's scheduler.conf)."""
        return self.data_dir / "scheduler.kubeconfig"

    @property
    def controller_manager_kubeconfig_path(self) -> Path:
        """The in-process controllers' credential: user `system:kube-controller-manager`."""
        return self.data_dir / "controller-manager.kubeconfig"

    @property
    def cloud_controller_manager_kubeconfig_path(self) -> Path:
        """The in-process CCM's credential: user `system:cloud-controller-manager`."""
        return self.data_dir / "cloud-controller-manager.kubeconfig"

    @property
    def provisioner_kubeconfig_path(self) -> Path:
        """The NodePool/Machine operator's credential: user `system:pinnace-provisioner`."""
        return self.data_dir / "provisioner.kubeconfig"


@dataclass
class RunningServer:
    config: ServerConfig
    ctx: ServerContext
    runner: web.AppRunner
    url: str
    pki: pki.PKI
    stopping: asyncio.Event
    # The in-process CRD controllers (upstream runs them inside kube-apiserver too).
    crds: CRDController | None = None
    # The RBAC policy cache (and ClusterRole aggregation) following storage.
    rbac: RBAC | None = None
    # What the Node authorizer knows: pods bound to each node and what they reference.
    node_graph: NodeGraph | None = None
    audit_backend: audit.LogBackend | None = None

    async def run_controllers(self, stop: asyncio.Event) -> None:
        """The server's own background work, until `stop`; the caller's TaskGroup owns it."""
        async with asyncio.TaskGroup() as tg:
            tasks = []
            if self.crds is not None:
                tasks.append(tg.create_task(self.crds.run(), name="crd-controllers"))
            if self.rbac is not None:
                tasks.append(tg.create_task(self.rbac.run(), name="rbac-cache"))
            if self.node_graph is not None:
                tasks.append(tg.create_task(self.node_graph.run(), name="node-graph"))
            await stop.wait()
            for task in tasks:
                task.cancel()

    async def stop(self) -> None:
        self.stopping.set()
        # End open watches first: they are long-running and would hold the graceful shutdown
        # until its timeout; clients reconnect and resume from their last resourceVersion.
        watches = self.ctx.extra.get("open_watches")
        if isinstance(watches, set):
            for watch in list(watches):
                await watch.close()
        await self.runner.cleanup()
        if self.audit_backend is not None:
            await asyncio.to_thread(self.audit_backend.close)
        await self.ctx.storage.close()


def _sans(config: ServerConfig) -> tuple[list[str], list[str]]:
    hostnames = [
        "localhost",
        socket.gethostname(),
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    ips = ["127.0.0.1", "::1"]
    if config.bind_address not in ("0.0.0.0", "::", "127.0.0.1", "localhost"):
        ips.append(config.bind_address)
    for san in config.tls_sans:
        try:
            import ipaddress

            ipaddress.ip_address(san)
            ips.append(san)
        except ValueError:
            hostnames.append(san)
    return sorted(set(hostnames)), sorted(set(ips))


async def start(config: ServerConfig) -> RunningServer:
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    hostnames, ips = _sans(config)
    credentials = await asyncio.to_thread(pki.ensure_pki, data_dir / "pki", hostnames=hostnames, ips=ips)
    kubelet_cert, kubelet_key = await asyncio.to_thread(kubelet_client.ensure_client_cert, credentials)

    storage_url = config.storage_url or f"sqlite:///{(data_dir / 'state.db').resolve()}"
    storage = open_storage(
        storage_url,
        synchronous=config.synchronous,
        compaction_interval=config.compaction_interval,
        retain_revisions=config.retain_revisions,
        retain_seconds=config.retain_seconds,
    )
    await storage.start()
    registry = default_registry()
    ip_allocator = ServiceIPAllocator(storage, config.service_cidr)
    custom_codec = CustomResourceCodec()
    ctx = ServerContext(
        registry=registry,
        storage=storage,
        store=ObjectStore(storage, custom_codec),
        services=ServiceAllocation(ip_allocator, NodePortAllocator(storage, *config.node_port_range)),
        bookmark_interval=config.bookmark_interval,
        admission=admission.default_admission(
            not_ready_toleration_seconds=config.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds=config.default_unreachable_toleration_seconds,
            disabled=config.disable_admission_plugins,
        ),
        kubelet_tls=kubelet_client.ssl_context(kubelet_cert, kubelet_key),
    )
    custom_codec.ctx = ctx
    stopping = asyncio.Event()
    ctx.extra["stopping"] = stopping
    ctx.extra["cluster_cidr"] = config.cluster_cidr
    await _bootstrap(ctx, ip_allocator.kubernetes_service_ip, config.port)
    await bootstrap_priority_classes(ctx)
    rbac = RBAC(ctx)
    await rbac.start()
    svc_info = registry.get("", "v1", "services")
    assert svc_info is not None
    leaked = await ctx.services.repair((await ctx.store.list(svc_info, None)).items)
    if leaked:
        log.warning("released allocations no Service holds", extra={"released": leaked})
    # Custom resources of stored CRDs are served from the first request on.
    crds = CRDController(ctx)
    await crds.sync_all()
    # The OpenAPI documents take about half a second of CPU to build; build them before serving so
    # the first kubectl apply does not stall the event loop.
    await asyncio.to_thread(openapi.v3_root, registry)
    await asyncio.to_thread(openapi_v2.document, registry)

    authentication = await authn_endpoints.build(
        ctx,
        data_dir / "pki",
        token_file=config.token_file,
        issuers=config.service_account_issuers,
        signing_key_file=config.service_account_signing_key_file,
        key_files=config.service_account_key_files,
        api_audiences=config.api_audiences,
        max_token_expiration=config.service_account_max_token_expiration,
        extend_token_expiration=config.service_account_extend_token_expiration,
    )
    node_graph = NodeGraph(ctx.storage)
    await node_graph.sync()
    authorizer = authz.standard_authorizer(rbac.authorizer, NodeAuthorizer(node_graph))
    # Escalation prevention first among the validating plugins: upstream checks it in the RBAC
    # storage, before validating admission runs.
    ctx.admission.validating = [RBACEscalation(rbac.authorizer, authorizer), *ctx.admission.validating]
    auditor, audit_backend = await _auditor(config)
    settings = app_module.AppSettings(
        authenticator=authentication.authenticator,
        authorizer=authorizer,
        max_requests_inflight=config.max_requests_inflight,
        max_mutating_requests_inflight=config.max_mutating_requests_inflight,
        ready=lambda: not stopping.is_set(),
        auditor=auditor,
    )
    application = app_module.create_app(ctx, settings)
    # Innermost: TokenRequest and the authentication reviews, after authn and authz.
    application.middlewares.append(authn_endpoints.middleware(authentication.endpoints))
    application.middlewares.append(authorization_reviews.middleware(authorizer, rbac.authorizer))
    runner = web.AppRunner(
        application, shutdown_timeout=config.shutdown_timeout, access_log=None, handle_signals=False
    )
    await runner.setup()
    site = tls.serving_site(
        runner, config.bind_address, config.port, credentials, backlog=1024, backend=config.tls_backend
    )
    await site.start()
    port = config.port
    if port == 0:
        # The listening socket's port: asyncio's Server and uvloop's both have `sockets`.
        sockets = getattr(site._server, "sockets", None)
        assert sockets, "the site is listening"
        port = sockets[0].getsockname()[1]
    host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "127.0.0.1") else config.bind_address
    if ":" in host:
        host = f"[{host}]"
    url = f"https://{host}:{port}"
    kubeconfig.write_admin_kubeconfig(credentials, config.kubeconfig_path, url)
    await publish_cluster_info(ctx, url, credentials.ca_pem())
    await asyncio.to_thread(_write_component_kubeconfigs, credentials, config, url)
    log.info(
        "serving",
        extra={"url": url, "kubeconfig": str(config.kubeconfig_path), "storage": storage_url.split("?")[0]},
    )
    return RunningServer(
        config, ctx, runner, url, credentials, stopping, crds, rbac, node_graph, audit_backend=audit_backend
    )


async def _auditor(config: ServerConfig) -> tuple[audit.Auditor | None, audit.LogBackend | None]:
    if not config.audit_log_path:
        return None, None
    if config.audit_policy_file is None:
        log.warning("no audit policy file provided, no events will be recorded")
        return None, None
    policy = await asyncio.to_thread(audit_policy.load_policy_file, config.audit_policy_file)
    backend = audit.LogBackend(
        config.audit_log_path,
        max_size_mb=config.audit_log_maxsize,
        max_backups=config.audit_log_maxbackup,
        max_age_days=config.audit_log_maxage,
    )
    await asyncio.to_thread(backend.start)
    return audit.Auditor(policy, backend), backend


def _write_component_kubeconfigs(credentials: pki.PKI, config: ServerConfig, url: str) -> None:
    """Client certificates for the in-process scheduler and controller manager under upstream's
    user names, so the bootstrap RBAC roles (not system:masters) govern what they may do."""
    for path, user in (
        (config.scheduler_kubeconfig_path, "system:kube-scheduler"),
        (config.controller_manager_kubeconfig_path, "system:kube-controller-manager"),
        (config.cloud_controller_manager_kubeconfig_path, "system:cloud-controller-manager"),
        (config.provisioner_kubeconfig_path, "system:pinnace-provisioner"),
    ):
        cert, key = pki.issue_client_cert(credentials, user, [])
        kubeconfig.write_kubeconfig(
            path,
            server=url,
            ca_pem=credentials.ca_pem(),
            client_cert_pem=cert,
            client_key_pem=key,
            user=user,
            context=f"{user}@pinnace",
        )


async def _bootstrap(ctx: ServerContext, kubernetes_ip: str, port: int) -> None:
    """The namespaces and the `kubernetes` Service every cluster has, created if missing."""
    ns_info = ctx.registry.get("", "v1", "namespaces")
    svc_info = ctx.registry.get("", "v1", "services")
    assert ns_info is not None and svc_info is not None
    opts = rest.WriteOptions(dry_run=False, field_manager="kube-apiserver", field_validation="Ignore")
    for name in SYSTEM_NAMESPACES:
        if await ctx.store.get_or_none(ns_info, "", name) is None:
            with contextlib.suppress(errors.AlreadyExists):
                await rest.create_object(
                    ctx,
                    ns_info,
                    RequestInfo(True, "", verb="create", resource="namespaces"),
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    opts,
                    [],
                )
    if await ctx.store.get_or_none(svc_info, "default", "kubernetes") is None:
        service: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": kubernetes_ip,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port or 6443}],
                "sessionAffinity": "None",
            },
        }
        with contextlib.suppress(errors.AlreadyExists, errors.Invalid):
            await rest.create_object(
                ctx,
                svc_info,
                RequestInfo(True, "", verb="create", resource="services", namespace="default"),
                service,
                opts,
                [],
            )


async def publish_cluster_info(ctx: ServerContext, url: str, ca_pem: bytes) -> None:
    """`kube-public/cluster-info`, as `kubeadm init` publishes it: a kubeconfig with the server URL
    and the cluster CA and no credentials. Joining nodes read it anonymously and trust the CA only
    if its public-key hash matches the one they were given (`pinnace token create
    --print-join-command`). Rewritten when the URL or the CA changes."""
    info = ctx.registry.get("", "v1", "configmaps")
    assert info is not None
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "",
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": url,
                },
            }
        ],
        "contexts": None,
        "current-context": "",
        "preferences": {},
        "users": None,
    }
    data = {"kubeconfig": yaml.safe_dump(document, sort_keys=False)}
    existing = await ctx.store.get_or_none(info, "kube-public", "cluster-info")
    if existing is None:
        opts = rest.WriteOptions(dry_run=False, field_manager="kube-apiserver", field_validation="Ignore")
        with contextlib.suppress(errors.AlreadyExists):
            await rest.create_object(
                ctx,
                info,
                RequestInfo(True, "", verb="create", resource="configmaps", namespace="kube-public"),
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info"}, "data": data},
                opts,
                [],
            )
        return
    if (existing.get("data") or {}).get("kubeconfig") == data["kubeconfig"]:
        return
    # Keep the bootstrap signer's jws-kubeconfig-<id> keys; replace the kubeconfig.
    updated = {**existing, "data": {**(existing.get("data") or {}), **data}}
    with contextlib.suppress(errors.Conflict):
        await ctx.store.update(info, updated, expected_revision=int(existing["metadata"]["resourceVersion"]))


async def bootstrap_priority_classes(ctx: ServerContext) -> None:
    """system-node-critical and system-cluster-critical, created if missing (upstream's
    scheduling post-start hook); an existing class of that name is left as it is."""
    info = ctx.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
    assert info is not None
    opts = rest.WriteOptions(dry_run=False, field_manager="kube-apiserver", field_validation="Ignore")
    for pc in admission.system_priority_class_objects():
        if await ctx.store.get_or_none(info, "", pc["metadata"]["name"]) is None:
            with contextlib.suppress(errors.AlreadyExists):
                await rest.create_object(
                    ctx,
                    info,
                    RequestInfo(True, "scheduling.k8s.io", verb="create", resource="priorityclasses"),
                    pc,
                    opts,
                    [],
                )
