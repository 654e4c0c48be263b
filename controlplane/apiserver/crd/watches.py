"""Watches of custom resources end when their version stops being served.

Upstream's CRD handler tears a version's storage down when the CRD goes (or stops serving the
version): the watch cache stops and every open watch ends, so clients relist and find the
resource gone. The objects' DELETED events, written by the cleanup finalizer before the CRD was
removed, still reach the watcher first: `end_after(revision)` lets the stream drain what is
queued up to that revision, then ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from controlplane.storage.interface import Event, Watch

__all__ = ["DRAIN_GRACE", "EndableWatch", "WatchTracker"]

# How long an ending watch waits for an event that is not queued yet (a watcher still reading
# history, or a conversion webhook converting the last event) before it ends.
DRAIN_GRACE = 0.25


class EndableWatch:
    """A `Watch` that can be told to end once it has delivered everything up to a revision."""

    def __init__(self, inner: Watch, on_close: Callable[[EndableWatch], None] = lambda _: None) -> None:
        self._inner = inner
        self._events: AsyncIterator[Event] = inner.__aiter__()
        self._on_close = on_close
        self._end_at: int | None = None
        self._ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The inner iterator's step in flight: kept across a caller's cancellation (the watch
        # handler's bookmark timeout) so that no event is lost or reordered.
        self._pending: asyncio.Task[Event | None] | None = None
        self._finished = False
        self._yielded = 0  # the revision of the last event handed out

    @property
    def ending(self) -> bool:
        return self._end_at is not None

    def end_after(self, revision: int) -> None:
        if self._end_at is None:
            self._end_at = revision
            self._ending.set_result(None)

    async def _step(self) -> Event | None:
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            return None

    def __aiter__(self) -> EndableWatch:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._step())
        pending = self._pending
        if self._end_at is None:
            waiters: set[asyncio.Future[Any]] = {pending, self._ending}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not pending.done() and not self._finished:
            await asyncio.wait({pending}, timeout=DRAIN_GRACE)
        if self._pending is pending:
            self._pending = None
        if self._finished or not pending.done() or pending.cancelled():
            # Closed meanwhile, or nothing more came within the grace: the stream ends.
            pending.cancel()
            self._finished = True
            raise StopAsyncIteration
        event = pending.result()
        if event is None or (self._end_at is not None and event.revision > self._end_at):
            self._finished = True
            raise StopAsyncIteration
        self._yielded = event.revision
        return event

    def ready(self, limit: int = 256) -> list[Event]:
        if self._finished or self._pending is not None:
            return []  # the step in flight comes first
        events = self._inner.ready(limit)
        if self._end_at is not None:
            kept = [e for e in events if e.revision <= self._end_at]
            if len(kept) < len(events):
                self._finished = True
            events = kept
        if events:
            self._yielded = events[-1].revision
        return events

    def progress(self) -> int:
        if self._finished or self._pending is not None:
            # A step in flight may hold an event the inner watch already counts as yielded.
            return self._yielded
        return max(self._yielded, self._inner.progress())

    async def close(self) -> None:
        self._finished = True
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            # asyncio.wait, not await: the step's cancellation is not this caller's.
            await asyncio.wait({pending})
        self._on_close(self)
        await self._inner.close()


class WatchTracker:
    """The open custom resource watches, by CRD name and version."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], set[EndableWatch]] = {}

    def track(self, crd: str, version: str, inner: Watch) -> EndableWatch:
        key = (crd, version)
        watches = self._open.setdefault(key, set())

        def forget(watch: EndableWatch) -> None:
            watches.discard(watch)
            if not watches and self._open.get(key) is watches:
                del self._open[key]

        watch = EndableWatch(inner, forget)
        watches.add(watch)
        return watch

    def end(self, crd: str, served: set[str], revision: int) -> int:
        """End, after `revision`, every watch of `crd` on a version not in `served`; their count."""
        ended = 0
        for (name, version), watches in list(self._open.items()):
            if name != crd or version in served:
                continue
            for watch in list(watches):
                if not watch.ending:
                    watch.end_after(revision)
                    ended += 1
        return ended

    def count(self, crd: str) -> int:
        return sum(len(w) for (name, _), w in self._open.items() if name == crd)
