"""Server-side apply on custom resources: the CRD schema's list and map markers decide merging
and ownership (structured-merge-diff on upstream's CRD type converter)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.crd.apply_schema import OBJECT_META_REF, apply_schema
from controlplane.api.patch.apply import InvalidApplyConfiguration, apply
from controlplane.api.patch.fieldpath import from_fields_v1, path_string

Obj = dict[str, Any]

STRING = {"type": "string"}
ENTRY = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": STRING, "value": {"type": "integer", "minimum": 0}},
}
SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "entries": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": ENTRY,
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": STRING},
                "plain": {"type": "array", "items": STRING},
                "pinned": {"type": "array", "x-kubernetes-list-type": "atomic", "items": STRING},
                "labels": {"type": "object", "additionalProperties": STRING},
                "selector": {
                    "type": "object",
                    "x-kubernetes-map-type": "atomic",
                    "properties": {"app": STRING, "tier": STRING},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}
APPLY = apply_schema(SCHEMA)
API = "example.com/v1"


def thing(**spec: Any) -> Obj:
    return {
        "apiVersion": API,
        "kind": "Thing",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": spec,
    }


def ssa(live: Obj | None, cfg: Obj, manager: str, *, force: bool = False) -> Obj:
    return apply(
        live, cfg, manager=manager, force=force, api_version=API, schema=APPLY, now="2026-01-01T00:00:00Z"
    )


def owned(obj: Obj) -> dict[str, set[str]]:
    return {
        e["manager"]: {path_string(p) for p in from_fields_v1(e["fieldsV1"])}
        for e in obj["metadata"]["managedFields"]
    }


def test_the_root_and_embedded_resources_declare_api_version_kind_and_metadata() -> None:
    assert APPLY["properties"]["metadata"] == OBJECT_META_REF
    assert APPLY["properties"]["kind"] == {"type": "string"}
    template = APPLY["properties"]["spec"]["properties"]["template"]
    assert set(template["properties"]) == {"apiVersion", "kind", "metadata"}
    # Value validations do not type anything; the markers stay.
    entries = APPLY["properties"]["spec"]["properties"]["entries"]
    assert "minimum" not in entries["items"]["properties"]["value"]
    assert entries["x-kubernetes-list-map-keys"] == ["name"]
    assert SCHEMA["properties"].keys() == {"spec", "status"}  # the input is left alone


def test_two_managers_co_own_entries_of_a_list_map() -> None:
    first = ssa(None, thing(entries=[{"name": "a", "value": 1}]), "alice")
    both = ssa(first, thing(entries=[{"name": "b", "value": 2}]), "bob")
    assert both["spec"]["entries"] == [{"name": "a", "value": 1}, {"name": "b", "value": 2}]
    paths = owned(both)
    assert '.spec.entries[name="a"]' in paths["alice"]
    assert '.spec.entries[name="a"].value' in paths["alice"]
    assert '.spec.entries[name="b"].value' in paths["bob"]
    assert not any('name="a"' in p for p in paths["bob"])
    # alice stops applying her entry: it goes, bob's stays.
    after = ssa(both, thing(entries=[]), "alice")
    assert after["spec"]["entries"] == [{"name": "b", "value": 2}]


def test_a_conflict_in_a_list_map_names_the_entry_field() -> None:
    first = ssa(None, thing(entries=[{"name": "a", "value": 1}]), "alice")
    with pytest.raises(errors.Conflict) as caught:
        ssa(first, thing(entries=[{"name": "a", "value": 5}]), "bob")
    status = caught.value.to_status()
    assert status["code"] == 409
    assert (
        status["message"]
        == 'Apply failed with 1 conflict: conflict with "alice": .spec.entries[name="a"].value'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "alice"',
            "field": '.spec.entries[name="a"].value',
        }
    ]
    forced = ssa(first, thing(entries=[{"name": "a", "value": 5}]), "bob", force=True)
    assert forced["spec"]["entries"] == [{"name": "a", "value": 5}]
    assert '.spec.entries[name="a"].value' not in owned(forced)["alice"]


def test_sets_merge_by_value() -> None:
    first = ssa(None, thing(tags=["x"]), "alice")
    both = ssa(first, thing(tags=["y"]), "bob")
    assert both["spec"]["tags"] == ["x", "y"]
    assert owned(both) == {"alice": {'.spec.tags[="x"]'}, "bob": {'.spec.tags[="y"]'}}
    assert ssa(both, thing(tags=[]), "alice")["spec"]["tags"] == ["y"]


@pytest.mark.parametrize("field", ["plain", "pinned"])
def test_lists_without_a_marker_and_atomic_lists_are_one_field(field: str) -> None:
    first = ssa(None, thing(**{field: ["x"]}), "alice")
    with pytest.raises(errors.Conflict) as caught:
        ssa(first, thing(**{field: ["y"]}), "bob")
    assert caught.value.to_status()["details"]["causes"][0]["field"] == f".spec.{field}"
    forced = ssa(first, thing(**{field: ["y"]}), "bob", force=True)
    assert forced["spec"][field] == ["y"]


def test_atomic_and_granular_maps() -> None:
    first = ssa(None, thing(labels={"a": "1"}, selector={"app": "web"}), "alice")
    both = ssa(first, thing(labels={"b": "2"}), "bob")
    assert both["spec"]["labels"] == {"a": "1", "b": "2"}
    with pytest.raises(errors.Conflict) as caught:
        ssa(both, thing(selector={"tier": "db"}), "bob")
    assert caught.value.to_status()["details"]["causes"][0]["field"] == ".spec.selector"


def test_duplicate_keys_and_missing_keys_are_refused() -> None:
    with pytest.raises(InvalidApplyConfiguration) as duplicate:
        ssa(None, thing(entries=[{"name": "a"}, {"name": "a"}]), "alice")
    assert 'duplicate entries for key [name="a"]' in duplicate.value.to_status()["message"]
    with pytest.raises(InvalidApplyConfiguration) as missing:
        ssa(None, thing(entries=[{"value": 1}]), "alice")
    assert 'omits key field "name"' in missing.value.to_status()["message"]


def test_undeclared_fields_are_refused_as_upstream() -> None:
    with pytest.raises(InvalidApplyConfiguration) as caught:
        ssa(None, thing(unknown=1), "alice")
    assert ".spec.unknown: field not declared in schema" in caught.value.to_status()["message"]
    # Free-form parts take anything.
    embedded = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}}, "spec": {"x": [1]}}
    assert ssa(None, thing(template=embedded), "alice")["spec"]["template"] == embedded
