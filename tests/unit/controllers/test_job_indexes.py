"""Completion indexes and the compressed index lists of Indexed Jobs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.job_indexes import (
    COMPLETION_INDEX_ANNOTATION,
    UNKNOWN_INDEX,
    add_completion_index_env,
    completion_index,
    first_pending_indexes,
    format_intervals,
    has_index,
    merge_intervals,
    parse_intervals,
    pod_generate_name_with_index,
    split_duplicated_index_pods,
    total,
    with_indexes,
)


def pod(index: str | None, name: str = "p", ready: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX_ANNOTATION: index}
    status = {"conditions": [{"type": "Ready", "status": "True"}]} if ready else {}
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("indexes", "text"),
    [
        ([], ""),
        ([0], "0"),
        ([0, 1], "0,1"),
        ([0, 1, 2], "0-2"),
        ([0, 1, 2, 4], "0-2,4"),
        ([1, 3, 4, 5, 7, 8], "1,3-5,7,8"),
    ],
)
def test_format(indexes: list[int], text: str) -> None:
    assert format_intervals(with_indexes([], indexes)) == text


def test_parse_clips_to_completions_and_skips_garbage() -> None:
    assert parse_intervals("0-2,4,6-9", 8) == [(0, 2), (4, 4), (6, 7)]
    assert parse_intervals("0,1,2", 10) == [(0, 2)]
    assert parse_intervals("x,3,y-4,5", 10) == [(3, 3), (5, 5)]
    assert parse_intervals("", 3) == []
    assert parse_intervals("5-7", 3) == []


@given(st.sets(st.integers(0, 60)), st.integers(1, 70))
def test_format_and_parse_round_trip(indexes: set[int], completions: int) -> None:
    intervals = with_indexes([], indexes)
    parsed = parse_intervals(format_intervals(intervals), completions)
    kept = {i for i in indexes if i < completions}
    assert parsed == with_indexes([], kept)
    assert total(parsed) == len(kept)
    for i in range(72):
        assert has_index(parsed, i) == (i in kept)


@given(st.sets(st.integers(0, 40)), st.sets(st.integers(0, 40)))
def test_merge_is_set_union(a: set[int], b: set[int]) -> None:
    merged = merge_intervals(with_indexes([], a), with_indexes([], b))
    assert merged == with_indexes([], a | b)
    # Intervals stay ordered, disjoint and non-adjacent.
    for (f1, l1), (f2, l2) in itertools.pairwise(merged):
        assert f1 <= l1 < f2 - 1 < l2


def test_completion_index_annotation() -> None:
    assert completion_index(pod("3")) == 3
    assert completion_index(pod(None)) == UNKNOWN_INDEX
    assert completion_index(pod("-1")) == UNKNOWN_INDEX
    assert completion_index(pod("x")) == UNKNOWN_INDEX


def test_first_pending_indexes_skip_active_and_succeeded() -> None:
    active = [pod("1"), pod("4")]
    succeeded = [(0, 0), (2, 2)]
    assert first_pending_indexes(active, succeeded, 3, 8) == [3, 5, 6]
    assert first_pending_indexes(active, succeeded, 10, 6) == [3, 5]
    assert first_pending_indexes(active, succeeded, 0, 6) == []
    assert first_pending_indexes(active, succeeded, 2, 8, terminating_pods=[pod("3")]) == [5, 6]


def test_duplicated_and_invalid_indexes_are_removed_first() -> None:
    pods = [pod("0", "a"), pod("0", "b", ready=True), pod(None, "c"), pod("9", "d"), pod("1", "e")]
    rm, left = split_duplicated_index_pods(pods, 5, lambda p: 1 if p["status"] else 0)
    assert sorted(p["metadata"]["name"] for p in rm) == ["a", "c", "d"]
    assert sorted(p["metadata"]["name"] for p in left) == ["b", "e"]


def test_generate_name_keeps_the_index_when_truncating() -> None:
    assert pod_generate_name_with_index("job", 3) == "job-3-"
    long = pod_generate_name_with_index("j" * 70, 12)
    assert len(long) == 58
    assert long.endswith("-12-")


def test_index_env_comes_from_the_label() -> None:
    spec: dict[str, Any] = {
        "containers": [{"name": "a"}, {"name": "b", "env": [{"name": "JOB_COMPLETION_INDEX", "value": "x"}]}]
    }
    out = add_completion_index_env(spec)
    assert out["containers"][0]["env"] == [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"}},
        }
    ]
    assert out["containers"][1]["env"] == [{"name": "JOB_COMPLETION_INDEX", "value": "x"}]
    assert "env" not in spec["containers"][0]
