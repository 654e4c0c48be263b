"""Copies in the write path: `json_copy` is an exact, unshared copy, and the patch functions'
`in_place` mode gives the same result as the copying mode without ever sharing the patch."""

from __future__ import annotations

import datetime
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import schemas
from controlplane.api.patch import json_patch, merge_patch, strategic
from controlplane.api.patch._smp_json import deep_copy, json_bytes, json_copy

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


def containers(value: Any) -> list[int]:
    """ids of every dict and list inside `value`, itself included."""
    out: list[int] = []
    if isinstance(value, dict):
        out.append(id(value))
        for v in value.values():
            out.extend(containers(v))
    elif isinstance(value, list):
        out.append(id(value))
        for v in value:
            out.extend(containers(v))
    return out


def typed(value: Any) -> Any:
    """`value` with each scalar's type beside it: equal only when the types agree too."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


@given(json_values)
def test_json_copy_is_exact_and_shares_nothing(value: Any) -> None:
    copied = json_copy(value)
    assert typed(copied) == typed(value)
    if isinstance(value, dict):
        assert list(copied) == list(value)  # key order kept
    assert not set(containers(copied)) & set(containers(value))


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)},  # YAML timestamps
        {"big": 2**70},
        {"nan": math.inf, "n": None},
        {1: "int key"},
        {"raw": b"bytes"},
        {"set": {1, 2}},
    ],
)
def test_what_orjson_cannot_reproduce_is_copied_as_copy_deepcopy_would(value: dict[Any, Any]) -> None:
    assert json_bytes(value) is None
    copied = json_copy(value)
    assert copied == value
    assert copied is not value
    assert [type(v) for v in copied.values()] == [type(v) for v in value.values()]
    assert not {id(v) for v in copied.values() if isinstance(v, set)} & {id(v) for v in value.values()}


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "labels": {"a": "1"}, "resourceVersion": "5"},
    "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
}

PATCHES: list[tuple[str, Any]] = [
    ("strategic", {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    ("strategic", {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 81}]}]}}),
    ("merge", {"metadata": {"labels": {"a": None, "b": {"x": [1]}}}, "status": {"extra": [{"k": "v"}]}}),
    ("json", [{"op": "add", "path": "/metadata/labels/b", "value": {"deep": ["v"]}}]),
    ("json", [{"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"}]),
]


def _apply(kind: str, doc: dict[str, Any], patch: Any, *, in_place: bool) -> dict[str, Any]:
    if kind == "strategic":
        schema = schemas.definition_for("", "v1", "Pod")
        return strategic.apply(doc, patch, schema, in_place=in_place)
    if kind == "merge":
        return merge_patch.apply(doc, patch, in_place=in_place)
    return json_patch.apply(doc, patch, in_place=in_place)


@pytest.mark.parametrize(("kind", "patch"), PATCHES)
def test_in_place_patching_matches_copying_and_never_shares_the_patch(kind: str, patch: Any) -> None:
    pristine_patch = orjson.dumps(patch)
    copied_result = _apply(kind, deep_copy(POD), patch, in_place=False)
    doc = deep_copy(POD)
    in_place_result = _apply(kind, doc, patch, in_place=True)
    assert orjson.dumps(in_place_result) == orjson.dumps(copied_result)
    assert orjson.dumps(patch) == pristine_patch
    # The result may be written to later (defaulting, admission): the patch must stay as sent,
    # since a retried write applies it again.
    assert not set(containers(in_place_result)) & set(containers(patch))
    again = _apply(kind, deep_copy(POD), patch, in_place=True)
    assert orjson.dumps(again) == orjson.dumps(copied_result)


@pytest.mark.parametrize(("kind", "patch"), PATCHES)
def test_copying_mode_leaves_the_document_alone(kind: str, patch: Any) -> None:
    doc = deep_copy(POD)
    _apply(kind, doc, patch, in_place=False)
    assert orjson.dumps(doc) == orjson.dumps(POD)
