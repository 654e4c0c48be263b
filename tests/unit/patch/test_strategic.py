"""Strategic merge patch: cases from upstream's strategicpatch tests (on an equivalent of their
MergeItem test type), the real built-in schemas kubectl patches against, and properties."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors, schemas
from controlplane.api.patch import merge_patch, strategic


def _merge_item_schema() -> dict[str, Any]:
    """upstream's MergeItem / RetainKeysMergeItem test structs, as OpenAPI."""
    item: dict[str, Any] = {"type": "object", "properties": {}}
    retain: dict[str, Any] = {"type": "object", "properties": {}}
    merging_list = {
        "type": "array",
        "items": item,
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "name",
    }
    merging_int_list = {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"}
    scalars = {k: {"type": "string"} for k in ("name", "value", "other")}
    simple_map = {"type": "object", "additionalProperties": {"type": "string"}}
    retain["properties"] = {
        **scalars,
        "simpleMap": simple_map,
        "mergingIntList": merging_int_list,
        "mergingList": merging_list,
        "nonMergingList": {"type": "array", "items": item},
    }
    item["properties"] = {
        **scalars,
        "mergingList": merging_list,
        "nonMergingList": {"type": "array", "items": item},
        "mergingIntList": merging_int_list,
        "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
        "simpleMap": simple_map,
        "replacingItem": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
        "retainKeysMap": {**retain, "x-kubernetes-patch-strategy": "retainKeys"},
        "retainKeysMergingList": {**merging_list, "x-kubernetes-patch-strategy": "merge,retainKeys"},
    }
    return item


MERGE_ITEM = _merge_item_schema()

# (description, current, patch, result); the two-way and three-way cases of upstream's
# patch_test.go, each applying its patch to the live object.
UPSTREAM_CASES = [
    (
        "unique scalars when merging lists",
        {"mergingIntList": [1, 2]},
        {"mergingIntList": [2, 3]},
        {"mergingIntList": [1, 2, 3]},
    ),
    (
        "delete map from nested map",
        {"simpleMap": {"key1": "1", "key2": "1"}},
        {"simpleMap": {"$patch": "delete"}},
        {"simpleMap": {}},
    ),
    (
        "delete all items from merging list",
        {"mergingList": [{"name": "1"}, {"name": "2"}]},
        {"mergingList": [{"$patch": "replace"}]},
        {"mergingList": []},
    ),
    ("merge empty merging lists", {"mergingList": []}, {"mergingList": []}, {"mergingList": []}),
    ("delete all keys from map", {"name": "1", "value": "1"}, {"$patch": "replace"}, {}),
    (
        "add key and delete all keys from map",
        {"name": "1", "value": "1"},
        {"other": "a", "$patch": "replace"},
        {"other": "a"},
    ),
    (
        "delete all duplicate entries in a merging list",
        {
            "mergingList": [
                {"name": "1"},
                {"name": "1"},
                {"name": "2", "value": "a"},
                {"name": "3"},
                {"name": "3"},
            ]
        },
        {"mergingList": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]},
        {"mergingList": [{"name": "2", "value": "a"}]},
    ),
    (
        "retainKeys map can add a field when no retainKeys directive present",
        {"retainKeysMap": {"name": "foo"}},
        {"retainKeysMap": {"value": "bar"}},
        {"retainKeysMap": {"name": "foo", "value": "bar"}},
    ),
    (
        "retainKeys map can delete a field when no retainKeys directive present",
        {"retainKeysMap": {"name": "foo", "value": "a"}},
        {"retainKeysMap": {"value": None}},
        {"retainKeysMap": {"name": "foo"}},
    ),
    (
        "retainKeys list can change a field when no retainKeys directive present",
        {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]},
        {"retainKeysMergingList": [{"name": "foo", "value": "b"}]},
        {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "b"}]},
    ),
    (
        "preserve the order from the patch in a merging list",
        {"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]},
        {
            "mergingList": [
                {"name": "3", "value": "c"},
                {"name": "1", "value": "a"},
                {"name": "2", "other": "x"},
            ]
        },
        {
            "mergingList": [
                {"name": "3", "value": "c"},
                {"name": "1", "value": "a"},
                {"name": "2", "value": "b", "other": "x"},
            ]
        },
    ),
    (
        "preserve the order from the patch in a merging list 2",
        {"mergingList": [{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]},
        {"mergingList": [{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]},
        {
            "mergingList": [
                {"name": "2", "value": "b"},
                {"name": "3", "value": "c"},
                {"name": "1", "value": "a"},
            ]
        },
    ),
    (
        "preserve the order from the patch in a merging int list",
        {"mergingIntList": [1, 2, 3]},
        {"mergingIntList": [3, 1]},
        {"mergingIntList": [2, 3, 1]},
    ),
    (
        "$setElementOrder contains item that is not present in the list to be merged",
        {"mergingList": [{"name": "1"}, {"name": "3"}]},
        {
            "$setElementOrder/mergingList": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
        },
        {"mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]},
    ),
    (
        "$setElementOrder contains item that is not present in the int list to be merged",
        {"mergingIntList": [1, 3]},
        {"$setElementOrder/mergingIntList": [3, 2, 1]},
        {"mergingIntList": [3, 1]},
    ),
    (
        "$deleteFromPrimitiveList of nonexistent item should not add the item",
        {"mergingIntList": [1, 2]},
        {"$deleteFromPrimitiveList/mergingIntList": [3]},
        {"mergingIntList": [1, 2]},
    ),
    (
        "$deleteFromPrimitiveList on nonexistent primitive list should not add the list",
        {"foo": ["bar"]},
        {"$deleteFromPrimitiveList/mergingIntList": [3]},
        {"foo": ["bar"]},
    ),
    (
        "$deleteFromPrimitiveList should delete item from a list with merge patch strategy",
        {"mergingIntList": [1, 2, 3]},
        {"$deleteFromPrimitiveList/mergingIntList": [2]},
        {"mergingIntList": [1, 3]},
    ),
    (
        "$deleteFromPrimitiveList should delete item from a list without merge patch strategy",
        {"nonMergingIntList": [1, 2, 3]},
        {"$deleteFromPrimitiveList/nonMergingIntList": [2]},
        {"nonMergingIntList": [1, 3]},
    ),
    (
        "nested patch merge with empty list (three-way)",
        {"name": "hi", "mergingList": [{"name": "hello2"}]},
        {
            "$setElementOrder/mergingList": [{"name": "hello"}, {"name": "doesntexist"}],
            "mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}],
        },
        {"name": "hi", "mergingList": [{"name": "hello"}, {"name": "hello2"}]},
    ),
    (
        "delete all duplicate items in lists of scalars (three-way)",
        {"mergingIntList": [1, 2, 3, 3, 4]},
        {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
        {"mergingIntList": [1, 2, 4]},
    ),
    (
        "merge lists of maps (three-way)",
        {"mergingList": [{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}]},
        {
            "$setElementOrder/mergingList": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
            "mergingList": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}],
        },
        {
            "mergingList": [
                {"name": "4", "value": "4"},
                {"name": "1", "other": "a"},
                {"name": "2", "value": "2", "other": "b"},
                {"name": "3", "value": "3"},
            ]
        },
    ),
    (
        "defined null values should propagate overwrite current fields",
        {"name": "a", "other": "a"},
        {"name": "1", "value": "1", "other": None},
        {"name": "1", "value": "1"},
    ),
    (
        "replacing strategy replaces a map",
        {"replacingItem": {"a": 1, "b": 2}},
        {"replacingItem": {"c": 3}},
        {"replacingItem": {"c": 3}},
    ),
    (
        "non-merging list of maps is replaced",
        {"nonMergingList": [{"name": "1", "value": "a"}]},
        {"nonMergingList": [{"name": "2"}]},
        {"nonMergingList": [{"name": "2"}]},
    ),
]


@pytest.mark.parametrize(
    ("description", "current", "patch", "result"), UPSTREAM_CASES, ids=[c[0] for c in UPSTREAM_CASES]
)
def test_upstream_cases(
    description: str, current: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert strategic.apply(current, patch, MERGE_ITEM) == result


def test_retain_keys_directive_clears_unlisted_fields() -> None:
    current = {"retainKeysMap": {"name": "foo", "value": "a", "other": "b"}}
    patch = {"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "c"}}
    assert strategic.apply(current, patch, MERGE_ITEM) == {"retainKeysMap": {"name": "foo", "value": "c"}}


@pytest.mark.parametrize(
    ("current", "patch", "message"),
    [
        (
            {"mergingList": [{"name": "1"}, {"name": "3"}, {"name": "2"}]},
            {
                "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
            },
            "doesn't match",
        ),
        (
            {"mergingIntList": [1, 3, 2]},
            {"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]},
            "doesn't match",
        ),
        (
            {"mergingList": [{"name": "1", "value": "a"}]},
            {"mergingList": [{"value": "b"}]},
            "map: map[value:b] does not contain declared merge key: name",
        ),
        (
            {"retainKeysMap": {"name": "foo"}},
            {"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}},
            "invalid patch format of retainKeys",
        ),
        (
            {"retainKeysMap": {"name": "foo"}},
            {"retainKeysMap": {"$retainKeys": "name"}},
            "invalid patch format of retainKeys",
        ),
        (
            {"mergingIntList": [1]},
            {"$deleteFromPrimitiveListmergingIntList": [1]},
            "invalid patch format of primitive list",
        ),
        (
            {"name": "a"},
            {"$patch": "frobnicate"},
            "unknown patch type: frobnicate in map: map[$patch:frobnicate]",
        ),
        (
            {"mergingList": [{"name": "1"}]},
            {"mergingList": [{"name": "1", "$patch": "frobnicate"}]},
            "unknown patch type: frobnicate in map: map[$patch:frobnicate name:1]",
        ),
        (
            {"mergingIntList": [1]},
            {"mergingIntList": ["a"]},
            "list element types are not identical: [[1] [a]]",
        ),
    ],
)
def test_bad_patches_are_400(current: dict[str, Any], patch: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        strategic.apply(current, patch, MERGE_ITEM)
    assert message in caught.value.message
    assert caught.value.code == 400


def test_list_of_lists_is_422() -> None:
    with pytest.raises(errors.Invalid) as caught:
        strategic.apply({"mergingIntList": [[1]]}, {"mergingIntList": [[2]]}, MERGE_ITEM)
    assert caught.value.code == 422
    assert caught.value.message == "the server rejected our request due to an error in our request"


def test_non_object_body_is_400() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        strategic.apply({}, [{"op": "add"}], MERGE_ITEM)  # type: ignore[arg-type]
    assert (
        caught.value.message == "json: cannot unmarshal array into Go value of type map[string]interface {}"
    )


def test_explicit_merge_directive_merges() -> None:
    current = {"simpleMap": {"a": "1"}, "mergingList": [{"name": "1", "value": "a"}]}
    patch = {
        "simpleMap": {"$patch": "merge", "b": "2"},
        "mergingList": [{"name": "1", "other": "o", "$patch": "merge"}],
    }
    assert strategic.apply(current, patch, MERGE_ITEM) == {
        "simpleMap": {"a": "1", "b": "2"},
        "mergingList": [{"name": "1", "value": "a", "other": "o"}],
    }


def test_directives_never_reach_new_values() -> None:
    patch = {
        "simpleMap": {"a": None, "b": "1"},
        "mergingList": [{"name": "1", "$setElementOrder/mergingList": [], "value": None}],
        "other": {"$patch": "delete"},
    }
    assert strategic.apply({}, patch, MERGE_ITEM) == {"simpleMap": {"b": "1"}, "mergingList": [{"name": "1"}]}


# --- the built-in schemas -------------------------------------------------------------------

POD = schemas.definition_for("", "v1", "Pod")
SERVICE = schemas.definition_for("", "v1", "Service")
DEPLOYMENT = schemas.definition_for("apps", "v1", "Deployment")


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "a"}, "finalizers": ["x/one", "x/two"]},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
                {"name": "d", "image": "nginx"},
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    }


def test_service_patch_adding_a_port_keeps_both() -> None:
    svc = {"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "type": "ClusterIP"}}
    result = strategic.apply(svc, {"spec": {"ports": [{"port": 81, "targetPort": 8081}]}}, SERVICE)
    ports = sorted(p["port"] for p in result["spec"]["ports"])
    assert ports == [80, 81]
    assert result["spec"]["type"] == "ClusterIP"


def test_kubectl_edit_patch_updates_one_container() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
            "containers": [{"image": "busybox2", "name": "c"}],
        }
    }
    result = strategic.apply(_pod(), patch, POD)
    assert result["spec"]["containers"] == [
        {"name": "c", "image": "busybox2", "env": [{"name": "A", "value": "1"}]},
        {"name": "d", "image": "nginx"},
    ]


def test_container_merge_by_name_and_nested_env_merge() -> None:
    patch = {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}
    result = strategic.apply(_pod(), patch, POD)
    env = result["spec"]["containers"][0]["env"]
    assert {e["name"]: e["value"] for e in env} == {"A": "1", "B": "2"}
    assert [c["name"] for c in result["spec"]["containers"]] == ["c", "d"]


def test_container_delete_and_replace_directives() -> None:
    deleted = strategic.apply(_pod(), {"spec": {"containers": [{"name": "d", "$patch": "delete"}]}}, POD)
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["c"]
    replaced = strategic.apply(
        _pod(), {"spec": {"containers": [{"name": "z", "image": "i"}, {"$patch": "replace"}]}}, POD
    )
    assert replaced["spec"]["containers"] == [{"name": "z", "image": "i"}]


def test_map_replace_directive() -> None:
    result = strategic.apply(_pod(), {"metadata": {"labels": {"$patch": "replace", "new": "1"}}}, POD)
    assert result["metadata"]["labels"] == {"new": "1"}


def test_finalizers_merge_as_a_set() -> None:
    result = strategic.apply(_pod(), {"metadata": {"finalizers": ["x/two", "x/three"]}}, POD)
    assert sorted(result["metadata"]["finalizers"]) == ["x/one", "x/three", "x/two"]


def test_finalizer_removed_with_delete_from_primitive_list() -> None:
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["x/one"],
            "$setElementOrder/finalizers": ["x/two"],
        }
    }
    assert strategic.apply(_pod(), patch, POD)["metadata"]["finalizers"] == ["x/two"]


def test_cordon_sets_a_scalar() -> None:
    node = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"}}
    result = strategic.apply(
        node, {"spec": {"unschedulable": True}}, schemas.definition_for("", "v1", "Node")
    )
    assert result["spec"] == {"podCIDR": "10.0.0.0/24", "unschedulable": True}


def test_kubectl_apply_switches_deployment_strategy_with_retain_keys() -> None:
    deploy = {
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        }
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    result = strategic.apply(deploy, patch, DEPLOYMENT)
    assert result["spec"] == {"replicas": 1, "strategy": {"type": "Recreate"}}


def test_volumes_retain_keys_on_list_elements() -> None:
    patch = {
        "spec": {
            "volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}]
        }
    }
    result = strategic.apply(_pod(), patch, POD)
    assert result["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]


def test_input_is_not_mutated() -> None:
    pod = _pod()
    patch = {"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d", "$patch": "delete"}]}}
    before_pod, before_patch = copy.deepcopy(pod), copy.deepcopy(patch)
    strategic.apply(pod, patch, POD)
    assert (pod, patch) == (before_pod, before_patch)


