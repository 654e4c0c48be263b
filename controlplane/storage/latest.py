"""The latest value of recently used keys, for point reads that skip the database.

This process is the database's only writer (see the lock file), and every committed write
records its value here before the write is acknowledged, so a hit is always the current value
(a KeyValue, or None for a key known absent). The map is bounded and least-recently-used: at
1,000 nodes and 30,000 pods an unbounded map held every pod and Event ever written (~5 KiB each)
while the keys read back soon after a write (Leases, Nodes, pods being started) are a few
thousand.

A read that missed runs on a reader thread while writes go on. Its result may be cached only if
it cannot be older than the map's own entry: a write delivered meanwhile leaves an entry (which
the result must not replace), unless that entry was evicted before the read came back, so a
result is dropped whenever anything was evicted while it was in flight.
"""

from __future__ import annotations

from collections import OrderedDict

from controlplane.storage.interface import KeyValue

__all__ = ["DEFAULT_LIMIT", "LatestValues"]

# Hot keys at 5,000 nodes: a Lease and a Node each, plus the objects being written right now.
DEFAULT_LIMIT = 16_384

_MISSING = object()


class LatestValues:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self._limit = limit
        self._entries: OrderedDict[str, KeyValue | None] = OrderedDict()
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> tuple[bool, KeyValue | None]:
        """(True, value) on a hit, which also makes the key the most recently used."""
        found = self._entries.get(key, _MISSING)
        if found is _MISSING:
            return False, None
        self._entries.move_to_end(key)
        return True, found  # type: ignore[return-value]

    def written(self, key: str, value: KeyValue | None) -> None:
        """A committed write: `value` is the key's new current value (None once deleted)."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        self._trim()

    def read_started(self) -> int:
        """A token for a read about to miss; pass it to `read_done` with the result."""
        return self._evictions

    def read_done(self, key: str, value: KeyValue | None, token: int) -> None:
        """Cache a read's result unless a newer value is, or may have been, recorded since."""
        if token != self._evictions or key in self._entries:
            return
        self._entries[key] = value
        self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
            self._evictions += 1
