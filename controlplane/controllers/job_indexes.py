"""Indexed Jobs: completion indexes on pods, and the compressed index lists of the Job status
(`completedIndexes: "0-2,4"`), as upstream's pkg/controller/job/indexed_job_utils.go.

Index sets are ordered, non-overlapping, non-adjacent intervals `[(first, last), ...]`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COMPLETION_INDEX_ANNOTATION",
    "COMPLETION_INDEX_ENV",
    "UNKNOWN_INDEX",
    "Intervals",
    "add_completion_index_env",
    "completion_index",
    "first_pending_indexes",
    "format_intervals",
    "has_index",
    "merge_intervals",
    "parse_intervals",
    "pod_generate_name_with_index",
    "split_duplicated_index_pods",
    "total",
    "with_indexes",
]

COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
UNKNOWN_INDEX = -1
# names.MaxGeneratedNameLength: 63 minus the 5 random characters generateName appends.
_MAX_GENERATED_NAME_LENGTH = 58

Intervals = list[tuple[int, int]]
Obj = Mapping[str, Any]


def completion_index(pod: Obj) -> int:
    """The pod's index from its annotation, or UNKNOWN_INDEX when absent, malformed or negative."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(COMPLETION_INDEX_ANNOTATION)
    if not isinstance(value, str):
        return UNKNOWN_INDEX
    text = value[1:] if value[:1] in "+-" else value
    if not text.isascii() or not text.isdigit():
        return UNKNOWN_INDEX
    index = int(value)
    return index if index >= 0 else UNKNOWN_INDEX


def parse_intervals(text: str, completions: int) -> Intervals:
    """Read `completedIndexes`; indexes at or above `completions` are dropped, corrupt items
    skipped (upstream logs and ignores them)."""
    if not text:
        return []
    result: Intervals = []
    for item in text.split(","):
        limits = item.split("-")
        try:
            first = int(limits[0])
        except ValueError:
            continue
        if first >= completions:
            break
        if len(limits) > 1:
            try:
                last = int(limits[1])
            except ValueError:
                continue
            last = min(last, completions - 1)
        else:
            last = first
        if result and result[-1][1] == first - 1:
            result[-1] = (result[-1][0], last)
        else:
            result.append((first, last))
    return result


def merge_intervals(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> Intervals:
    result: Intervals = []

    def push(item: tuple[int, int]) -> None:
        if not result or item[0] > result[-1][1] + 1:
            result.append(item)
        elif result[-1][1] < item[1]:
            result[-1] = (result[-1][0], item[1])

    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][0] < b[j][0]:
            push(a[i])
            i += 1
        else:
            push(b[j])
            j += 1
    for item in a[i:]:
        push(item)
    for item in b[j:]:
        push(item)
    return result


def with_indexes(intervals: Sequence[tuple[int, int]], indexes: Iterable[int]) -> Intervals:
    return merge_intervals(intervals, [(i, i) for i in sorted(set(indexes))])


def total(intervals: Sequence[tuple[int, int]]) -> int:
    return sum(last - first + 1 for first, last in intervals)


def has_index(intervals: Sequence[tuple[int, int]], index: int) -> bool:
    lo, hi = 0, len(intervals)
    while hi > lo:
        mid = lo + (hi - lo) // 2
        if intervals[mid][1] >= index:
            hi = mid
        else:
            lo = mid + 1
    return hi != len(intervals) and intervals[hi][0] <= index


def format_intervals(intervals: Sequence[tuple[int, int]]) -> str:
    """ "0-2,4,6,7": a pair of adjacent indexes is written with a comma, longer runs with a dash."""
    parts: list[str] = []
    for first, last in intervals:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def first_pending_indexes(
    active_pods: Iterable[Obj],
    succeeded: Sequence[tuple[int, int]],
    count: int,
    completions: int,
    terminating_pods: Iterable[Obj] = (),
) -> list[int]:
    """The `count` lowest indexes below `completions` with no active, succeeded (or, when only
    failed pods are replaced, terminating) pod."""
    if count == 0:
        return []
    busy = {completion_index(p) for p in active_pods} | {completion_index(p) for p in terminating_pods}
    busy.discard(UNKNOWN_INDEX)
    non_pending = with_indexes(succeeded, busy)
    result: list[int] = []
    candidate = 0
    for first, last in non_pending:
        while candidate < completions and len(result) < count and candidate < first:
            result.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(result) < count:
        result.append(candidate)
        candidate += 1
    return result


def split_duplicated_index_pods(
    pods: Sequence[Obj], completions: int, active_sort_key: Any
) -> tuple[list[Obj], list[Obj]]:
    """(to remove, to keep): pods without an index or with one out of range, and all but the
    most advanced pod of every repeated index, are removed."""
    rm: list[Obj] = []
    left: list[Obj] = []
    by_index: dict[int, list[Obj]] = {}
    for pod in sorted(pods, key=completion_index):
        index = completion_index(pod)
        if index == UNKNOWN_INDEX or index >= completions:
            rm.append(pod)
            continue
        by_index.setdefault(index, []).append(pod)
    for index in sorted(by_index):
        group = by_index[index]
        if len(group) == 1:
            left.append(group[0])
            continue
        ordered = sorted(group, key=active_sort_key)
        rm.extend(ordered[:-1])
        left.append(ordered[-1])
    return rm, left


def pod_generate_name_with_index(job_name: str, index: int) -> str:
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > _MAX_GENERATED_NAME_LENGTH:
        prefix = prefix[: _MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def add_completion_index_env(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of the pod spec whose containers see JOB_COMPLETION_INDEX (from the index label,
    as with the PodIndexLabel feature, GA since 1.32)."""
    spec = copy.deepcopy(pod_spec)
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            env = container.setdefault("env", [])
            if any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                continue
            env.append(
                {
                    "name": COMPLETION_INDEX_ENV,
                    "valueFrom": {
                        "fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"}
                    },
                }
            )
    return spec
