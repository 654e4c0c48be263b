"""The controller base class and the loop that runs its workers.

A controller is one class in one module: `setup` registers the informers it reads and maps their
events to keys; `reconcile(key)` makes the world match the desired state for that key, reading
the informers' caches and writing through the client. It is level-triggered (it looks at the
whole current state, never at the event that woke it) and idempotent. Conflicts are expected and
retried quietly with backoff; any other failure is logged and retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime.clock import Clock, RealClock
from controlplane.controllers.runtime.events import EventRecorder
from controlplane.controllers.runtime.informer import InformerFactory
from controlplane.controllers.runtime.keys import key_of
from controlplane.controllers.runtime.workqueue import QueueShutDown, WorkQueue

__all__ = ["Controller", "ControllerConfig", "ControllerContext"]


@dataclass
class ControllerConfig:
    """Settings of kube-controller-manager that the controllers read (upstream defaults)."""

    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1  # nodes per second, as upstream's --node-eviction-rate
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    terminated_pod_gc_threshold: int = 12500
    pod_gc_period: float = 20.0
    orphaned_pod_grace: float = 40.0
    namespace_sync_period: float = 300.0
    endpoint_updates_batch_period: float = 0.0
    max_endpoints_per_slice: int = 100
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ControllerContext:
    client: Client
    informers: InformerFactory
    recorder: EventRecorder
    clock: Clock = field(default_factory=RealClock)
    config: ControllerConfig = field(default_factory=ControllerConfig)


class Controller:
    name: ClassVar[str] = "controller"
    # The Event source upstream reports (`kubectl describe` shows it), when it differs from name.
    event_source: ClassVar[str] = ""
    workers: ClassVar[int] = 2

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.queue = WorkQueue(clock=ctx.clock)
        self.log = logging.getLogger(f"pinnace.controller.{self.name}")
        self.setup()

    # -- what subclasses write ---------------------------------------------------------------

    def setup(self) -> None:
        """Register informers and handlers that enqueue keys."""

    async def reconcile(self, key: str) -> float | None:
        """Sync one key; return seconds after which to look at it again, or None."""
        raise NotImplementedError

    async def run_extra(self, stop: asyncio.Event) -> None:
        """Periodic work beside the workers (monitors, resyncs); runs in the same TaskGroup."""

    # -- helpers -----------------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: str, seconds: float) -> None:
        self.queue.add_after(key, seconds)

    def enqueue_obj(self, obj: dict[str, Any] | None) -> None:
        if obj is not None:
            self.queue.add(key_of(obj))

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the informers' first lists, then run the workers until `stop`."""
        synced = asyncio.ensure_future(self.ctx.informers.wait_synced())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            stopped.cancel()
        if stop.is_set():
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.queue.run_delays(), name=f"{self.name}-delays")
                for i in range(self.workers):
                    tg.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                tg.create_task(self.run_extra(stop), name=f"{self.name}-extra")
                await stop.wait()
                self.queue.shutdown()
                raise _Stopped
        except* _Stopped:
            pass

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One reconcile with the runtime's error policy (tests call this directly)."""
        try:
            after = await self.reconcile(key)
        except Exception as exc:
            self.requeue_after_error(key, exc)
            return
        self.queue.forget(key)
        if after is not None:
            self.queue.add_after(key, after)

    def requeue_after_error(self, key: str, exc: Exception) -> None:
        """Requeue a key whose reconcile failed: with per-key backoff, quietly for conflicts.
        Controllers whose failures say more (the CCM's cloud errors) override this."""
        if isinstance(exc, errors.Conflict):
            pass
        elif isinstance(exc, errors.StatusError | OSError | TimeoutError):
            self.log.warning("syncing %s failed: %s", key, exc)
        else:
            self.log.error("syncing %s crashed", key, exc_info=exc)
        self.queue.add_rate_limited(key)


class _Stopped(Exception):
    pass
