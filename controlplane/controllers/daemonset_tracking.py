"""What the DaemonSet controller remembers between syncs besides its expectations (those are the
shared expectations.py): the back-off for replacing daemon pods that keep failing on a node
(client-go flowcontrol.Backoff).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FailedPodBackoff"]


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
