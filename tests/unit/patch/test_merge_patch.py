"""JSON merge patch (RFC 7386): the RFC's examples, errors, and the diff round-trip property."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.patch import merge_patch


# RFC 7386 appendix A, restricted to object targets and object patches (what the API accepts).
@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_rfc_examples(target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge_patch.apply(target, patch) == expected


def test_kopf_peering_keepalive_null_deletes_a_peer() -> None:
    doc = {"status": {"peer-a": {"lastseen": "t1"}, "peer-b": {"lastseen": "t0"}}}
    assert merge_patch.apply(doc, {"status": {"peer-b": None}}) == {"status": {"peer-a": {"lastseen": "t1"}}}


def test_nulls_inside_new_values_are_pruned_but_list_elements_kept() -> None:
    result = merge_patch.apply({}, {"a": [{"x": None, "y": 1}, None]})
    assert result == {"a": [{"y": 1}, None]}


def test_input_is_not_mutated() -> None:
    doc = {"a": {"b": [1]}, "c": 1}
    patch = {"a": {"b": [2], "d": {"e": 1}}, "c": None}
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    result = merge_patch.apply(doc, patch)
    result["a"]["d"]["e"] = 2
    assert (doc, patch) == (before_doc, before_patch)


@pytest.mark.parametrize("patch", [None, [], [{"a": 1}], "x", 1, True])
def test_non_object_body_is_400(patch: Any) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        merge_patch.apply({"a": 1}, patch)
    assert caught.value.message == "Invalid JSON Patch"
    assert caught.value.code == 400


# --- property: applying a computed diff gives the target ---------------------------------


def _canonical(value: Any) -> bytes:
    """Type-strict JSON identity (so 1, 1.0 and true differ)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def create_merge_patch(original: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch taking `original` to `target` (neither may contain nulls)."""
    patch: dict[str, Any] = {}
    for key, value in target.items():
        if key not in original:
            patch[key] = value
        elif isinstance(value, dict) and isinstance(original[key], dict):
            nested = create_merge_patch(original[key], value)
            if nested:
                patch[key] = nested
        elif _canonical(value) != _canonical(original[key]):
            patch[key] = value
    for key in original:
        if key not in target:
            patch[key] = None
    return patch


_keys = st.text(alphabet="abc", min_size=1, max_size=2)
_scalars = (
    st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=2)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)
_docs = st.dictionaries(_keys, _json, max_size=4)


@settings(max_examples=200, deadline=None)
@given(original=_docs, target=_docs)
def test_applying_the_diff_yields_the_target(original: dict[str, Any], target: dict[str, Any]) -> None:
    patch = create_merge_patch(original, target)
    assert _canonical(merge_patch.apply(original, patch)) == _canonical(target)


@settings(max_examples=100, deadline=None)
@given(doc=_docs)
def test_empty_patch_is_identity(doc: dict[str, Any]) -> None:
    assert _canonical(merge_patch.apply(doc, {})) == _canonical(doc)
