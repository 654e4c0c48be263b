"""FieldsV1 encoding, field sets of objects, and managedFields after non-apply writes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import schemas
from controlplane.api.patch import managed_fields as mf
from controlplane.api.patch.fieldpath import (
    FieldSet,
    Path,
    field,
    from_fields_v1,
    index_element,
    iterate_sorted,
    key_element,
    path_string,
    recursive_difference,
    to_fields_v1,
    value_element,
)

DEPLOYMENT = schemas.definition_for("apps", "v1", "Deployment")
CONFIGMAP = schemas.definition_for("", "v1", "ConfigMap")
T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:00:01Z"

# As `kubectl get deploy -o json` shows an applier's entry.
KUBECTL_FIELDS_V1 = (
    '{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:template":{"f:spec":'
    '{"f:containers":{"k:{\\"name\\":\\"nginx\\"}":{".":{},"f:image":{},"f:name":{}}}}}}}'
)


def P(*parts: str) -> Path:
    return tuple(field(p) for p in parts)


def test_decode_kubectl_example() -> None:
    decoded = from_fields_v1(orjson.loads(KUBECTL_FIELDS_V1))
    container = (*P("spec", "template", "spec", "containers"), key_element({"name": "nginx"}))
    assert decoded == {
        P("metadata", "labels"),
        P("metadata", "labels", "app"),
        container,
        (*container, field("image")),
        (*container, field("name")),
    }
    # Nodes that only lead to members are not members themselves.
    assert P("spec") not in decoded
    assert P("spec", "template", "spec", "containers") not in decoded


def test_encode_kubectl_example_byte_for_byte() -> None:
    decoded = from_fields_v1(orjson.loads(KUBECTL_FIELDS_V1))
    assert orjson.dumps(to_fields_v1(decoded)).decode() == KUBECTL_FIELDS_V1


def test_encode_keys_values_and_indices() -> None:
    ports = P("spec", "ports")
    fields = {
        (*ports, key_element({"protocol": "TCP", "port": 80})),
        (*P("metadata", "finalizers"), value_element("example.com/x")),
        (*P("spec", "args"), index_element(2)),
    }
    encoded = to_fields_v1(fields)
    assert encoded == {
        "f:metadata": {"f:finalizers": {'v:"example.com/x"': {}}},
        "f:spec": {"f:args": {"i:2": {}}, "f:ports": {'k:{"port":80,"protocol":"TCP"}': {}}},
    }
    assert from_fields_v1(encoded) == fields


def test_key_json_is_canonical_and_go_escaped() -> None:
    # Key order and number spelling do not matter; HTML characters are escaped as Go does.
    a = from_fields_v1({'k:{"protocol":"TCP","port":80.0}': {}})
    b = from_fields_v1({'k:{"port":80,"protocol":"TCP"}': {}})
    assert a == b
    assert to_fields_v1({(key_element({"name": "a&b<c>"}),)}) == {'k:{"name":"a\\u0026b\\u003cc\\u003e"}': {}}


@pytest.mark.parametrize(
    "bad",
    [{"x:y": {}}, {"noprefix": {}}, {"k:not json": {}}, {"k:[]": {}}, {"i:x": {}}, {"f:a": 1}],
)
def test_malformed_fields_v1_raises(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        from_fields_v1(bad)


def test_path_strings_match_upstream() -> None:
    container = (*P("spec", "containers"), key_element({"name": "nginx"}), field("image"))
    assert path_string(container) == '.spec.containers[name="nginx"].image'
    port = (*P("spec", "ports"), key_element({"protocol": "TCP", "port": 80}))
    assert path_string(port) == '.spec.ports[port=80,protocol="TCP"]'
    assert path_string((*P("metadata", "finalizers"), value_element("a"))) == '.metadata.finalizers[="a"]'
    assert path_string((*P("spec", "args"), index_element(3))) == ".spec.args[3]"


def test_iterate_sorted_puts_members_before_children() -> None:
    paths = [P("spec", "a", "b"), P("spec", "z"), P("metadata", "labels", "x"), P("spec")]
    assert iterate_sorted(paths) == [
        P("spec"),
        P("metadata", "labels", "x"),
        P("spec", "z"),
        P("spec", "a", "b"),
    ]


def test_recursive_difference_drops_subtrees() -> None:
    fields = frozenset({P("status"), P("status", "phase"), P("spec", "x"), P("statusx")})
    assert recursive_difference(fields, frozenset({P("status")})) == {P("spec", "x"), P("statusx")}


# fields_of


def test_fields_of_typed_object_excludes_identity_metadata_and_status() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "d",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "5",
            "generation": 2,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"app": "x"},
            "finalizers": ["a/b"],
            "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1"}],
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}},
        "status": {"replicas": 1},
    }
    assert mf.fields_of(obj, DEPLOYMENT) == {
        P("metadata", "labels", "app"),
        (*P("metadata", "finalizers"), value_element("a/b")),
        P("spec", "replicas"),
        P("spec", "selector"),  # LabelSelector is an atomic struct
    }
    # Through the status subresource the spec is not owned instead.
    assert mf.fields_of(obj, DEPLOYMENT, subresource="status") == {
        P("metadata", "labels", "app"),
        (*P("metadata", "finalizers"), value_element("a/b")),
        P("status", "replicas"),
    }


def test_fields_of_schemaless_object_owns_map_entries_and_atomic_lists() -> None:
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "labels": {"a": "1"}},
        "spec": {"nested": {"x": 1}, "items": [1, 2]},
    }
    assert mf.fields_of(obj, None) == {
        P("metadata", "labels", "a"),
        P("spec", "nested"),
        P("spec", "nested", "x"),
        P("spec", "items"),
    }


# update


def _cm(data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", **meta},
        "data": data,
    }


def _update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str = T0, **kw: Any) -> Any:
    return mf.update(old, new, manager=manager, api_version="v1", schema=CONFIGMAP, now=now, **kw)


def _with(obj: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["managedFields"] = entries
    return out


def test_create_owns_every_field_with_update_entry() -> None:
    obj = _cm({"a": "1"}, labels={"app": "x"}, uid="u", resourceVersion="1")
    entries = _update(None, obj, "kubectl-create")
    assert entries == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
        }
    ]


def test_update_takes_changed_fields_and_drops_removed_ones() -> None:
    created = _with(_cm({"a": "1", "b": "2"}), _update(None, _cm({"a": "1", "b": "2"}), "creator"))
    changed = _with(_cm({"a": "9"}), created["metadata"]["managedFields"])
    entries = _update(created, changed, "editor", now=T1)
    by_manager = {e["manager"]: from_fields_v1(e["fieldsV1"]) for e in entries}
    assert by_manager == {"creator": {P("data")}, "editor": {P("data", "a")}}
    assert [e["manager"] for e in entries] == ["creator", "editor"]  # sorted by time


def test_noop_update_changes_nothing() -> None:
    created = _with(_cm({"a": "1"}), _update(None, _cm({"a": "1"}), "creator"))
    assert _update(created, copy.deepcopy(created), "someone", now=T1) == created["metadata"]["managedFields"]


def test_same_manager_accumulates_and_time_moves() -> None:
    created = _with(_cm({"a": "1"}), _update(None, _cm({"a": "1"}), "m"))
    entries = _update(created, _with(_cm({"a": "1", "b": "2"}), []), "m", now=T1)
    # `[]` resets ownership: only this write's changes remain.
    assert [from_fields_v1(e["fieldsV1"]) for e in entries] == [{P("data", "b")}]
    entries = _update(created, _cm({"a": "1", "b": "2"}), "m", now=T1)
    assert len(entries) == 1
    assert entries[0]["time"] == T1
    assert from_fields_v1(entries[0]["fieldsV1"]) == {P("data"), P("data", "a"), P("data", "b")}


def test_reset_with_single_empty_entry_and_no_change_clears_all() -> None:
    created = _with(_cm({"a": "1"}), _update(None, _cm({"a": "1"}), "m"))
    assert _update(created, _with(_cm({"a": "1"}), [{}]), "m", now=T1) == []


def test_client_supplied_entries_replace_live_ones() -> None:
    created = _with(_cm({"a": "1"}), _update(None, _cm({"a": "1"}), "m"))
    supplied = [
        {
            "manager": "other",
            "operation": "Apply",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}}},
        }
    ]
    entries = _update(created, _with(_cm({"a": "1"}), supplied), "m", now=T1)
    assert [(e["manager"], e["operation"]) for e in entries] == [("other", "Apply")]
    # Undecodable entries fall back to the live ones instead of wiping them.
    bogus = [{"manager": "x", "fieldsType": "FieldsV2"}]
    entries = _update(created, _with(_cm({"a": "1"}), bogus), "m", now=T1)
    assert entries == created["metadata"]["managedFields"]


def test_update_entries_are_per_api_version_and_subresource() -> None:
    created = _with(_cm({"a": "1"}), _update(None, _cm({"a": "1"}), "m"))
    newer = _with(_cm({"a": "2"}), created["metadata"]["managedFields"])
    entries = mf.update(created, newer, manager="m", api_version="v2", schema=CONFIGMAP, now=T1)
    assert sorted((e["apiVersion"], sorted(e["fieldsV1"]["f:data"])) for e in entries) == [
        ("v1", []),  # still owns `.data` itself, as a leaf member
        ("v2", ["f:a"]),
    ]
    status_write = mf.update(
        created,
        {**created, "status": {"phase": "x"}},
        manager="m",
        subresource="status",
        api_version="v1",
        schema=None,
        now=T1,
    )
    assert status_write[-1]["subresource"] == "status"
    assert status_write[-1]["fieldsV1"] == {"f:status": {".": {}, "f:phase": {}}}


def test_status_on_main_resource_is_not_owned_nor_disowned() -> None:
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n"}}
    new = {**old, "status": {"phase": "Running"}}
    pod = schemas.definition_for("", "v1", "Pod")
    entries = mf.update(old, new, manager="m", api_version="v1", schema=pod, now=T0)
    assert entries == []
    assert mf.update(old, new, manager="m", api_version="v1", schema=pod, now=T0, reset_fields=frozenset())


def test_empty_manager_is_unknown() -> None:
    assert _update(None, _cm({"a": "1"}), "")[0]["manager"] == "unknown"


# properties

_names = st.text(alphabet="abcxyz-./", min_size=1, max_size=4)
_scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans())
_elements = st.one_of(
    _names.map(field),
    st.dictionaries(_names, _scalars, min_size=1, max_size=2).map(key_element),
    _scalars.map(value_element),
    st.integers(0, 5).map(index_element),
)
_paths = st.lists(_elements, min_size=1, max_size=4).map(tuple)


@settings(deadline=None, max_examples=150)
@given(st.frozensets(_paths, max_size=12))
def test_fields_v1_round_trip(fields: FieldSet) -> None:
    encoded = to_fields_v1(fields)
    assert from_fields_v1(encoded) == fields
    # And the encoding itself survives JSON.
    assert from_fields_v1(orjson.loads(orjson.dumps(encoded))) == fields


# The create memo: a created object's field set is remembered by its JSON less the stripped
# metadata; whatever it remembers must be what the walk computes.

POD = schemas.definition_for("", "v1", "Pod")
_pod_names = st.text(alphabet="abc-", min_size=1, max_size=5)
_pod_scalars = st.none() | st.booleans() | st.integers(-3, 3) | _pod_names
_pod_values = st.recursive(
    _pod_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_pod_names, inner, max_size=3),
    max_leaves=8,
)
_containers = st.lists(
    st.fixed_dictionaries(
        {"name": _pod_names},
        optional={
            "image": _pod_names,
            "ports": st.lists(st.fixed_dictionaries({"containerPort": st.integers(1, 3)}), max_size=2),
            "env": st.lists(
                st.fixed_dictionaries({"name": _pod_names}, optional={"value": _pod_names}), max_size=2
            ),
            "resources": st.fixed_dictionaries(
                {}, optional={"requests": st.dictionaries(_pod_names, _pod_names)}
            ),
        },
    ),
    max_size=3,
)
_metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": _pod_names,
        "namespace": _pod_names,
        "uid": _pod_names,
        "generation": st.integers(0, 3),
        "creationTimestamp": st.just(T0),
        "generateName": _pod_names,
        "labels": st.dictionaries(_pod_names, _pod_names, max_size=2),
        "annotations": st.dictionaries(_pod_names, _pod_names, max_size=2),
        "finalizers": st.lists(_pod_names, max_size=2),
    },
)


def _pod_update(obj: dict[str, Any], manager: str = "m") -> Any:
    return mf.update(None, obj, manager=manager, api_version="v1", schema=POD, now=T0)


@settings(deadline=None, max_examples=300)
@given(
    meta=_metadata,
    other_meta=_metadata,
    containers=_containers,
    extra=st.dictionaries(st.sampled_from(["hostname", "nodeSelector", "bogus"]), _pod_values, max_size=2),
    status=st.none() | st.dictionaries(_pod_names, _pod_values, max_size=2),
)
def test_remembered_create_field_sets_are_what_the_walk_computes(
    meta: dict[str, Any],
    other_meta: dict[str, Any],
    containers: list[dict[str, Any]],
    extra: dict[str, Any],
    status: dict[str, Any] | None,
) -> None:
    def make(metadata: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": copy.deepcopy(metadata),
            "spec": {"containers": copy.deepcopy(containers), **copy.deepcopy(extra)},
        }
        if status is not None:
            obj["status"] = copy.deepcopy(status)
        return obj

    first, second = make(meta), make(other_meta)
    mf._CREATED_MEMO.clear()
    mf._WHOLE_MEMO.clear()
    fresh_second = _pod_update(second)
    mf._CREATED_MEMO.clear()
    mf._WHOLE_MEMO.clear()
    fresh_first = _pod_update(first)
    # Now remembered from `first`: `second` may hit (same stripped form) or the member memo.
    assert _pod_update(second) == fresh_second
    assert _pod_update(first) == fresh_first
    # A caller changing what it got must not change what is remembered.
    if fresh_first:
        expected = copy.deepcopy(fresh_first)
        fresh_first[0]["fieldsV1"].clear()
        assert _pod_update(first) == expected


def test_objects_differing_only_in_stripped_metadata_share_one_memo_entry() -> None:
    mf._CREATED_MEMO.clear()
    one: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a", "uid": "1"},
        "spec": {"hostname": "h"},
    }
    two: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "b", "uid": "2"},
        "spec": {"hostname": "h"},
    }
    assert _pod_update(one) == _pod_update(two)
    assert len(mf._CREATED_MEMO) == 1
    # a label is not stripped: another entry
    three = copy.deepcopy(two)
    three["metadata"]["labels"] = {"x": "y"}
    assert _pod_update(three)[0]["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:x": {}}}
    assert len(mf._CREATED_MEMO) == 2
    # a stripped field that is not a scalar is walked every time, never remembered
    odd = copy.deepcopy(one)
    odd["metadata"]["name"] = {"not": "a name"}
    _pod_update(odd)
    assert len(mf._CREATED_MEMO) == 2
