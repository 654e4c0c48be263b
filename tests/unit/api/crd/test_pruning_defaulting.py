"""Pruning and defaulting, as upstream's algorithms."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.crd import CustomResourceSchema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "nullable": True, "default": "auto"},
                "strategy": {
                    "type": "object",
                    "default": {},
                    "properties": {"type": {"type": "string", "default": "Rolling"}},
                },
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "default": {"name": "http"},
                        "properties": {
                            "name": {"type": "string"},
                            "port": {"type": "integer", "default": 80},
                        },
                    },
                },
                "env": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"value": {"type": "string", "default": "v"}},
                    },
                },
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object"}},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def _obj(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": spec,
    }


PRUNE_CASES = [
    ({}, {}, []),
    ({"bogus": 1}, {}, ["spec.bogus"]),
    (
        {"ports": [{"name": "a", "x": 1}, {"y": 2}]},
        {"ports": [{"name": "a"}, {}]},
        ["spec.ports[0].x", "spec.ports[1].y"],
    ),
    ({"env": {"A": {"value": "1", "junk": True}}}, {"env": {"A": {"value": "1"}}}, ["spec.env.A.junk"]),
    (
        {"free": {"anything": {"goes": 1}, "known": {"x": 1}}},
        {"free": {"anything": {"goes": 1}, "known": {}}},
        ["spec.free.known.x"],
    ),
    (
        {
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "bad": 1},
                "spec": {"a": "x", "b": 2},
                "z": 1,
            }
        },
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "x"}}},
        ["spec.template.metadata.bad", "spec.template.spec.b", "spec.template.z"],
    ),
    (
        {"strategy": {"type": "x", "other": {"deep": [1]}}},
        {"strategy": {"type": "x"}},
        ["spec.strategy.other"],
    ),
]


@pytest.mark.parametrize(("spec", "pruned", "paths"), PRUNE_CASES)
def test_prune(spec: dict[str, Any], pruned: dict[str, Any], paths: list[str]) -> None:
    obj = _obj(spec)
    obj["unknownTop"] = 1
    obj["status"] = {"whatever": [1, 2]}
    removed = CustomResourceSchema(SCHEMA).prune(obj)
    assert removed == sorted([*paths, "unknownTop"])
    assert obj["spec"] == pruned
    assert obj["metadata"] == {"name": "w", "labels": {"a": "b"}}
    assert obj["apiVersion"] == "example.com/v1"
    assert obj["kind"] == "Widget"
    assert obj["status"] == {"whatever": [1, 2]}


def test_prune_without_schema_keeps_only_type_and_object_meta() -> None:
    obj = _obj({"a": 1})
    assert CustomResourceSchema({}).prune(obj) == ["spec"]
    assert set(obj) == {"apiVersion", "kind", "metadata"}


DEFAULT_CASES = [
    ({}, {"replicas": 1, "mode": "auto", "strategy": {"type": "Rolling"}}),
    ({"replicas": 3}, {"replicas": 3, "mode": "auto", "strategy": {"type": "Rolling"}}),
    # null for a non-nullable field is replaced; a nullable field keeps its null
    ({"replicas": None, "mode": None}, {"replicas": 1, "mode": None, "strategy": {"type": "Rolling"}}),
    (
        {"ports": [{"name": "a"}, None, {"port": 8080}]},
        {
            "replicas": 1,
            "mode": "auto",
            "strategy": {"type": "Rolling"},
            "ports": [{"name": "a", "port": 80}, {"name": "http", "port": 80}, {"port": 8080}],
        },
    ),
    (
        {"env": {"A": {}, "B": {"value": "b"}}},
        {
            "replicas": 1,
            "mode": "auto",
            "strategy": {"type": "Rolling"},
            "env": {"A": {"value": "v"}, "B": {"value": "b"}},
        },
    ),
]


@pytest.mark.parametrize(("spec", "defaulted"), DEFAULT_CASES)
def test_default(spec: dict[str, Any], defaulted: dict[str, Any]) -> None:
    obj = _obj(spec)
    CustomResourceSchema(SCHEMA).default(obj)
    assert obj["spec"] == defaulted


def test_defaults_are_copies() -> None:
    s = CustomResourceSchema(SCHEMA)
    a, b = _obj({}), _obj({})
    s.default(a)
    s.default(b)
    a["spec"]["strategy"]["type"] = "changed"
    assert b["spec"]["strategy"]["type"] == "Rolling"
    assert s.schema["properties"]["spec"]["properties"]["strategy"]["default"] == {}


def test_schema_is_copied_at_construction() -> None:
    raw: dict[str, Any] = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer", "default": 1}}}},
    }
    s = CustomResourceSchema(raw)
    raw["properties"]["spec"]["properties"]["a"]["default"] = 2
    obj: dict[str, Any] = {"spec": {}}
    s.default(obj)
    assert obj["spec"] == {"a": 1}
