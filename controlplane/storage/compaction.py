"""Automatic compaction: which revision is safe to drop, and the task that drops it on a schedule.

History is kept for a window of both *count* and *time*: the newest `retain_revisions` revisions
and everything written in the last `retain_seconds` (kine never compacts its newest 1000
revisions; clients such as kopf assume about five minutes of history to resume a watch). Only
revisions older than both bounds are compacted.

The time bound needs to know which revision was current `retain_seconds` ago, so each tick records
a (time, revision) sample. The answer is the newest sample at or before the cutoff, a lower bound
of the truth, so the window errs on the side of keeping history. Samples live in memory: after a
restart nothing is compacted until a full window has been observed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.storage.errors import StorageError

__all__ = ["Clock", "Compactable", "Compactor", "RetentionPolicy"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass
class RetentionPolicy:
    retain_revisions: int = 1000
    retain_seconds: float = 300.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def observe(self, now: float, revision: int) -> None:
        self._samples.append((now, revision))

    def target(self, now: float, current: int) -> int:
        """The highest revision that may be compacted now; 0 when none may."""
        cutoff = now - self.retain_seconds
        by_time = 0
        # Keep the newest sample at or before the cutoff; older ones can never be the answer again.
        while self._samples and self._samples[0][0] <= cutoff:
            if len(self._samples) > 1 and self._samples[1][0] <= cutoff:
                self._samples.popleft()
                continue
            by_time = self._samples[0][1]
            break
        return max(0, min(current - self.retain_revisions, by_time))


class Compactable(Protocol):
    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int: ...

    async def compact(self, revision: int) -> None: ...


class Compactor:
    """Runs `tick()` every `interval` seconds until stopped; `tick()` alone is what tests drive."""

    def __init__(self, store: Compactable, policy: RetentionPolicy, clock: Clock, interval: float) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """Sample the revision, compact what the policy allows; returns the new compacted revision
        (0 when nothing was compacted)."""
        now = self._clock()
        current = await self._store.current_revision()
        self._policy.observe(now, current)
        target = self._policy.target(now, current)
        if target <= await self._store.compacted_revision():
            return 0
        await self._store.compact(target)
        return target

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="pinnace-storage-compactor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except StorageError:
                log.exception("storage compaction failed; retrying next interval")
            await asyncio.sleep(self._interval)
