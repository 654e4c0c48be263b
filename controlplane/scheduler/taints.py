"""Taint and toleration matching (core/v1 Toleration.ToleratesTaint and
FindMatchingUntoleratedTaint from k8s.io/component-helpers/scheduling/corev1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "TAINT_NODE_UNSCHEDULABLE",
    "do_not_schedule_taints",
    "find_matching_untolerated_taint",
    "tolerates_taint",
    "tolerations_tolerate_taint",
]

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

Obj = Mapping[str, Any]


def tolerates_taint(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or ""
    if operator in ("", "Equal"):
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return operator == "Exists"


def tolerations_tolerate_taint(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates_taint(t, taint) for t in tolerations)


def do_not_schedule_taints(taint: Obj) -> bool:
    """The taints the scheduler's filters enforce; PreferNoSchedule only affects scoring."""
    return taint.get("effect") in (NO_SCHEDULE, NO_EXECUTE)


def find_matching_untolerated_taint(
    taints: Iterable[Obj], tolerations: Iterable[Obj], inclusion: Callable[[Obj], bool]
) -> Obj | None:
    """The first taint `inclusion` selects that no toleration tolerates, in the node's order."""
    tolerations = list(tolerations)
    for taint in taints:
        if inclusion(taint) and not tolerations_tolerate_taint(tolerations, taint):
            return taint
    return None
