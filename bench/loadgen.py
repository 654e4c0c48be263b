"""Closed-loop load from one asyncio process: N workers, each sending its next request as soon as
the previous one finished, for a fixed time after a warm-up. Latency is send to last byte read."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from common import percentile

# One request: given a sequence number, return True on the expected status.
Request = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


@dataclass
class LoadStats:
    ok: int = 0
    failed: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu_percent: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def session(ssl_ctx: ssl.SSLContext, limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=limit, limit_per_host=limit, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


async def closed_loop(
    sess: aiohttp.ClientSession,
    request: Request,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    counter: itertools.count[int] | None = None,
) -> LoadStats:
    """Run `concurrency` workers for warmup + duration seconds; only the last `duration` counts."""
    seq = counter if counter is not None else itertools.count()
    stats = LoadStats()
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + duration
    cpu_at_measure: list[float] = []

    async def worker() -> None:
        while True:
            t0 = loop.time()
            if t0 >= stop_at:
                return
            try:
                good = await request(sess, next(seq))
                error = "" if good else "unexpected status"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                good, error = False, type(exc).__name__
            t1 = loop.time()
            if measure_from <= t1 <= stop_at:
                if good:
                    stats.ok += 1
                    stats.latencies.append(t1 - t0)
                else:
                    stats.failed += 1
                    stats.errors[error] = stats.errors.get(error, 0) + 1

    async def cpu_mark() -> None:
        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        cpu_at_measure.append(time.process_time())

    marker = asyncio.ensure_future(cpu_mark())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await marker
    stats.elapsed = duration
    stats.client_cpu_percent = (
        100.0 * (time.process_time() - cpu_at_measure[0]) / max(loop.time() - measure_from, 1e-9)
    )
    return stats
