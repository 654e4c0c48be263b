"""The Job controller's finalizer expectations (upstream pkg/controller/job's
uidTrackingExpectations): the pods whose tracking finalizer this controller asked to remove and
has not yet seen without it. Their pods are not counted again meanwhile. The pod creation and
deletion expectations are the shared ones in expectations.py."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["UIDTrackingExpectations"]


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
