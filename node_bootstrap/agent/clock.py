"""Time as the node agent sees it: injectable, so tests advance it instead of sleeping.

The protocol has the same shape as the controllers' clock, so one fake clock can drive a whole
in-process cluster. Timestamps the agent writes come from `now()`; every wait goes through `sleep`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "Clock",
    "FakeClock",
    "RealClock",
    "format_micro_time",
    "format_nano_time",
    "format_time",
    "parse_time",
    "wait_event",
]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told; `advance` wakes every sleeper whose deadline passed."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._now += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `event` at most `timeout` seconds of `clock` time; True when the event is set."""
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if isinstance(clock, RealClock):
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            return event.is_set()
        return True
    # Any other clock: race its sleep against the event, so fake time drives the timeout.
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
    return event.is_set()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def format_time(seconds: float) -> str:
    """metav1.Time: second precision, UTC, `Z`."""
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(seconds: float) -> str:
    """metav1.MicroTime (Lease renewTime): six fractional digits."""
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_nano_time(seconds: float) -> str:
    """Go's RFC3339Nano, as the kubelet prefixes log lines: trailing zeros of the fraction dropped."""
    moment = _utc(seconds)
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp from the API as epoch seconds; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
