"""In-process watch fan-out: one hub per store, one bounded queue per watcher.

A watch from revision R must see every event after R exactly once, in revision order, even while
writes keep landing. The hand-off from history to live events is race-free because the watcher
subscribes *before* it reads history: live events published meanwhile are buffered, and once the
history read comes back short (nothing more in its snapshot), buffered events at or below the last
replayed revision are dropped and the rest delivered. Every commit is published after it is
durable, so anything committed before the subscription is in the history snapshot and anything
after it is in the buffer.

Publishing never blocks: a watcher whose backlog exceeds its bound is dropped and its iteration
raises `WatchOverflow` (a `Compacted`, so the API server answers it like any expired watch: the
client relists). Everything here runs on the event loop thread.

A watcher with a `Trigger` gets only the live events whose index values include its value; the
hub computes each event's values once per index, so publishing costs one dictionary lookup per
event and index rather than a wake-up of every watcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator

from controlplane.storage.errors import Compacted, StorageError
from controlplane.storage.interface import Event, Trigger, TriggerIndex
from controlplane.storage.metrics import WATCHERS

__all__ = ["DEFAULT_QUEUE_LIMIT", "Replay", "WatchHub", "WatchOverflow", "Watcher"]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_LIMIT = 10_000

# Reads the next chunk of history after a revision: (events in revision order, history exhausted).
Replay = Callable[[int], Awaitable[tuple[list[Event], bool]]]


class WatchOverflow(Compacted):
    """The watcher fell more than `limit` events behind and was dropped; the client must relist."""

    def __init__(self, last_delivered: int, revision: int, limit: int) -> None:
        StorageError.__init__(
            self,
            f"watch fell more than {limit} events behind at revision {revision} "
            f"(last delivered {last_delivered}); relist",
        )
        self.requested = last_delivered
        self.compacted = revision
        self.limit = limit


class Watcher:
    """One open watch; implements the `Watch` protocol."""

    def __init__(
        self,
        hub: WatchHub,
        prefix: str,
        revision: int,
        replay: Replay,
        limit: int,
        trigger: Trigger | None = None,
    ) -> None:
        self.prefix = prefix
        self.trigger = trigger
        self._hub = hub
        self._replay = replay
        self._limit = limit
        self._replaying = True
        self._replayed_to = revision  # highest revision read from history
        self._delivered = revision
        self._history: deque[Event] = deque()  # the current history chunk
        self._live: deque[Event] = deque()  # published events, held back during replay
        self._wake = asyncio.Event()
        self._closed = False
        self._error: StorageError | None = None

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            if self._history:
                event = self._history.popleft()
                self._delivered = event.revision
                return event
            if self._replaying:
                await self._read_history()
                continue
            if self._live:
                event = self._live.popleft()
                self._delivered = event.revision
                return event
            self._wake.clear()
            await self._wake.wait()

    def ready(self, limit: int = 256) -> list[Event]:
        """Events that are available now, without waiting (at most `limit`); lets a consumer
        batch its writes instead of paying a wake-up per event."""
        out: list[Event] = []
        source = self._history if self._history else (self._live if not self._replaying else None)
        while source and len(out) < limit and not self._closed and self._error is None:
            out.append(source.popleft())
        if out:
            self._delivered = out[-1].revision
        return out

    def progress(self) -> int:
        if self._replaying or self._history or self._live or self._error is not None:
            return self._delivered
        # Live with nothing queued: every published event either came through or was not for
        # this watch (another prefix, another trigger value).
        return max(self._delivered, self._hub.published_through)

    async def _read_history(self) -> None:
        try:
            events, exhausted = await self._replay(self._replayed_to)
        except StorageError as exc:
            if not self._closed:
                self._fail(exc)
            return
        if self._closed:
            return
        self._history.extend(events)
        if events:
            self._replayed_to = events[-1].revision
        if exhausted:
            self._replaying = False
            while self._live and self._live[0].revision <= self._replayed_to:
                self._live.popleft()

    def push(self, events: Iterable[Event]) -> None:
        """Queue live events (already filtered by prefix, in revision order)."""
        if self._closed or self._error is not None:
            return
        self._live.extend(events)
        if len(self._live) > self._limit:
            last = self._live[-1].revision
            # As upstream's "Forcing watcher close due to unresponsiveness": a slow client, or a
            # server too busy to feed its watchers, which then relist (and load it more).
            log.warning(
                "watch of %s fell %d events behind at revision %d (last delivered %d); closing it",
                self.prefix or "/",
                self._limit,
                last,
                self._delivered,
            )
            self._fail(WatchOverflow(self._delivered, last, self._limit))
            return
        self._wake.set()

    def _fail(self, error: StorageError) -> None:
        self._error = error
        self._history.clear()
        self._live.clear()
        self._hub.remove(self)
        self._wake.set()

    def end(self) -> None:
        """End iteration (pending events are discarded) and leave the hub."""
        self._closed = True
        self._history.clear()
        self._live.clear()
        self._hub.remove(self)
        self._wake.set()

    async def close(self) -> None:
        self.end()


class _Group:
    """The watchers of one prefix: those that take every event, and those narrowed by a trigger,
    by index function and value."""

    __slots__ = ("indexed", "plain")

    def __init__(self) -> None:
        self.plain: set[Watcher] = set()
        self.indexed: dict[TriggerIndex, dict[str, set[Watcher]]] = {}

    def add(self, watcher: Watcher) -> None:
        trigger = watcher.trigger
        if trigger is None:
            self.plain.add(watcher)
        else:
            self.indexed.setdefault(trigger.index, {}).setdefault(trigger.value, set()).add(watcher)

    def discard(self, watcher: Watcher) -> bool:
        """Remove `watcher`; False when it was not here."""
        trigger = watcher.trigger
        if trigger is None:
            found = watcher in self.plain
            self.plain.discard(watcher)
            return found
        by_value = self.indexed.get(trigger.index, {})
        watchers = by_value.get(trigger.value, set())
        if watcher not in watchers:
            return False
        watchers.discard(watcher)
        if not watchers:
            del by_value[trigger.value]
            if not by_value:
                del self.indexed[trigger.index]
        return True

    def __bool__(self) -> bool:
        return bool(self.plain or self.indexed)

    def __iter__(self) -> Iterator[Watcher]:
        yield from self.plain
        for by_value in self.indexed.values():
            for watchers in by_value.values():
                yield from watchers

    def __len__(self) -> int:
        return len(self.plain) + sum(len(w) for v in self.indexed.values() for w in v.values())

    def publish(self, events: list[Event]) -> None:
        for watcher in list(self.plain):
            watcher.push(events)
        for index, by_value in list(self.indexed.items()):
            routed: dict[str, list[Event]] = {}
            for event in events:
                try:
                    values = set(index(event))
                except Exception:
                    # An index that cannot read the event must not cost anyone an event: every
                    # watch of it gets this one and applies its own selector.
                    log.exception("watch trigger index failed on %s at %d", event.kv.key, event.revision)
                    values = set(by_value)
                for value in values:
                    if value in by_value:
                        routed.setdefault(value, []).append(event)
            for value, matched in routed.items():
                for watcher in list(by_value.get(value, ())):
                    watcher.push(matched)


class WatchHub:
    """Routes published events to watchers, grouped by prefix so each prefix is filtered once."""

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self._limit = limit
        self._by_prefix: defaultdict[str, _Group] = defaultdict(_Group)
        # The revision of the last event published: a live watcher with nothing queued has
        # seen everything up to it that was meant for it (`Watcher.progress`).
        self.published_through = 0

    def subscribe(
        self, prefix: str, revision: int, replay: Replay, trigger: Trigger | None = None
    ) -> Watcher:
        watcher = Watcher(self, prefix, revision, replay, self._limit, trigger)
        self._by_prefix[prefix].add(watcher)
        WATCHERS.inc()
        return watcher

    def remove(self, watcher: Watcher) -> None:
        group = self._by_prefix.get(watcher.prefix)
        if group is None or not group.discard(watcher):
            return
        if not group:
            del self._by_prefix[watcher.prefix]
        WATCHERS.dec()

    def publish(self, events: list[Event]) -> None:
        """Deliver committed events (in revision order) to every matching watcher."""
        if not events:
            return
        for prefix, group in list(self._by_prefix.items()):
            matching = events if not prefix else [e for e in events if e.kv.key.startswith(prefix)]
            if matching:
                group.publish(matching)
        self.published_through = events[-1].revision

    def close_all(self) -> None:
        for group in list(self._by_prefix.values()):
            for watcher in list(group):
                watcher.end()

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_prefix.values())
