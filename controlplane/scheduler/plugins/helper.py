"""Shared plugin helpers (framework/plugins/helper)."""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE, NodeScore

__all__ = ["default_normalize_score"]


def default_normalize_score(
    scores: list[NodeScore], *, reverse: bool, max_priority: int = MAX_NODE_SCORE
) -> None:
    """Scale scores to [0, max_priority] by the highest one; `reverse` turns counts of bad
    things (untolerated PreferNoSchedule taints) into preferences."""
    max_count = max((s.score for s in scores), default=0)
    if max_count == 0:
        if reverse:
            for s in scores:
                s.score = max_priority
        return
    for s in scores:
        score = max_priority * s.score // max_count
        s.score = max_priority - score if reverse else score
