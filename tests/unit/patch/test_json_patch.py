"""JSON patch (RFC 6902): examples, upstream's error mapping, and round-trip properties."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.patch import json_patch

UNPROCESSABLE = "the server rejected our request due to an error in our request"


def _doc() -> dict[str, Any]:
    return {
        "metadata": {"name": "kex1", "resourceVersion": "101", "labels": {"a/b": "1", "m~n": "2"}},
        "spec": {"items": ["x", "y"]},
    }


@pytest.mark.parametrize(
    ("patch", "expected_subset"),
    [
        ([{"op": "add", "path": "/metadata/finalizers", "value": ["f"]}], {"finalizers": ["f"]}),
        ([{"op": "replace", "path": "/metadata/name", "value": "z"}], {"name": "z"}),
        ([{"op": "remove", "path": "/metadata/labels/a~1b"}], {"labels": {"m~n": "2"}}),
        ([{"op": "remove", "path": "/metadata/labels/m~0n"}], {"labels": {"a/b": "1"}}),
        (
            [{"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"}],
            {"generateName": "kex1"},
        ),
        ([{"op": "move", "from": "/metadata/name", "path": "/metadata/alias"}], {"alias": "kex1"}),
    ],
)
def test_operations_on_maps(patch: list[dict[str, Any]], expected_subset: dict[str, Any]) -> None:
    result = json_patch.apply(_doc(), patch)
    for key, value in expected_subset.items():
        assert result["metadata"][key] == value


def test_move_removes_the_source() -> None:
    result = json_patch.apply(_doc(), [{"op": "move", "from": "/metadata/name", "path": "/spec/name"}])
    assert "name" not in result["metadata"]
    assert result["spec"]["name"] == "kex1"


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ({"op": "add", "path": "/spec/items/-", "value": "z"}, ["x", "y", "z"]),
        ({"op": "add", "path": "/spec/items/0", "value": "z"}, ["z", "x", "y"]),
        ({"op": "add", "path": "/spec/items/2", "value": "z"}, ["x", "y", "z"]),
        ({"op": "remove", "path": "/spec/items/0"}, ["y"]),
        ({"op": "replace", "path": "/spec/items/1", "value": "z"}, ["x", "z"]),
    ],
)
def test_operations_on_lists(op: dict[str, Any], expected: list[str]) -> None:
    assert json_patch.apply(_doc(), [op])["spec"]["items"] == expected


def test_kopf_finalizer_sequence() -> None:
    doc = _doc()
    added = json_patch.apply(
        doc,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "101"},
            {"op": "add", "path": "/metadata/finalizers", "value": ["kopf.zalando.org/KopfFinalizerMarker"]},
        ],
    )
    assert added["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    removed = json_patch.apply(
        added,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "101"},
            {"op": "remove", "path": "/metadata/finalizers"},
        ],
    )
    assert "finalizers" not in removed["metadata"]


def test_input_is_never_mutated_even_on_failure() -> None:
    doc = _doc()
    before = copy.deepcopy(doc)
    value = {"k": ["v"]}
    result = json_patch.apply(doc, [{"op": "add", "path": "/spec/new", "value": value}])
    result["spec"]["new"]["k"].append("w")
    assert value == {"k": ["v"]}
    with pytest.raises(errors.Invalid):
        json_patch.apply(
            doc,
            [
                {"op": "add", "path": "/spec/new", "value": 1},
                {"op": "test", "path": "/metadata/name", "value": "other"},
            ],
        )
    assert doc == before


def test_failed_test_is_422_shaped_like_upstream() -> None:
    with pytest.raises(errors.StatusError) as caught:
        json_patch.apply(_doc(), [{"op": "test", "path": "/metadata/resourceVersion", "value": "100"}])
    assert caught.value.to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": UNPROCESSABLE,
        "reason": "Invalid",
        "details": {
            "causes": [
                {
                    "reason": "UnexpectedServerResponse",
                    "message": "testing value /metadata/resourceVersion failed",
                }
            ]
        },
        "code": 422,
    }
    assert isinstance(caught.value.__cause__, json_patch.JSONPatchError)


@pytest.mark.parametrize(
    "op",
    [
        {"op": "remove", "path": "/metadata/missing"},
        {"op": "replace", "path": "/metadata/missing", "value": 1},
        {"op": "add", "path": "/missing/child", "value": 1},
        {"op": "add", "path": "/spec/items/3", "value": 1},
        {"op": "add", "path": "/spec/items/01", "value": 1},
        {"op": "remove", "path": "/spec/items/-"},
        {"op": "test", "path": "/metadata/missing", "value": None},
        {"op": "test", "path": "/spec/items/0", "value": True},
        {"op": "move", "from": "/spec", "path": "/spec/child"},
        {"op": "copy", "from": "/nothing", "path": "/x"},
        {"op": "add", "path": "metadata", "value": 1},
        {"op": "add", "path": "/metadata/name/x", "value": 1},
        {"op": "add", "path": "/x~2", "value": 1},
        {"op": "add", "path": "/x"},
        {"op": "frobnicate", "path": "/x"},
        {"path": "/x"},
        {"op": "add", "value": 1},
        {"op": "replace", "path": "", "value": [1]},
    ],
)
def test_apply_failures_are_422(op: dict[str, Any]) -> None:
    with pytest.raises(errors.Invalid) as caught:
        json_patch.apply(_doc(), [op])
    assert caught.value.code == 422
    assert caught.value.message == UNPROCESSABLE


def test_numbers_compare_by_value_in_test() -> None:
    doc = {"n": 1, "b": True}
    assert json_patch.apply(doc, [{"op": "test", "path": "/n", "value": 1.0}]) == doc
    with pytest.raises(errors.Invalid):
        json_patch.apply(doc, [{"op": "test", "path": "/b", "value": 1}])


def test_whole_document_replace() -> None:
    assert json_patch.apply(_doc(), [{"op": "replace", "path": "", "value": {"a": 1}}]) == {"a": 1}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        ("add", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
        ([["op"]], "json: cannot unmarshal array into Go value of type jsonpatch.Operation"),
        ([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    ],
)
def test_undecodable_bodies_are_400(patch: Any, message: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        json_patch.apply(_doc(), patch)
    assert caught.value.message == message
    assert caught.value.code == 400


def test_null_body_is_an_empty_patch_and_null_op_fails() -> None:
    assert json_patch.apply(_doc(), None) == _doc()
    with pytest.raises(errors.Invalid):
        json_patch.apply(_doc(), [None])


def test_too_many_operations_is_413() -> None:
    patch = [{"op": "test", "path": "/spec", "value": {}}] * (json_patch.MAX_OPERATIONS + 1)
    with pytest.raises(errors.RequestEntityTooLarge) as caught:
        json_patch.apply(_doc(), patch)
    assert caught.value.message == (
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    )


# --- properties ---------------------------------------------------------------------------

_keys = st.text(alphabet="ab/~c", min_size=1, max_size=4)
_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=15,
)
_docs = st.dictionaries(_keys, _json, max_size=5)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _locations(doc: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (pointer, value) pair inside `doc`, the document itself included."""
    out: list[tuple[str, Any]] = [(path, doc)]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_locations(value, f"{path}/{_escape(key)}"))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.extend(_locations(value, f"{path}/{index}"))
    return out


