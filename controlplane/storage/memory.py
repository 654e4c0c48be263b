"""The in-memory backend: the revision-log semantics of the sqlite backend in plain Python.

For unit tests. The log is a list of `Row`s in revision order; each key keeps its history (for
reads at a revision) and the live keys are kept sorted (for prefix lists). Writes apply at once on
the event loop, so there is nothing to batch; events are published after the write, as in sqlite.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.storage.compaction import Clock, Compactor, RetentionPolicy
from controlplane.storage.errors import Compacted, KeyExists, KeyNotFound, RevisionConflict, Unavailable
from controlplane.storage.fanout import DEFAULT_QUEUE_LIMIT, Watcher, WatchHub
from controlplane.storage.interface import Event, KeyValue, ListResult, Trigger
from controlplane.storage.metrics import COMPACTIONS, CURRENT_REVISION, timed
from controlplane.storage.revlog import FutureRevision, Row, check_read_revision, prefix_end

__all__ = ["MemoryStorage"]

_REPLAY_CHUNK = 500


@dataclass
class _History:
    rows: list[Row]  # this key's rows in revision order
    live: Row | None  # the latest row when it is not a tombstone


class MemoryStorage:
    def __init__(
        self,
        *,
        compaction_interval: float = 60.0,
        retain_revisions: int = 1000,
        retain_seconds: float = 300.0,
        clock: Clock = time.monotonic,
        watch_queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self._log: list[Row] = []
        self._keys: dict[str, _History] = {}
        self._names: list[str] = []  # every key with history, sorted
        self._live_names: list[str] = []  # live keys, sorted
        self._revision = 0
        self._compacted = 0
        self._hub = WatchHub(watch_queue_limit)
        self._closed = False
        self.compactor = Compactor(
            self, RetentionPolicy(retain_revisions, retain_seconds), clock, compaction_interval
        )

    async def start(self) -> None:
        self.compactor.start()

    async def close(self) -> None:
        self._closed = True
        await self.compactor.stop()
        self._hub.close_all()

    async def __aenter__(self) -> MemoryStorage:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("storage is closed")

    async def get(self, key: str, *, revision: int | None = None) -> KeyValue | None:
        with timed("get"):
            self._check_open()
            history = self._keys.get(key)
            if revision is None:
                return history.live.kv() if history is not None and history.live is not None else None
            check_read_revision(revision, current=self._revision, compacted=self._compacted)
            row = _row_at(history, revision) if history is not None else None
            return row.kv() if row is not None else None

    async def list(
        self,
        prefix: str,
        *,
        revision: int | None = None,
        limit: int = 0,
        start_after: str = "",
    ) -> ListResult:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        with timed("list"):
            self._check_open()
            names = self._live_names if revision is None else self._names
            if revision is not None:
                check_read_revision(revision, current=self._revision, compacted=self._compacted)
            lo = max(prefix, start_after)
            start = bisect.bisect_right(names, lo) if start_after >= prefix else bisect.bisect_left(names, lo)
            end_key = prefix_end(prefix)
            end = len(names) if end_key is None else bisect.bisect_left(names, end_key)
            items: list[KeyValue] = []
            remaining = 0
            for name in names[start:end]:
                history = self._keys[name]
                row = history.live if revision is None else _row_at(history, revision)
                if row is None:
                    continue
                if limit and len(items) >= limit:
                    remaining += 1
                else:
                    items.append(row.kv())
            at = self._revision if revision is None else revision
            return ListResult(items, at, more=remaining > 0, remaining=remaining)

    def _append(self, row: Row) -> Event:
        self._log.append(row)
        history = self._keys.get(row.name)
        if history is None:
            history = self._keys[row.name] = _History([], None)
            bisect.insort(self._names, row.name)
        history.rows.append(row)
        if row.deleted:
            history.live = None
            del self._live_names[bisect.bisect_left(self._live_names, row.name)]
        else:
            if history.live is None:
                bisect.insort(self._live_names, row.name)
            history.live = row
        self._revision = row.id
        CURRENT_REVISION.set(row.id)
        event = row.event()
        self._hub.publish([event])
        return event

    def peek_list(self, prefix: str) -> Sequence[KeyValue] | None:
        # Lists are built on demand here: no list object outlives a call, so none can be peeked.
        return None

    async def create(self, key: str, value: bytes) -> KeyValue:
        with timed("create"):
            self._check_open()
            history = self._keys.get(key)
            if history is not None and history.live is not None:
                raise KeyExists(key)
            rev = self._revision + 1
            prev = history.rows[-1].id if history is not None and history.rows else 0
            return self._append(Row(rev, key, True, False, rev, prev, value, None)).kv

    def _live_at(self, key: str, expected: int | None) -> Row:
        history = self._keys.get(key)
        if history is None or history.live is None:
            raise KeyNotFound(key)
        if expected is not None and history.live.id != expected:
            raise RevisionConflict(key, expected, history.live.kv())
        return history.live

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        with timed("update"):
            self._check_open()
            old = self._live_at(key, expected_revision)
            row = Row(self._revision + 1, key, False, False, old.create_revision, old.id, value, old.value)
            return self._append(row).kv

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        with timed("delete"):
            self._check_open()
            old = self._live_at(key, expected_revision)
            row = Row(self._revision + 1, key, False, True, old.create_revision, old.id, old.value, None)
            return self._append(row).kv

    async def watch(self, prefix: str, *, revision: int, trigger: Trigger | None = None) -> Watcher:
        self._check_open()
        if revision < self._compacted:
            raise Compacted(revision, self._compacted)
        end_key = prefix_end(prefix)

        async def replay(after: int) -> tuple[list[Event], bool]:
            if after < self._compacted:
                raise Compacted(after, self._compacted)
            events: list[Event] = []
            start = bisect.bisect_right(self._log, after, key=lambda r: r.id)
            for row in self._log[start:]:
                if row.name.startswith(prefix) and (end_key is None or row.name < end_key):
                    events.append(row.event())
                    if len(events) == _REPLAY_CHUNK:
                        return events, False
            return events, True

        return self._hub.subscribe(prefix, revision, replay, trigger)

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        if revision <= self._compacted:
            return
        superseded = {r.prev_revision for r in self._log if r.id <= revision and r.prev_revision}
        dropped = {r.id for r in self._log if r.id <= revision and r.deleted} | superseded
        self._log = [r for r in self._log if r.id not in dropped]
        for name in [n for n, h in self._keys.items() if h.rows and h.rows[0].id <= revision]:
            history = self._keys[name]
            history.rows = [r for r in history.rows if r.id not in dropped]
            if not history.rows:
                del self._keys[name]
                del self._names[bisect.bisect_left(self._names, name)]
        self._compacted = revision
        COMPACTIONS.inc()


def _row_at(history: _History, revision: int) -> Row | None:
    """The key's row as of `revision`, None when absent (never written yet, or deleted)."""
    i = bisect.bisect_right(history.rows, revision, key=lambda r: r.id)
    if i == 0:
        return None
    row = history.rows[i - 1]
    return None if row.deleted else row
