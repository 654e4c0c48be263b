"""Properties: pruning and defaulting are idempotent; a valid object stays valid after defaulting."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.crd import CustomResourceSchema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "opt": {"type": "string", "nullable": True, "default": "x"},
                "items": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "weight": {"type": "integer", "default": 5, "minimum": 0},
                        },
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "d"}},
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "deep": {
                            "type": "object",
                            "default": {},
                            "properties": {"v": {"type": "boolean", "default": True}},
                        }
                    },
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    },
}

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(["replicas", "mode", "opt", "items", "labels", "nested", "free", "bogus"])
_item = st.dictionaries(st.sampled_from(["name", "weight", "junk"]), _json, max_size=3)
_spec_values = {
    "items": st.lists(_item, max_size=3),
    "nested": st.dictionaries(st.sampled_from(["deep", "x"]), _json, max_size=2),
}
_spec = st.dictionaries(_keys, _json, max_size=6).flatmap(
    lambda d: st.fixed_dictionaries({k: _spec_values.get(k, st.just(v)) for k, v in d.items()})
)
_objects = _spec.map(
    lambda spec: {"apiVersion": "e.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": spec, "extra": 1}
)

_valid_spec = st.fixed_dictionaries(
    {},
    optional={
        "replicas": st.integers(0, 10),
        "mode": st.sampled_from(["a", "b"]),
        "opt": st.none() | st.text(max_size=3),
        "items": st.lists(st.text(max_size=3), max_size=3, unique=True).map(
            lambda names: [{"name": n} for n in names]
        ),
        "labels": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
        "nested": st.just({}),
    },
)

SCHEMA_OBJ = CustomResourceSchema(SCHEMA)


@settings(max_examples=50, deadline=None)
@given(_objects)
def test_pruning_is_idempotent(obj: dict[str, Any]) -> None:
    SCHEMA_OBJ.prune(obj)
    once = copy.deepcopy(obj)
    assert SCHEMA_OBJ.prune(obj) == []
    assert obj == once


@settings(max_examples=50, deadline=None)
@given(_objects)
def test_defaulting_is_idempotent(obj: dict[str, Any]) -> None:
    SCHEMA_OBJ.prune(obj)
    SCHEMA_OBJ.default(obj)
    once = copy.deepcopy(obj)
    SCHEMA_OBJ.default(obj)
    assert obj == once


@settings(max_examples=50, deadline=None)
@given(_valid_spec)
def test_valid_object_stays_valid_after_defaulting(spec: dict[str, Any]) -> None:
    obj = {"apiVersion": "e.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": spec}
    assert SCHEMA_OBJ.validate(obj, None) == []
    SCHEMA_OBJ.default(obj)
    assert SCHEMA_OBJ.validate(obj, None) == []
    assert SCHEMA_OBJ.prune(obj) == []
