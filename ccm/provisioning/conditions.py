"""Conditions as metav1.Condition: `lastTransitionTime` moves only when the status changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Condition", "find_condition", "is_true", "set_condition"]

Condition = dict[str, Any]


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> bool:
    found = find_condition(conditions, type_)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: str,
    *,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with `type_` set (apimachinery's meta.SetStatusCondition): appended when new,
    its transition time kept when only the reason or message changed."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    out: list[Condition] = []
    placed = False
    for existing in conditions or ():
        if existing.get("type") != type_:
            out.append(dict(existing))
            continue
        placed = True
        changed = existing.get("status") != value
        updated: Condition = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now if changed else existing.get("lastTransitionTime") or now,
        }
        if observed_generation is not None:
            updated["observedGeneration"] = observed_generation
        out.append(updated)
    if not placed:
        new: Condition = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
        if observed_generation is not None:
            new["observedGeneration"] = observed_generation
        out.append(new)
    return out
