"""Batched, briefly cached DescribeInstances.

The node and node lifecycle controllers ask about one node at a time; with a thousand nodes that
would be a thousand DescribeInstances calls per sync. Like upstream's describeInstanceBatcher,
lookups that arrive within a short window are collected into one call. Unlike upstream, the
batch uses the `instance-id` filter rather than InstanceIds, so one unknown or long-gone id does
not fail the whole batch (upstream then falls back to one call per id). Answers, including "no
such instance", are cached for `ttl` seconds on an injectable clock.

No background task is started: the first caller of a window leads it (waits the window, makes
the call, hands out the answers); the others wait for their answer, and take the lead if the
leader is cancelled before it made the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from providers.errors import CloudError, Transient

from .session import AwsClients
from .shapes import chunks

__all__ = ["BY_ID", "BY_PRIVATE_DNS", "InstanceLookup"]

BY_ID = "instance-id"
BY_PRIVATE_DNS = "private-dns-name"

Key = tuple[str, str]  # (filter name, value)
Ec2Instance = Mapping[str, Any]


class InstanceLookup:
    """`get(BY_ID, "i-...")` -> the EC2 instance dict, or None when EC2 does not know it."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        ttl: float = 10.0,
        window: float = 0.02,
        max_batch: int = 200,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clients = clients
        self._ttl = ttl
        self._window = window
        # EC2 allows at most 200 values per filter.
        self._max_batch = max_batch
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[Key, tuple[float, Ec2Instance | None]] = {}
        self._pending: dict[Key, asyncio.Future[Ec2Instance | None]] = {}
        self._inflight: dict[Key, asyncio.Future[Ec2Instance | None]] = {}
        self._leader_gone: asyncio.Future[None] | None = None

    def invalidate(self, *instance_ids: str) -> None:
        """Forget cached answers (all of them when no id is given), e.g. after a change we made."""
        if not instance_ids:
            self._cache.clear()
            return
        ids = set(instance_ids)
        for key in [k for k, (_, inst) in self._cache.items() if k[1] in ids or _id(inst) in ids]:
            del self._cache[key]

    def remember(self, instance: Ec2Instance) -> None:
        """Cache an instance we got from another call (RunInstances, a listing)."""
        expires = self._clock() + self._ttl
        self._cache[(BY_ID, str(instance["InstanceId"]))] = (expires, instance)

    async def get(self, filter_name: str, value: str) -> Ec2Instance | None:
        key = (filter_name, value)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        inflight = self._inflight.get(key)
        if inflight is not None:
            # asyncio.wait never cancels what it waits for, so a cancelled caller cannot spoil
            # an answer others share.
            await asyncio.wait([inflight])
            return inflight.result()
        fut = self._pending.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._pending[key] = fut
        while not fut.done():
            if self._leader_gone is None:
                await self._lead()
            else:
                gone: asyncio.Future[Any] = self._leader_gone
                await asyncio.wait([fut, gone], return_when=asyncio.FIRST_COMPLETED)
        return fut.result()

    async def get_many(self, filter_name: str, values: Iterable[str]) -> dict[str, Ec2Instance | None]:
        unique = sorted(set(values))
        results = await asyncio.gather(*(self.get(filter_name, v) for v in unique))
        return dict(zip(unique, results, strict=True))

    async def _lead(self) -> None:
        gone = asyncio.get_running_loop().create_future()
        self._leader_gone = gone
        try:
            await self._sleep(self._window)
            batch, self._pending = self._pending, {}
            self._inflight.update(batch)
        finally:
            self._leader_gone = None
            gone.set_result(None)
        try:
            await self._run(batch)
        except BaseException as exc:
            for f in batch.values():
                if not f.done():
                    f.set_exception(
                        exc if isinstance(exc, CloudError) else Transient(f"instance lookup aborted: {exc!r}")
                    )
                    if not isinstance(exc, CloudError):
                        # Aborted by a cancellation (shutdown): the other callers may be gone
                        # too; mark it seen so asyncio does not log "Future exception was never
                        # retrieved". Callers still waiting get it from result() as before.
                        f.exception()
            if not isinstance(exc, CloudError):
                raise
        finally:
            for key in batch:
                self._inflight.pop(key, None)

    async def _run(self, batch: dict[Key, asyncio.Future[Ec2Instance | None]]) -> None:
        by_filter: dict[str, list[str]] = {}
        for name, value in batch:
            by_filter.setdefault(name, []).append(value)
        for name, values in by_filter.items():
            for chunk in chunks(values, self._max_batch):
                found = await self._describe(name, chunk)
                expires = self._clock() + self._ttl
                for value in chunk:
                    inst = found.get(value)
                    self._cache[(name, value)] = (expires, inst)
                    if inst is not None and name != BY_ID:
                        self._cache[(BY_ID, str(inst["InstanceId"]))] = (expires, inst)
                    fut = batch[(name, value)]
                    if not fut.done():
                        fut.set_result(inst)

    async def _describe(self, filter_name: str, values: list[str]) -> dict[str, Ec2Instance]:
        found: dict[str, Ec2Instance] = {}
        token: str | None = None
        attr = "InstanceId" if filter_name == BY_ID else "PrivateDnsName"
        while True:
            kwargs: dict[str, Any] = {"Filters": [{"Name": filter_name, "Values": values}]}
            if token:
                kwargs["NextToken"] = token
            page = await self._clients.caller.call(self._clients.ec2.describe_instances, **kwargs)
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    key = str(inst.get(attr, ""))
                    # A terminated instance may share a private DNS name with its live successor.
                    if key not in found or _state(found[key]) == "terminated":
                        found[key] = inst
            token = page.get("NextToken")
            if not token:
                return found


def _id(instance: Ec2Instance | None) -> str:
    return str(instance["InstanceId"]) if instance is not None else ""


def _state(instance: Ec2Instance) -> str:
    return str((instance.get("State") or {}).get("Name", ""))
