"""The provisioning operator: kopf watches, our reconcilers act.

kopf runs in a thread of its own with its own event loop, as kopf's embedding guide advises:
`kopf.operator()` claims every task created on its loop after it started (and cancels them when
it stops) and takes over SIGINT/SIGTERM when run in the main thread, neither of which a
`pinnace server` sharing its loop with the API server could allow. Its handlers only pass watch
events over to this loop, where work queues (one key never handled twice at once, per-key
backoff) feed the NodePool and Machine reconcilers, and an orphan sweep runs. Everything runs
only while this process holds the Lease kube-system/pinnace-provisioner.

kopf authenticates with our kubeconfig through an `@kopf.on.login` handler, keeps its own
bookkeeping in annotations under `provisioner.infra.pinnace.dev`, and posts no Events of its
own (the reconcilers post ours, with upstream-style reasons).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import yaml

from ccm.provisioning import api
from ccm.provisioning.autoscaler import run_autoscaler
from ccm.provisioning.context import Context, NodeIndex
from ccm.provisioning.crds import wait_served
from ccm.provisioning.machines import MachineReconciler
from ccm.provisioning.nodepools import NodePoolReconciler
from ccm.provisioning.orphans import sweep_orphans
from ccm.provisioning.settings import ProvisionerSettings
from controlplane.api import errors
from controlplane.client import Client, load_kubeconfig
from controlplane.controllers.runtime import EventBroadcaster, LeaderElector, QueueShutDown, WorkQueue
from providers.errors import CloudError

__all__ = ["USER_AGENT", "connection_info", "run_provisioner"]

log = logging.getLogger("pinnace.provisioner")

USER_AGENT = "pinnace-provisioner/v0.1.0"
KOPF_PREFIX = f"provisioner.{api.GROUP}"


def connection_info(kubeconfig: Path) -> kopf.ConnectionInfo:
    """The kubeconfig's current context as kopf's ConnectionInfo (embedded data or file paths)."""
    doc = yaml.safe_load(kubeconfig.read_text()) or {}
    ctx_name = doc.get("current-context", "")
    context = next(c["context"] for c in doc.get("contexts") or [] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc.get("clusters") or [] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc.get("users") or [] if u["name"] == context["user"])
    return kopf.ConnectionInfo(
        server=str(cluster["server"]),
        ca_path=cluster.get("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        certificate_path=user.get("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=user.get("client-key-data"),
        token=user.get("token"),
        scheme="Bearer" if user.get("token") else None,
        default_namespace="default",
    )


class Bridge:
    """Watch events from kopf's thread, delivered onto the reconcilers' loop.

    Every Machine event (a new object, a status write, a deletionTimestamp set, the object gone)
    wakes that Machine and its pool at once: a deleted Machine starts draining without waiting
    for its next resync, and the pool's counts follow its Machines' phases. Every NodePool event
    wakes the pool. A Node event wakes the Machine (and pool) it belongs to only when it matters
    (see `NodeIndex.node_event`)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, machines: WorkQueue, pools: WorkQueue, nodes: NodeIndex
    ) -> None:
        self.loop = loop
        self.machines = machines
        self.pools = pools
        self.nodes = nodes

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # our loop has closed: we are stopping anyway
            self.loop.call_soon_threadsafe(fn, *args)

    def pool_event(self, name: str) -> None:
        self._call(self.pools.add, name)

    def machine_event(self, kind: str, body: Mapping[str, Any]) -> None:
        self._call(self._on_machine, kind, copy.deepcopy(dict(body)))

    def node_event(self, kind: str, body: Mapping[str, Any]) -> None:
        self._call(self._on_node, kind, copy.deepcopy(dict(body)))

    def _on_machine(self, kind: str, body: dict[str, Any]) -> None:
        self.nodes.machine_event(kind, body)
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        if name and kind != "DELETED":  # (a DELETED one has nothing left to reconcile)
            self.machines.add(name)
        pool = (meta.get("labels") or {}).get(api.LABEL_NODE_POOL) or (body.get("spec") or {}).get("nodePool")
        if pool:
            self.pools.add(str(pool))

    def _on_node(self, kind: str, body: dict[str, Any]) -> None:
        machine = self.nodes.node_event(kind, body)
        if machine:
            self.machines.add(machine)
            pool = self.nodes.pools.get(machine)
            if pool:
                self.pools.add(pool)


def build_registry(bridge: Bridge, kubeconfig: Path) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(kubeconfig)

    @kopf.on.event(api.GROUP, api.VERSION, api.NODEPOOLS, registry=registry)
    async def nodepool_event(name: str, **_: Any) -> None:
        bridge.pool_event(name)

    @kopf.on.event(api.GROUP, api.VERSION, api.MACHINES, registry=registry)
    async def machine_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        bridge.machine_event(type or "ADDED", body)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        bridge.node_event(type or "ADDED", body)

    return registry


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    return settings