# --- properties -------------------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


_keys = st.text(alphabet="abc", min_size=1, max_size=2)
_scalars = st.booleans() | st.integers(-3, 3) | st.text(max_size=2)
_json = st.recursive(
    _scalars | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)
_docs = st.dictionaries(_keys, _values, max_size=4)
_patches = st.dictionaries(_keys, _json, max_size=4)


@settings(max_examples=200, deadline=None)
@given(doc=_docs, patch=_patches)
def test_without_schema_it_agrees_with_merge_patch(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    assert _canonical(strategic.apply(doc, patch, None)) == _canonical(merge_patch.apply(doc, patch))


@settings(max_examples=100, deadline=None)
@given(doc=_docs)
def test_empty_patch_is_identity(doc: dict[str, Any]) -> None:
    for schema in (None, POD, MERGE_ITEM):
        assert _canonical(strategic.apply(doc, {}, schema)) == _canonical(doc)


_names = st.sampled_from(["a", "b", "c", "d", "e"])
_containers = st.lists(
    st.fixed_dictionaries(
        {"name": _names},
        optional={
            "image": st.sampled_from(["i1", "i2"]),
            "command": st.lists(st.text(max_size=2), max_size=2),
        },
    ),
    max_size=5,
    unique_by=lambda c: c["name"],
)


@settings(max_examples=150, deadline=None)
@given(live=_containers, patched=_containers)
def test_merging_containers_by_name_never_duplicates(
    live: list[dict[str, Any]], patched: list[dict[str, Any]]
) -> None:
    result = strategic.apply({"spec": {"containers": live}}, {"spec": {"containers": patched}}, POD)
    names = [c["name"] for c in result["spec"]["containers"]]
    assert len(names) == len(set(names))
    assert set(names) == {c["name"] for c in live} | {c["name"] for c in patched}
    for container in patched:
        merged = next(c for c in result["spec"]["containers"] if c["name"] == container["name"])
        assert all(merged[k] == v for k, v in container.items())
