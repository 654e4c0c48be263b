"""Run chosen controllers in-process against a real server (normally the `bare_server` fixture,
which runs none itself), and wait for conditions without fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from controlplane.client import Client, load_kubeconfig
from controlplane.controllers.runtime import (
    Clock,
    Controller,
    ControllerConfig,
    ControllerManager,
    LeaderElectionConfig,
)
from controlplane.controllers.runtime.manager import Runnable
from tests.integration.conftest import ServerProcess


def client_for(server: ServerProcess, user_agent: str = "pinnace-tests") -> Client:
    return Client(load_kubeconfig(server.kubeconfig), user_agent=user_agent)


@contextlib.asynccontextmanager
async def running(
    server: ServerProcess,
    controllers: Sequence[type[Controller]],
    *,
    config: ControllerConfig | None = None,
    clock: Clock | None = None,
    runnables: Sequence[Runnable] = (),
) -> AsyncIterator[tuple[Client, ControllerManager]]:
    """The controllers running (no leader election) until the block exits."""
    client = client_for(server, "pinnace-controller-manager-test")
    manager = ControllerManager(
        client,
        controllers,
        config=config,
        leader_election=LeaderElectionConfig(enabled=False),
        clock=clock,
        runnables=runnables,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        while not manager.active and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield client, manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await client.close()


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy (returned) or raises no AssertionError."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s") from last
        await asyncio.sleep(interval)
