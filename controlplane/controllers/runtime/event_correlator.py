"""client-go's EventCorrelator (tools/record/events_cache.go): what the event recorder does with an
Event before it reaches the API server.

Three stages, in upstream's order:
1. the aggregator: once 10 events that differ only in their message are seen about one object within
   10 minutes, further ones become a single "(combined from similar events): ..." Event;
2. the logger: an Event seen before (same source, object, type, reason and message) becomes a PATCH
   of the first one's `count`, `lastTimestamp` and `message` instead of a new object;
3. the spam filter: a token bucket per source and object (burst 25, one token back every 5 minutes)
   drops what exceeds it. It runs last, so a dropped repeat still counts: the next PATCH that gets
   through carries every occurrence.

Pure: no IO, and time comes from an injected Clock, so tests move time instead of sleeping.
Events are core/v1 Events as JSON dicts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from controlplane.controllers.runtime.clock import Clock, rfc3339

__all__ = [
    "AGGREGATE_MESSAGE_PREFIX",
    "DEFAULT_AGGREGATE_INTERVAL_SECONDS",
    "DEFAULT_AGGREGATE_MAX_EVENTS",
    "DEFAULT_SPAM_BURST",
    "DEFAULT_SPAM_QPS",
    "MAX_LRU_CACHE_ENTRIES",
    "CorrelateResult",
    "EventAggregator",
    "EventCorrelator",
    "EventLogger",
    "EventNamer",
    "LRUCache",
    "SpamFilter",
    "TokenBucket",
    "aggregate_key",
    "event_key",
    "spam_key",
]

Event = dict[str, Any]
Key = tuple[str, ...]

MAX_LRU_CACHE_ENTRIES = 4096
DEFAULT_AGGREGATE_MAX_EVENTS = 10
DEFAULT_AGGREGATE_INTERVAL_SECONDS = 600
DEFAULT_SPAM_BURST = 25
DEFAULT_SPAM_QPS = 1.0 / 300.0
AGGREGATE_MESSAGE_PREFIX = "(combined from similar events): "

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """groupcache's lru.Cache: `get` and `add` make an entry the newest; past `size`, the oldest goes."""

    def __init__(self, size: int = MAX_LRU_CACHE_ENTRIES) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def add(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class EventNamer:
    """Event names as upstream's `fmt.Sprintf("%v.%x", ref.Name, t.UnixNano())`.

    Python's datetime stops at microseconds, so two events about one object within a microsecond
    would share a name (and the second would fail with AlreadyExists); the nanoseconds are bumped
    to stay strictly increasing within the process instead.
    """

    def __init__(self) -> None:
        self._last = 0

    def nanos(self, moment: datetime) -> int:
        ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
        if ns <= self._last:
            ns = self._last + 1
        self._last = ns
        return ns

    def name(self, involved_name: str, moment: datetime) -> str:
        return f"{involved_name}.{self.nanos(moment):x}"


# -- keys ----------------------------------------------------------------------------------------


def _source(event: Event) -> tuple[str, str]:
    source = event.get("source") or {}
    return str(source.get("component") or ""), str(source.get("host") or "")


def _involved(event: Event, *fields: str) -> tuple[str, ...]:
    ref = event.get("involvedObject") or {}
    return tuple(str(ref.get(f) or "") for f in fields)


def event_key(event: Event) -> Key:
    """getEventKey: source, involved object (with fieldPath), type, reason and message."""
    return (
        "event",
        *_source(event),
        *_involved(event, "kind", "namespace", "name", "fieldPath", "uid", "apiVersion"),
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        str(event.get("message") or ""),
    )


def spam_key(event: Event) -> Key:
    """getSpamKey: source and involved object only, so every reason shares one bucket."""
    return (*_source(event), *_involved(event, "kind", "namespace", "name", "uid", "apiVersion"))


def aggregate_key(event: Event) -> tuple[Key, str]:
    """EventAggregatorByReasonFunc: (the group, the message that tells group members apart)."""
    group = (
        "aggregate",
        *_source(event),
        *_involved(event, "kind", "namespace", "name", "uid", "apiVersion"),
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        str(event.get("reportingComponent") or ""),
        str(event.get("reportingInstance") or ""),
    )
    return group, str(event.get("message") or "")


# -- spam filter ---------------------------------------------------------------------------------


class TokenBucket:
    """flowcontrol's token bucket (golang.org/x/time/rate): starts full, refills `qps` per second
    up to `burst`. Times are the clock's monotonic seconds."""

    def __init__(self, qps: float, burst: int, now: float) -> None:
        self.qps = qps
        self.burst = burst
        self.tokens = float(burst)
        self.last = now

    def try_accept(self, now: float) -> bool:
        elapsed = max(0.0, now - self.last)
        tokens = min(float(self.burst), self.tokens + elapsed * self.qps)
        if tokens < 1.0:
            return False  # like rate.Limiter, a refused request leaves the state alone
        self.tokens = tokens - 1.0
        self.last = now
        return True


class SpamFilter:
    """EventSourceObjectSpamFilter: `filter` says True when the event must be dropped."""

    def __init__(
        self,
        clock: Clock,
        *,
        burst: int = DEFAULT_SPAM_BURST,
        qps: float = DEFAULT_SPAM_QPS,
        cache_size: int = MAX_LRU_CACHE_ENTRIES,
    ) -> None:
        self._clock = clock
        self.burst = burst
        self.qps = qps
        self._cache: LRUCache[Key, TokenBucket] = LRUCache(cache_size)

    def filter(self, event: Event) -> bool:
        key = spam_key(event)
        now = self._clock.monotonic()
        bucket = self._cache.get(key)
        if bucket is None:
            bucket = TokenBucket(self.qps, self.burst, now)
        accepted = bucket.try_accept(now)
        self._cache.add(key, bucket)
        return not accepted


# -- aggregator ----------------------------------------------------------------------------------


@dataclass
class _AggregateRecord:
    # dict, not set: insertion order makes "drop one to stay under max" deterministic (upstream
    # drops an arbitrary one, so any choice matches it)
    local_keys: dict[str, None] = field(default_factory=dict)
    last: float = float("-inf")


class EventAggregator:
    def __init__(
        self,
        clock: Clock,
        namer: EventNamer,
        *,
        max_events: int = DEFAULT_AGGREGATE_MAX_EVENTS,
        max_interval_seconds: float = DEFAULT_AGGREGATE_INTERVAL_SECONDS,
        cache_size: int = MAX_LRU_CACHE_ENTRIES,
    ) -> None:
        self._clock = clock
        self._namer = namer
        self.max_events = max_events
        self.max_interval = max_interval_seconds
        self._cache: LRUCache[Key, _AggregateRecord] = LRUCache(cache_size)

    def aggregate(self, event: Event) -> tuple[Event, Key]:
        """The event to record (maybe a new aggregate one) and the key the logger files it under:
        the event's own key, or the group's key so later aggregates PATCH the same object."""
        mono = self._clock.monotonic()
        group, local = aggregate_key(event)
        record = self._cache.get(group)
        if record is None or mono - record.last > self.max_interval:
            record = _AggregateRecord()
        record.local_keys[local] = None
        record.last = mono
        self._cache.add(group, record)
        if len(record.local_keys) < self.max_events:
            return event, event_key(event)
        del record.local_keys[next(iter(record.local_keys))]

        now = self._clock.now()
        stamp = rfc3339(now)
        involved = event.get("involvedObject") or {}
        namespace = (event.get("metadata") or {}).get("namespace", "")
        # Upstream's copy carries only these fields: no reportingComponent/Instance, no annotations.
        combined: Event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": self._namer.name(str(involved.get("name") or ""), now),
                "namespace": namespace,
            },
            "involvedObject": involved,
            "reason": event.get("reason", ""),
            "message": AGGREGATE_MESSAGE_PREFIX + str(event.get("message") or ""),
            "type": event.get("type", ""),
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": None,
            "source": event.get("source") or {},
        }
        return combined, group


