"""When the taint eviction controller deletes a pod, as pure functions and a pure schedule
(upstream pkg/controller/tainteviction: GetMatchingTolerations, getMinTolerationTime and the
TimedWorkerQueue).

A pod on a node with NoExecute taints is deleted at once unless it tolerates every one of them;
if it does, it is deleted tolerationSeconds after the taint was added (the taint's timeAdded, so
the deadline does not move when the controller restarts or looks again), and never when all the
tolerations that matched are unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.controllers.podutil import parse_time

__all__ = [
    "Decision",
    "EvictionSchedule",
    "decide",
    "matching_tolerations",
    "no_execute_taints",
    "tolerates",
]

Obj = Mapping[str, Any]


def no_execute_taints(taints: Iterable[Obj] | None) -> list[dict[str, Any]]:
    return [dict(t) for t in taints or [] if t.get("effect") == "NoExecute"]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Upstream Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def matching_tolerations(
    taints: Iterable[Obj], tolerations: Iterable[Obj]
) -> tuple[bool, list[tuple[Obj, Obj]]]:
    """(every taint tolerated, [(taint, the first toleration that tolerates it)])."""
    toleration_list = list(tolerations)
    pairs: list[tuple[Obj, Obj]] = []
    for taint in taints:
        match = next((t for t in toleration_list if tolerates(t, taint)), None)
        if match is None:
            return False, []
        pairs.append((taint, match))
    return True, pairs


@dataclass(frozen=True)
class Decision:
    """What to do with a pod: "cancel" (no taints), "never" (tolerated forever; cancel any
    pending eviction), or "evict" at `at` (now when something is not tolerated)."""

    action: str
    at: datetime | None = None


def decide(taints: Sequence[Obj], tolerations: Iterable[Obj], now: datetime) -> Decision:
    if not taints:
        return Decision("cancel")
    all_tolerated, pairs = matching_tolerations(taints, tolerations)
    if not all_tolerated:
        return Decision("evict", now)
    deadline: datetime | None = None
    for taint, toleration in pairs:
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            continue
        if int(seconds) <= 0:
            return Decision("evict", now)
        start = parse_time(taint.get("timeAdded")) or now
        at = start + timedelta(seconds=int(seconds))
        deadline = at if deadline is None or at < deadline else deadline
    if deadline is None:
        return Decision("never")
    return Decision("evict", deadline)


@dataclass
class _Work:
    created_at: datetime
    fire_at: datetime
    running: bool = False


class EvictionSchedule:
    """Upstream TimedWorkerQueue without the timers: pending evictions by pod key. A finished
    eviction is remembered (so the pod is not evicted twice) until it is cancelled, which the
    pod's deletion does; a failed one is forgotten, so a later look can schedule it again."""

    def __init__(self) -> None:
        # key -> pending or running work, or None once it succeeded
        self._works: dict[str, _Work | None] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._works

    def get(self, key: str) -> _Work | None:
        return self._works.get(key)

    def add(self, key: str, created_at: datetime, fire_at: datetime) -> bool:
        if key in self._works:
            return False
        self._works[key] = _Work(created_at, fire_at)
        return True

    def cancel(self, key: str) -> bool:
        """Forget the key; True when an eviction was still pending or running."""
        if key not in self._works:
            return False
        work = self._works.pop(key)
        return work is not None

    def due(self, now: datetime) -> list[str]:
        """Pending keys whose time has come, marked running."""
        keys = []
        for key, work in self._works.items():
            if work is not None and not work.running and work.fire_at <= now:
                work.running = True
                keys.append(key)
        return keys

    def finish(self, key: str, ok: bool) -> None:
        work = self._works.get(key)
        if work is None or not work.running:
            return  # cancelled (and maybe scheduled anew) while it ran
        if ok:
            self._works[key] = None
        else:
            del self._works[key]

    def next_fire(self) -> datetime | None:
        times = [w.fire_at for w in self._works.values() if w is not None and not w.running]
        return min(times) if times else None
