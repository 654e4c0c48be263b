"""The controller manager: builds the controllers, and runs them only while holding the lease.

Each term of leadership starts from nothing (fresh informers, caches and queues), so a manager
that lost the lease and wins it back never acts on state cached during someone else's term.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.client import Client
from controlplane.controllers.runtime.clock import Clock, RealClock
from controlplane.controllers.runtime.controller import Controller, ControllerConfig, ControllerContext
from controlplane.controllers.runtime.events import EventBroadcaster
from controlplane.controllers.runtime.informer import InformerFactory
from controlplane.controllers.runtime.leaderelection import LeaderElector

__all__ = ["ControllerManager", "LeaderElectionConfig", "Runnable"]

log = logging.getLogger("pinnace.controllermanager")

# Anything else to run while leading (the garbage collector): given the client and a stop event.
Runnable = Callable[[Client, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class LeaderElectionConfig:
    enabled: bool = True
    lease_name: str = "kube-controller-manager"
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4()}")


class ControllerManager:
    def __init__(
        self,
        client: Client,
        controllers: Sequence[type[Controller]],
        *,
        config: ControllerConfig | None = None,
        leader_election: LeaderElectionConfig | None = None,
        clock: Clock | None = None,
        runnables: Sequence[Runnable] = (),
        component: str = "kube-controller-manager",
    ) -> None:
        self._client = client
        self._controllers = list(controllers)
        self._config = config or ControllerConfig()
        self._le = leader_election or LeaderElectionConfig()
        self._clock = clock or RealClock()
        self._runnables = list(runnables)
        self._component = component
        self.active: list[Controller] = []
        self.elector: LeaderElector | None = None

    @property
    def has_work(self) -> bool:
        return bool(self._controllers or self._runnables)

    async def run(self, stop: asyncio.Event) -> None:
        if not self._le.enabled:
            await self._lead(stop)
            return
        self.elector = LeaderElector(
            self._client,
            self._le.lease_name,
            self._le.identity,
            namespace=self._le.namespace,
            lease_duration=self._le.lease_duration,
            renew_deadline=self._le.renew_deadline,
            retry_period=self._le.retry_period,
            clock=self._clock,
        )
        await self.elector.run(stop, self._lead)

    async def _lead(self, lost: asyncio.Event) -> None:
        factory = InformerFactory(self._client, clock=self._clock)
        broadcaster = EventBroadcaster(self._client, clock=self._clock, host=self._le.identity.split("_")[0])
        controllers: list[Controller] = []
        for cls in self._controllers:
            ctx = ControllerContext(
                client=self._client,
                informers=factory,
                recorder=broadcaster.recorder(cls.event_source or cls.name),
                clock=self._clock,
                config=self._config,
            )
            controllers.append(cls(ctx))
        self.active = controllers
        log.info("starting %d controllers: %s", len(controllers), ", ".join(c.name for c in controllers))
        try:
            async with asyncio.TaskGroup() as tg:
                factory.start(tg, lost)
                tg.create_task(broadcaster.run(lost), name="events")
                for controller in controllers:
                    tg.create_task(controller.run(lost), name=f"controller-{controller.name}")
                for runnable in self._runnables:
                    tg.create_task(runnable(self._client, lost))
        finally:
            self.active = []
            log.info("controllers stopped")
