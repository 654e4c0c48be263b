"""What the DaemonSet controller remembers between syncs: the pod creations and deletions it is
still waiting to see (upstream controller.ControllerExpectations) and the back-off for replacing
daemon pods that keep failing on a node (client-go flowcontrol.Backoff).

Expectations are why a DaemonSet never double-creates: after asking for N pods it does not manage
that DaemonSet again until its informer has shown it N pod additions (or the expectations
expire after five minutes, in case a watch event was lost).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXPECTATIONS_TTL", "Expectations", "FailedPodBackoff"]

# controller.ExpectationsTimeout
EXPECTATIONS_TTL = 300.0


@dataclass
class _Expectation:
    add: int
    delete: int
    at: float


class Expectations:
    """Per-key counts of pending creations and deletions, timestamped with a monotonic clock."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL) -> None:
        self._ttl = ttl
        self._items: dict[str, _Expectation] = {}

    def set(self, key: str, add: int, delete: int, now: float) -> None:
        self._items[key] = _Expectation(add, delete, now)

    def lower(self, key: str, add: int, delete: int) -> None:
        found = self._items.get(key)
        if found is not None:
            found.add -= add
            found.delete -= delete

    def creation_observed(self, key: str) -> None:
        self.lower(key, 1, 0)

    def deletion_observed(self, key: str) -> None:
        self.lower(key, 0, 1)

    def satisfied(self, key: str, now: float) -> bool:
        """True when nothing is pending, the expectations expired, or none were ever set."""
        found = self._items.get(key)
        if found is None:
            return True
        if found.add <= 0 and found.delete <= 0:
            return True
        return now - found.at > self._ttl

    def pending(self, key: str) -> tuple[int, int] | None:
        found = self._items.get(key)
        return None if found is None else (found.add, found.delete)

    def forget(self, key: str) -> None:
        self._items.pop(key, None)


@dataclass
class _Entry:
    delay: float
    last_update: float


class FailedPodBackoff:
    """flowcontrol.Backoff: per-key delays doubling from `initial` to `maximum`; an entry not
    touched for twice the maximum starts over (and is what `gc` drops)."""

    def __init__(self, initial: float = 1.0, maximum: float = 900.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, now: float) -> bool:
        return now - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now):
            self._entries[key] = _Entry(self.initial, now)
            return
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = now

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now):
            return False
        return now - entry.last_update < entry.delay

    def gc(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
