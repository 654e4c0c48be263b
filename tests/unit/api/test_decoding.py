"""Decoding checks against the upstream schemas: wrong JSON types and unknown-field pruning."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import decoding, errors, schemas


def _schema(kind: str, group: str = "", version: str = "v1") -> dict[str, Any]:
    found = schemas.definition_for(group, version, kind)
    assert found is not None
    return found


def test_a_number_where_a_string_belongs_is_a_go_style_400() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        decoding.check_types({"data": {"k": 1}}, _schema("ConfigMap"), kind="ConfigMap", version="v1")
    assert caught.value.message == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number '
        "into Go struct field ConfigMap.data of type string"
    )


def test_nested_and_list_paths_and_go_types() -> None:
    deploy = _schema("Deployment", "apps")
    with pytest.raises(errors.BadRequest) as caught:
        decoding.check_types({"spec": {"replicas": "three"}}, deploy, kind="Deployment", version="v1")
    assert (
        "cannot unmarshal string into Go struct field Deployment.spec.replicas of type int32"
        in caught.value.message
    )
    body = {"spec": {"template": {"spec": {"containers": {"name": "c"}}}}}
    with pytest.raises(errors.BadRequest) as caught:
        decoding.check_types(body, deploy, kind="Deployment", version="v1")
    assert (
        "cannot unmarshal object into Go struct field Deployment.spec.template.spec.containers of type []v1.Container"
        in caught.value.message
    )


@pytest.mark.parametrize(
    "value",
    [80, "http", None],
)
def test_int_or_string_and_null_are_accepted(value: Any) -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": value}]}}
    decoding.check_types(svc, _schema("Service"), kind="Service", version="v1")


def test_quantities_take_strings_and_numbers() -> None:
    pod = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]}}
    decoding.check_types(pod, _schema("Pod"), kind="Pod", version="v1")


def test_prune_drops_only_undeclared_fields() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"free": "form"}, "bogus": 1},
        "spec": {"containers": [{"name": "c", "image": "i", "extra": True}], "nope": {}},
    }
    decoding.prune_unknown(pod, _schema("Pod"))
    assert pod == {
        "metadata": {"name": "p", "labels": {"free": "form"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


@settings(deadline=None, max_examples=150)
@given(st.dictionaries(st.sampled_from(["metadata", "spec", "status", "junk"]), _json, max_size=4))
def test_prune_is_idempotent_and_never_adds(obj: dict[str, Any]) -> None:
    schema = _schema("Pod")
    once = copy.deepcopy(obj)
    decoding.prune_unknown(once, schema)
    twice = copy.deepcopy(once)
    decoding.prune_unknown(twice, schema)
    assert once == twice
    assert set(once) <= set(obj) and "junk" not in once


# Clean bodies and members are remembered by their JSON; what is remembered must never hide a
# finding, and pruning must still happen on every call.

_names = st.text(alphabet="abn-", min_size=1, max_size=4)
_leaf = st.none() | st.booleans() | st.integers(-2, 2) | _names
_any = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_names, inner, max_size=2),
    max_leaves=6,
)
_container = st.dictionaries(
    st.sampled_from(["name", "image", "ports", "bogus", "args"]),
    st.one_of(
        _names,
        st.integers(0, 2),
        st.lists(_names, max_size=2),
        st.lists(st.dictionaries(st.sampled_from(["containerPort", "nope"]), _leaf, max_size=2), max_size=2),
    ),
    max_size=4,
)


@settings(deadline=None, max_examples=300)
@given(
    name=st.one_of(_names, st.integers(0, 2)),
    other_name=_names,
    containers=st.lists(_container, max_size=2),
    extra=st.dictionaries(st.sampled_from(["hostname", "priority", "bogus"]), _any, max_size=2),
)
def test_remembered_clean_bodies_never_hide_findings(
    name: Any, other_name: str, containers: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    schema = _schema("Pod")

    def body(n: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": n},
            "spec": {"containers": copy.deepcopy(containers), **copy.deepcopy(extra)},
        }

    decoding._CLEAN.clear()
    expected_other = decoding.inspect(body(other_name), schema, prune=False)
    decoding._CLEAN.clear()
    expected = decoding.inspect(body(name), schema, prune=False)
    for _ in range(2):  # the second time from the memo, if it was clean
        assert decoding.inspect(body(name), schema, prune=False) == expected
        assert decoding.inspect(body(other_name), schema, prune=False) == expected_other
        pruned = body(name)
        unknown, _ = decoding.inspect(pruned, schema, prune=True)
        assert unknown == expected[0]
        assert decoding.inspect(pruned, schema, prune=False)[0] == []


def test_a_clean_body_is_remembered_whatever_its_name() -> None:
    schema = _schema("Pod")
    decoding._CLEAN.clear()
    spec = {"containers": [{"name": "c", "image": "i"}]}
    assert decoding.inspect({"metadata": {"name": "a"}, "spec": spec}, schema, prune=True) == ([], None)
    remembered = len(decoding._CLEAN)
    assert decoding.inspect({"metadata": {"name": "b"}, "spec": spec}, schema, prune=True) == ([], None)
    assert len(decoding._CLEAN) == remembered  # a hit: nothing new
    # the same spec with a stray field is walked and reported, every time
    dirty = {"metadata": {"name": "c"}, "spec": {**spec, "bogus": 1}}
    for _ in range(2):
        assert decoding.inspect(copy.deepcopy(dirty), schema, prune=False) == (["spec.bogus"], None)