async def run_kopf(registry: kopf.OperatorRegistry, halt: asyncio.Event) -> None:
    """kopf in its own thread and loop until `halt` (or until this task is cancelled)."""
    loop = asyncio.get_running_loop()
    thread_stop = threading.Event()
    finished = asyncio.Event()

    def target() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    settings=kopf_settings(),
                    standalone=True,
                    clusterwide=True,
                    stop_flag=thread_stop,
                )
            )
        except Exception:
            log.exception("the provisioner's kopf operator failed")
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finished.set)

    thread = threading.Thread(target=target, name="pinnace-provisioner-kopf", daemon=True)
    thread.start()
    try:
        stopper = asyncio.ensure_future(halt.wait())
        ender = asyncio.ensure_future(finished.wait())
        try:
            await asyncio.wait({stopper, ender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            ender.cancel()
    finally:
        thread_stop.set()
        # Even when cancelled: do not leave before kopf has let go of its watches.
        await asyncio.to_thread(thread.join, 30.0)
    if not halt.is_set():
        # Without its watches the operator would sit blind: fail loudly instead.
        raise RuntimeError("the provisioner's kopf operator stopped unexpectedly (see the log)")


Reconcile = Callable[[str], Awaitable[float | None]]


async def _worker(queue: WorkQueue, reconcile: Reconcile, what: str) -> None:
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        try:
            delay = await reconcile(key)
        except errors.Conflict:
            queue.add_rate_limited(key)
        except (errors.StatusError, CloudError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("%s %s: %s", what, key, exc)
            queue.add_rate_limited(key)
        except Exception:
            log.exception("%s %s: reconcile failed", what, key)
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
            if delay is not None:
                queue.add_after(key, delay)
        finally:
            queue.done(key)


async def _kopf_once_served(client: Client, registry: kopf.OperatorRegistry, halt: asyncio.Event) -> None:
    if await wait_served(client, halt):
        await run_kopf(registry, halt)


async def _sweep_loop(ctx: Context, halt: asyncio.Event) -> None:
    while not halt.is_set():
        try:
            await sweep_orphans(ctx)
        except (errors.StatusError, CloudError, OSError, aiohttp.ClientError) as exc:
            log.warning("orphan sweep failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), ctx.settings.orphan_sweep_interval)


async def _lead(
    kubeconfig: Path, client: Client, evict_client: Client, settings: ProvisionerSettings, halt: asyncio.Event
) -> None:
    clock = settings.clock
    machines, pools = WorkQueue(clock=clock), WorkQueue(clock=clock)
    nodes = NodeIndex()
    broadcaster = EventBroadcaster(client, clock=clock)
    ctx = Context(
        client=client,
        evict_client=evict_client,
        settings=settings,
        recorder=broadcaster.recorder(settings.component),
        nodes=nodes,
        enqueue_machine=machines.add,
        enqueue_pool=lambda name: pools.add(name) if name else None,
    )
    machine_reconciler, pool_reconciler = MachineReconciler(ctx), NodePoolReconciler(ctx)
    bridge = Bridge(asyncio.get_running_loop(), machines, pools, nodes)
    registry = build_registry(bridge, kubeconfig)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(broadcaster.run(halt), name="provisioner-events")
        tg.create_task(machines.run_delays(), name="provisioner-machine-delays")
        tg.create_task(pools.run_delays(), name="provisioner-pool-delays")
        for i in range(max(1, settings.workers)):
            tg.create_task(
                _worker(machines, machine_reconciler.reconcile, "Machine"), name=f"machine-worker-{i}"
            )
        for i in range(2):
            tg.create_task(_worker(pools, pool_reconciler.reconcile, "NodePool"), name=f"nodepool-worker-{i}")
        tg.create_task(_sweep_loop(ctx, halt), name="provisioner-orphan-sweep")
        tg.create_task(
            run_autoscaler(client, halt, clock=clock, interval=settings.autoscale_interval),
            name="provisioner-autoscaler",
        )
        tg.create_task(_kopf_once_served(client, registry, halt), name="provisioner-kopf")
        try:
            await halt.wait()
        finally:
            machines.shutdown()
            pools.shutdown()
    with contextlib.suppress(errors.StatusError, OSError):
        await broadcaster.flush()


async def run_provisioner(
    kubeconfig: Path,
    stop: asyncio.Event,
    settings: ProvisionerSettings,
    *,
    leader_election: bool = True,
) -> None:
    """Reconcile NodePools and Machines until `stop`; with `leader_election`, only while holding
    the Lease `kube-system/pinnace-provisioner` (several copies may run; one acts).

    The CRDs must be installed (`ensure_crds`, with a credential allowed to). The kubeconfig's
    user needs the `system:pinnace-provisioner` ClusterRole (see the bootstrap RBAC policy)."""
    if settings.provider.instances is None:
        raise ValueError(f"cloud provider {settings.provider.name!r} cannot launch instances")
    credentials = load_kubeconfig(kubeconfig)
    async with (
        Client(credentials, user_agent=USER_AGENT) as client,
        Client(credentials, user_agent=USER_AGENT, max_retries=0) as evict_client,
    ):

        async def lead(lost: asyncio.Event) -> None:
            halt = asyncio.Event()

            async def watch(event: asyncio.Event) -> None:
                await event.wait()
                halt.set()

            async with asyncio.TaskGroup() as tg:
                watchers = [tg.create_task(watch(stop)), tg.create_task(watch(lost))]
                try:
                    await _lead(kubeconfig, client, evict_client, settings, halt)
                finally:
                    for task in watchers:
                        task.cancel()

        if not leader_election:
            await lead(asyncio.Event())
            return
        elector = LeaderElector(
            client,
            settings.lease_name,
            settings.identity,
            namespace=settings.lease_namespace,
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
            clock=settings.clock,
        )
        await elector.run(stop, lead)