# -- logger (dedupe) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventLog:
    count: int
    first_timestamp: Any
    name: str
    resource_version: str


class EventLogger:
    """eventLogger: remembers the name and count of each event it has seen, to turn a repeat into a
    PATCH of the first one."""

    def __init__(self, cache_size: int = MAX_LRU_CACHE_ENTRIES) -> None:
        self._cache: LRUCache[Key, _EventLog] = LRUCache(cache_size)

    def observe(self, new: Event, key: Key) -> tuple[Event, dict[str, Any] | None]:
        event = {**new, "metadata": dict(new.get("metadata") or {})}
        patch: dict[str, Any] | None = None
        last = self._cache.get(key)
        if last is not None and last.count > 0:
            event["metadata"]["name"] = last.name
            if last.resource_version:
                event["metadata"]["resourceVersion"] = last.resource_version
            else:
                event["metadata"].pop("resourceVersion", None)
            event["firstTimestamp"] = last.first_timestamp
            event["count"] = last.count + 1
            # Upstream diffs the event against a copy with count, lastTimestamp and message zeroed
            # (a two-way strategic merge patch): exactly those three fields, when non-empty.
            patch = {"count": event["count"]}
            if event.get("lastTimestamp"):
                patch["lastTimestamp"] = event["lastTimestamp"]
            if event.get("message"):
                patch["message"] = event["message"]
        self._cache.add(key, _log_of(event))
        return event, patch

    def update_state(self, event: Event) -> None:
        """Record the server's copy (its name, count and resourceVersion) under the event's own key."""
        self._cache.add(event_key(event), _log_of(event))

    def __len__(self) -> int:
        return len(self._cache)


