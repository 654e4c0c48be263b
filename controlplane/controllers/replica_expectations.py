"""What a controller expects its informers to show it next (upstream ControllerExpectations and
UIDTrackingControllerExpectations, k8s.io/kubernetes/pkg/controller/controller_utils.go).

A controller that creates or deletes pods records how many creations it expects, and which pods
it expects to see deleted, before it writes. Its pod handlers count the observations down; until
they reach zero (or the record expires) the controller must not act on its cache, which does not
show its own writes yet, or it would create the same replicas twice. Expiry (five minutes, as
upstream) guards against a watch event that never comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from controlplane.controllers.runtime import Clock

__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations"]

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Record:
    add: int
    delete: int
    at: float
    # The pods (namespace/name) whose deletion is awaited; each one counts down once, whether it
    # is seen first as a deletion timestamp or as the final delete.
    pending_deletes: set[str] = field(default_factory=set)

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class Expectations:
    def __init__(self, clock: Clock, *, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when the controller may sync `key`: nothing awaited, all observed, or expired."""
        record = self._records.get(key)
        if record is None:
            return True
        return record.fulfilled() or self._clock.monotonic() - record.at > self._timeout

    def get(self, key: str) -> tuple[int, int] | None:
        record = self._records.get(key)
        return None if record is None else (record.add, record.delete)

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(add=count, delete=0, at=self._clock.monotonic())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        pending = set(pod_keys)
        self._records[key] = _Record(
            add=0, delete=len(pending), at=self._clock.monotonic(), pending_deletes=pending
        )

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        record = self._records.get(key)
        if record is not None and pod_key in record.pending_deletes:
            record.pending_deletes.discard(pod_key)
            record.delete -= 1

    def delete(self, key: str) -> None:
        self._records.pop(key, None)
