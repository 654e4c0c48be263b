"""What a controller expects its informers to show it next (upstream ControllerExpectations and
UIDTrackingControllerExpectations, k8s.io/kubernetes/pkg/controller/controller_utils.go).

A controller that creates or deletes pods records how many creations and deletions it expects
before it writes. Its pod handlers count the observations down; until they reach zero (or the
record expires) the controller must not act on its cache, which does not show its own writes
yet, or it would create the same pods twice. Expiry (five minutes, as upstream) guards against a
watch event that never comes. ReplicaSets, Jobs and DaemonSets all keep one of these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.controllers.runtime import Clock

__all__ = ["EXPECTATIONS_TIMEOUT", "ControllerExpectations", "UIDTrackingControllerExpectations"]

# controller.ExpectationsTimeout
EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Record:
    add: int
    delete: int
    at: float

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Per-key counts of pending creations and deletions, stamped with the clock's monotonic time."""

    def __init__(self, clock: Clock, *, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when the controller may sync `key`: nothing awaited, all observed, or expired
        (some watch event was lost; proceeding beats waiting forever)."""
        record = self._records.get(key)
        if record is None:
            return True
        return record.fulfilled() or self._clock.monotonic() - record.at > self._timeout

    def get(self, key: str) -> tuple[int, int] | None:
        """(creations, deletions) still awaited, or None when nothing was ever expected."""
        record = self._records.get(key)
        return None if record is None else (record.add, record.delete)

    def set(self, key: str, add: int, delete: int) -> None:
        """SetExpectations: replaces whatever was awaited before."""
        self._records[key] = _Record(add, delete, self._clock.monotonic())

    def expect_creations(self, key: str, count: int) -> None:
        self.set(key, count, 0)

    def expect_deletions(self, key: str, count: int) -> None:
        self.set(key, 0, count)

    def lower(self, key: str, add: int, delete: int) -> None:
        """LowerExpectations: creations or deletions that will not happen after all."""
        record = self._records.get(key)
        if record is not None:
            record.add -= add
            record.delete -= delete

    def creation_observed(self, key: str) -> None:
        self.lower(key, 1, 0)

    def deletion_observed(self, key: str) -> None:
        self.lower(key, 0, 1)

    def delete(self, key: str) -> None:
        self._records.pop(key, None)


class UIDTrackingControllerExpectations:
    """ControllerExpectations whose deletions are awaited by pod key: each pod counts down once,
    whether it is seen first with a deletion timestamp or as the final delete."""

    def __init__(self, clock: Clock, *, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._counts = ControllerExpectations(clock, timeout=timeout)
        self._pending_deletes: dict[str, set[str]] = {}

    def satisfied(self, key: str) -> bool:
        return self._counts.satisfied(key)

    def get(self, key: str) -> tuple[int, int] | None:
        return self._counts.get(key)

    def expect_creations(self, key: str, count: int) -> None:
        self._pending_deletes.pop(key, None)
        self._counts.expect_creations(key, count)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        pending = set(pod_keys)
        self._pending_deletes[key] = pending
        self._counts.expect_deletions(key, len(pending))

    def creation_observed(self, key: str) -> None:
        self._counts.creation_observed(key)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        pending = self._pending_deletes.get(key)
        if pending is not None and pod_key in pending:
            pending.discard(pod_key)
            self._counts.deletion_observed(key)

    def delete(self, key: str) -> None:
        self._pending_deletes.pop(key, None)
        self._counts.delete(key)
