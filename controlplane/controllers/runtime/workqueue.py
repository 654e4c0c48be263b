"""The controllers' work queue, with client-go's guarantees.

- A key is queued at most once however often it is added (deduplication).
- A key is never handed to two workers at once: adding a key that is being processed marks it
  dirty, and `done` puts it back, so the latest state is always reconciled once more.
- `add_rate_limited` delays by the larger of a per-key exponential backoff (5 ms doubling to
  1000 s) and a global token bucket (10/s, burst 100): client-go's DefaultControllerRateLimiter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

from controlplane.controllers.runtime.clock import Clock, RealClock

__all__ = ["QueueShutDown", "WorkQueue"]


class QueueShutDown(Exception):
    """`get` on a queue that has been shut down."""


class WorkQueue:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        self._clock = clock or RealClock()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._base = base_delay
        self._max = max_delay
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last_refill = self._clock.monotonic()
        self._waiting: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._waiting, (self._clock.monotonic() + delay, next(self._seq), key))
        self._timer_wake.set()

    def add_rate_limited(self, key: str) -> None:
        self.add_after(key, self.when(key))

    def when(self, key: str) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        per_key = min(self._base * float(2**failures), self._max)
        return max(per_key, self._bucket_delay())

    def _bucket_delay(self) -> float:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last_refill) * self._qps)
        self._last_refill = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        while not self._queue:
            if self._shutdown:
                raise QueueShutDown
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        self._shutdown = True
        self._ready.set()
        self._timer_wake.set()

    @property
    def is_shut_down(self) -> bool:
        return self._shutdown

    async def run_delays(self) -> None:
        """Move delayed keys into the queue when they are due; runs until shutdown. The owner
        (the controller runner) starts it in its TaskGroup."""
        while not self._shutdown:
            self._timer_wake.clear()
            if not self._waiting:
                await self._timer_wake.wait()
                continue
            due, _, key = self._waiting[0]
            now = self._clock.monotonic()
            if due <= now:
                heapq.heappop(self._waiting)
                self.add(key)
                continue
            sleeper = asyncio.ensure_future(self._clock.sleep(due - now))
            waker = asyncio.ensure_future(self._timer_wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (sleeper, waker):
                    fut.cancel()
