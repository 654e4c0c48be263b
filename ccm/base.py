"""The runtime's Controller with one more rule: how to wait after a cloud error.

The runtime retries API failures with its own backoff; a cloud failure carries more meaning
(`providers.errors`): a throttled call waits at least as long as the cloud asked, a transient
fault or a busy resource backs off exponentially, and a mistake of the user (an invalid
annotation, an exceeded quota, an unsupported shape) waits the longest delay, since retrying
sooner cannot help and only burns API quota (no retry storm); a change of the object requeues
it at once anyway.
"""

from __future__ import annotations

import asyncio

from controlplane.controllers.runtime import Controller
from providers.errors import RETRYABLE, CloudError, Throttled

__all__ = ["CloudController"]


class CloudController(Controller):
    # Longest wait before looking again at a key whose failure a retry cannot fix.
    give_up_delay: float = 300.0

    async def sleep_or_stop(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait `seconds` on the injected clock, or less if `stop` is set meanwhile."""
        waiters = {asyncio.ensure_future(self.ctx.clock.sleep(seconds)), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def cloud_retry_delay(self, key: str, exc: CloudError) -> float:
        if isinstance(exc, RETRYABLE):
            delay = self.queue.when(key)
            if isinstance(exc, Throttled) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            return delay
        self.queue.when(key)  # count it, so a later retryable failure keeps backing off
        return self.give_up_delay

    def requeue_after_error(self, key: str, exc: Exception) -> None:
        if not isinstance(exc, CloudError):
            super().requeue_after_error(key, exc)
            return
        delay = self.cloud_retry_delay(key, exc)
        self.log.warning("syncing %s failed: %s (%s); retrying in %.1fs", key, exc, type(exc).__name__, delay)
        self.queue.add_after(key, delay)