def _log_of(event: Event) -> _EventLog:
    meta = event.get("metadata") or {}
    return _EventLog(
        count=int(event.get("count") or 0),
        first_timestamp=event.get("firstTimestamp"),
        name=str(meta.get("name") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


# -- correlator ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrelateResult:
    event: Event | None
    patch: dict[str, Any] | None = None  # a strategic merge patch for an existing Event
    skip: bool = False  # the spam filter dropped it


class EventCorrelator:
    """NewEventCorrelator with upstream's defaults; the recorder runs every event through
    `correlate` before writing it, and feeds every written one back through `update_state`."""

    def __init__(
        self,
        clock: Clock,
        *,
        namer: EventNamer | None = None,
        burst: int = DEFAULT_SPAM_BURST,
        qps: float = DEFAULT_SPAM_QPS,
        max_events: int = DEFAULT_AGGREGATE_MAX_EVENTS,
        max_interval_seconds: float = DEFAULT_AGGREGATE_INTERVAL_SECONDS,
        cache_size: int = MAX_LRU_CACHE_ENTRIES,
    ) -> None:
        self.namer = namer or EventNamer()
        self.spam_filter = SpamFilter(clock, burst=burst, qps=qps, cache_size=cache_size)
        self.aggregator = EventAggregator(
            clock,
            self.namer,
            max_events=max_events,
            max_interval_seconds=max_interval_seconds,
            cache_size=cache_size,
        )
        self.logger = EventLogger(cache_size)

    def correlate(self, event: Event) -> CorrelateResult:
        aggregated, key = self.aggregator.aggregate(event)
        observed, patch = self.logger.observe(aggregated, key)
        if self.spam_filter.filter(observed):
            return CorrelateResult(event=None, skip=True)
        return CorrelateResult(event=observed, patch=patch)

    def update_state(self, event: Event) -> None:
        self.logger.update_state(event)