def _containers(doc: Any) -> list[tuple[str, Any]]:
    return [(p, v) for p, v in _locations(doc) if isinstance(v, dict | list)]


@settings(max_examples=150, deadline=None)
@given(doc=_docs, value=_json, data=st.data())
def test_add_then_remove_round_trips(doc: dict[str, Any], value: Any, data: st.DataObject) -> None:
    pointer, container = data.draw(st.sampled_from(_containers(doc)))
    if isinstance(container, dict):
        key = data.draw(_keys.filter(lambda k: k not in container))
        target = f"{pointer}/{_escape(key)}"
    else:
        target = f"{pointer}/{data.draw(st.integers(0, len(container)))}"
    added = json_patch.apply(doc, [{"op": "add", "path": target, "value": value}])
    assert json_patch.apply(added, [{"op": "test", "path": target, "value": value}]) == added
    assert json_patch.apply(added, [{"op": "remove", "path": target}]) == doc


@settings(max_examples=150, deadline=None)
@given(doc=_docs, data=st.data())
def test_a_failed_test_always_gives_422(doc: dict[str, Any], data: st.DataObject) -> None:
    pointer, actual = data.draw(st.sampled_from(_locations(doc)))
    # Python's == is looser than JSON equality (True == 1), so only the strictly different count.
    wrong = data.draw(_json.filter(lambda v: v != actual or type(v) is not type(actual)))
    with pytest.raises(errors.StatusError) as caught:
        json_patch.apply(doc, [{"op": "test", "path": pointer, "value": wrong}])
    assert (caught.value.code, caught.value.reason) == (422, "Invalid")
