"""Shared plugin helpers (framework/plugins/helper)."""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE

__all__ = ["default_normalize_score"]


def default_normalize_score(scores: list[int], *, reverse: bool, max_priority: int = MAX_NODE_SCORE) -> None:
    """Scale scores in place to [0, max_priority] by the highest one; `reverse` turns counts of
    bad things (untolerated PreferNoSchedule taints) into preferences."""
    max_count = max(scores, default=0)
    if max_count == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    if reverse:
        scores[:] = [max_priority - max_priority * s // max_count for s in scores]
    else:
        scores[:] = [max_priority * s // max_count for s in scores]
