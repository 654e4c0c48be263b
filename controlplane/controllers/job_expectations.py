"""Expectations: what the Job controller has asked the API server for and not yet seen in its
informer cache (upstream controller.ControllerExpectations and the Job controller's
uidTrackingExpectations). A Job whose pod creations or deletions are still in flight is not
managed again until they show up (or five minutes pass), so a lagging cache never causes the
controller to create the same pods twice or to count a pod twice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane.controllers.runtime import Clock

__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations", "UIDTrackingExpectations"]

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expected:
    add: int
    delete: int
    at: float


class Expectations:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        found = self._by_key.get(key)
        if found is None:
            return True
        if found.add <= 0 and found.delete <= 0:
            return True
        # Expired: some watch event was lost; proceeding beats waiting forever.
        return self._clock.monotonic() - found.at > EXPECTATIONS_TIMEOUT

    def expect_creations(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(count, 0, self._clock.monotonic())

    def expect_deletions(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(0, count, self._clock.monotonic())

    def creation_observed(self, key: str) -> None:
        found = self._by_key.get(key)
        if found is not None:
            found.add -= 1

    def deletion_observed(self, key: str) -> None:
        found = self._by_key.get(key)
        if found is not None:
            found.delete -= 1

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)


class UIDTrackingExpectations:
    """Pods whose tracking finalizer removal was requested but not yet observed."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[str]] = {}

    def expected(self, key: str) -> set[str]:
        return set(self._by_key.get(key, ()))

    def expect_removed(self, key: str, uids: Iterable[str]) -> None:
        self._by_key.setdefault(key, set()).update(uids)

    def removal_observed(self, key: str, uid: str) -> None:
        found = self._by_key.get(key)
        if found is not None:
            found.discard(uid)

    def delete(self, key: str) -> None:
        self._by_key.pop(key, None)
