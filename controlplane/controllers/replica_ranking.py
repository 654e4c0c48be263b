"""Which pods a ReplicaSet deletes first when it scales down: upstream's ActivePodsWithRanks
(k8s.io/kubernetes/pkg/controller/controller_utils.go) and getPodsToDelete
(pkg/controller/replicaset/replica_set.go), with the feature gates at their 1.33 defaults
(PodDeletionCost and LogarithmicScaleDown on).

Earlier in the order means deleted sooner:
 1. unassigned before assigned;
 2. Pending before Unknown before Running;
 3. not ready before ready;
 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
 5. more pods of the same owner family on the pod's node first (doubled-up pods go first);
 6. both ready: ready for less time first (log2 buckets, ties by uid);
 7. more container restarts first (then more sidecar restarts);
 8. newer first (log2 buckets, ties by uid), pods without a creation time before all.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from controlplane.controllers.podutil import condition, is_pod_active, is_pod_ready, parse_time

__all__ = [
    "POD_DELETION_COST",
    "compare_for_deletion",
    "deletion_cost",
    "pods_to_delete",
    "ranks_by_related_on_same_node",
    "sort_for_deletion",
]

Obj = Mapping[str, Any]
P = TypeVar("P", bound=Mapping[str, Any])

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}
_INT32 = (-(2**31), 2**31 - 1)
_MICROSECOND = timedelta(microseconds=1)


def deletion_cost(pod: Obj) -> int:
    """The annotation as an int32; anything unparsable counts as 0 (upstream ignores it)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST)
    if raw is None:
        return 0
    text = str(raw)
    # strconv.ParseInt accepts an optional sign and decimal digits only.
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or not body.isascii():
        return 0
    value = int(text)
    return value if _INT32[0] <= value <= _INT32[1] else 0


def _ready_time(pod: Obj) -> datetime | None:
    if not is_pod_ready(pod):
        return None
    cond = condition(pod, "Ready")
    return parse_time(cond.get("lastTransitionTime")) if cond else None


def _created(pod: Obj) -> datetime | None:
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _max_restarts(pod: Obj) -> tuple[int, int]:
    status = pod.get("status") or {}
    regular = max((int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []), default=0)
    sidecars = {
        c.get("name")
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    sidecar = max(
        (
            int(c.get("restartCount") or 0)
            for c in status.get("initContainerStatuses") or []
            if c.get("name") in sidecars
        ),
        default=0,
    )
    return regular, sidecar


def _log_rank_diff(t1: datetime, t2: datetime, now: datetime) -> int:
    """Go's logarithmicRankDiff: floor(log2(age in nanoseconds)), -1 for a non-positive age."""

    def rank(t: datetime) -> int:
        nanos = (now - t) // _MICROSECOND * 1000
        return int(math.log2(nanos)) if nanos > 0 else -1

    return rank(t1) - rank(t2)


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """A zero time counts as after any other time (afterOrZero)."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _time_less(t1: datetime | None, t2: datetime | None, now: datetime | None, uid1: str, uid2: str) -> bool:
    if now is None or t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank_diff(t1, t2, now)
    if diff == 0:
        return uid1 < uid2
    return diff < 0


def _less(a: Obj, b: Obj, rank_a: int, rank_b: int, now: datetime | None) -> bool:
    """ActivePodsWithRanks.Less: is `a` deleted before `b`?"""
    node_a = (a.get("spec") or {}).get("nodeName") or ""
    node_b = (b.get("spec") or {}).get("nodeName") or ""
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    phase_a = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase") or "", 0)
    phase_b = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase") or "", 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    ready_a, ready_b = is_pod_ready(a), is_pod_ready(b)
    if ready_a != ready_b:
        return not ready_a
    cost_a, cost_b = deletion_cost(a), deletion_cost(b)
    if cost_a != cost_b:
        return cost_a < cost_b
    if rank_a != rank_b:
        return rank_a > rank_b
    if ready_a and ready_b:
        rt_a, rt_b = _ready_time(a), _ready_time(b)
        if rt_a != rt_b:
            return _time_less(rt_a, rt_b, now, _uid(a), _uid(b))
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a[0] != restarts_b[0]:
        return restarts_a[0] > restarts_b[0]
    if restarts_a[1] != restarts_b[1]:
        return restarts_a[1] > restarts_b[1]
    created_a, created_b = _created(a), _created(b)
    if created_a != created_b:
        return _time_less(created_a, created_b, now, _uid(a), _uid(b))
    return False


def compare_for_deletion(a: Obj, b: Obj, rank_a: int, rank_b: int, now: datetime | None) -> int:
    """-1 when `a` goes first, 1 when `b` does, 0 when neither is preferred."""
    if _less(a, b, rank_a, rank_b, now):
        return -1
    if _less(b, a, rank_b, rank_a, now):
        return 1
    return 0


def ranks_by_related_on_same_node(pods: Sequence[Obj], related: Sequence[Obj]) -> list[int]:
    """Each pod's rank: how many active related pods share its node (getPodsRankedByRelatedPodsOnSameNode)."""
    on_node = Counter((p.get("spec") or {}).get("nodeName") or "" for p in related if is_pod_active(p))
    return [on_node[(p.get("spec") or {}).get("nodeName") or ""] for p in pods]


def sort_for_deletion(pods: Sequence[P], ranks: Sequence[int], now: datetime | None) -> list[P]:
    def cmp(x: tuple[P, int], y: tuple[P, int]) -> int:
        return compare_for_deletion(x[0], y[0], x[1], y[1], now)

    indexed = sorted(zip(pods, ranks, strict=True), key=functools.cmp_to_key(cmp))
    return [pod for pod, _ in indexed]


def pods_to_delete(pods: Sequence[P], related: Sequence[Obj], diff: int, now: datetime | None) -> list[P]:
    """The `diff` pods to delete, earliest in the startup sequence first (getPodsToDelete)."""
    if diff >= len(pods):
        return list(pods)
    ranks = ranks_by_related_on_same_node(pods, related)
    return sort_for_deletion(pods, ranks, now)[:diff]
