"""How every SDK call is made: off the event loop, under a client-side rate limit, retried once.

boto3 and libcloud block, so each call runs in a worker thread (`asyncio.to_thread`). Before it
starts, it takes a token from a bucket (`qps`, `burst`) shared by all calls of one provider, the
way client-go and cloud-provider-aws limit their request rate. A call that fails with a
retryable error (`Throttled`, `Transient`, `Conflict`, after the provider's `translate`) is
retried by tenacity with exponential backoff and full jitter, honouring a throttle's
`retry_after`. This is the only retry layer: providers configure their SDK not to retry (boto3:
`retries={"total_max_attempts": 1}`), so attempts are not multiplied by stacking.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from providers.errors import RETRYABLE, CloudError, Throttled

__all__ = ["SdkCaller", "TokenBucket"]

P = ParamSpec("P")
T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `acquire` waits for one."""

    def __init__(
        self, rate: float, burst: int, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    async def acquire(self) -> None:
        # One waiter at a time keeps the order fair and the arithmetic simple.
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1.0


class SdkCaller:
    """Runs one provider's blocking SDK calls. `translate` maps an SDK exception to our error tree
    (it must return a `CloudError` for everything it recognises and re-raise nothing)."""

    def __init__(
        self,
        translate: Callable[[Exception], CloudError],
        *,
        qps: float = 10.0,
        burst: int = 20,
        max_attempts: int = 8,
        max_elapsed: float = 60.0,
        base_delay: float = 0.2,
        max_delay: float = 20.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._translate = translate
        self._bucket = TokenBucket(qps, burst, clock=clock, sleep=sleep)
        self._max_attempts = max_attempts
        self._max_elapsed = max_elapsed
        self._base = base_delay
        self._cap = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.attempts = 0  # every SDK call made, retries included (for benchmarks and tests)

    def _wait(self, state: RetryCallState) -> float:
        # Full jitter (AWS architecture blog's "exponential backoff and jitter"): uniform in
        # [0, min(cap, base * 2^n)], but never sooner than a throttle's own Retry-After.
        ceiling = min(self._cap, self._base * (2 ** (state.attempt_number - 1)))
        delay = self._rng.uniform(0.0, ceiling)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, Throttled) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return delay

    async def _once(self, fn: Callable[[], T]) -> T:
        await self._bucket.acquire()
        self.attempts += 1
        try:
            return await asyncio.to_thread(fn)
        except CloudError:
            raise
        except Exception as exc:  # the one place SDK exceptions are turned into ours
            raise self._translate(exc) from exc

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound: Callable[[], T] = functools.partial(fn, *args, **kwargs)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_elapsed),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        result: Any = None
        async for attempt in retrying:
            with attempt:
                result = await self._once(bound)
        return result  # type: ignore[no-any-return]
