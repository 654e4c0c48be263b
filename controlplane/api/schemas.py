"""Upstream OpenAPI schemas of the built-in types, from the `kubernetes-validate` package.

These drive three things: the `/openapi/v3` documents (so `kubectl explain` works), strategic
merge patch and server-side apply (list merge keys and strategies), and strict field
validation. Loaded once, lazily, from package data; nothing here does network IO.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "KUBERNETES_SCHEMA_VERSION",
    "ListMeta",
    "definition_for",
    "definitions",
    "gvk_index",
    "list_meta",
    "resolve",
    "subschema",
]

KUBERNETES_SCHEMA_VERSION = "v1.33.0"

Schema = dict[str, Any]


@functools.cache
def definitions() -> dict[str, Schema]:
    """Every upstream definition by its full name, e.g. `io.k8s.api.core.v1.PodSpec`.
    References inside are `{"$ref": "#/$defs/<name>"}`."""
    root = importlib.resources.files("kubernetes_validate")
    path = root / "kubernetes-json-schema" / f"{KUBERNETES_SCHEMA_VERSION}-local" / "_definitions.json"
    doc = orjson.loads(path.read_bytes())
    defs: dict[str, Schema] = doc["$defs"]
    return defs


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name, from `x-kubernetes-group-version-kind`."""
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            # Several definitions may claim one GVK (DeleteOptions, WatchEvent); keep the first.
            out.setdefault(key, name)
    return out


def definition_for(group: str, version: str, kind: str) -> Schema | None:
    name = gvk_index().get((group, version, kind))
    return definitions()[name] if name else None


def resolve(schema: Schema | None) -> Schema | None:
    """Follow `$ref` (also inside a single-element `allOf`) to the referenced definition."""
    seen = 0
    while schema is not None and seen < 32:
        seen += 1
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", ())) == 1:
            ref = schema["allOf"][0].get("$ref")
        if ref is None:
            return schema
        schema = definitions().get(ref.rsplit("/", 1)[-1])
    return schema


def subschema(schema: Schema | None, segment: str) -> Schema | None:
    """The schema of field `segment` of an object schema (or of map values for additionalProperties)."""
    schema = resolve(schema)
    if schema is None:
        return None
    props = schema.get("properties")
    if props and segment in props:
        return resolve(props[segment])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items(schema: Schema | None) -> Schema | None:
    schema = resolve(schema)
    if schema is None:
        return None
    item = schema.get("items")
    return resolve(item) if isinstance(item, dict) else None


@dataclass(frozen=True)
class ListMeta:
    """How a list field merges under strategic merge patch and server-side apply."""

    patch_strategy: str  # "" (replace), "merge", "retainKeys", "merge,retainKeys"
    merge_key: str  # patchMergeKey ("" when none)
    list_type: str  # "atomic", "set", "map" ("" when the schema says nothing)
    map_keys: tuple[str, ...]  # x-kubernetes-list-map-keys


def list_meta(field_schema: Schema | None) -> ListMeta:
    """Merge facts of a field; read from the field's own schema (not the resolved item type),
    which is where upstream places the `x-kubernetes-*` list extensions."""
    if field_schema is None:
        return ListMeta("", "", "", ())
    return ListMeta(
        patch_strategy=str(field_schema.get("x-kubernetes-patch-strategy", "")),
        merge_key=str(field_schema.get("x-kubernetes-patch-merge-key", "")),
        list_type=str(field_schema.get("x-kubernetes-list-type", "")),
        map_keys=tuple(field_schema.get("x-kubernetes-list-map-keys", ())),
    )


def field_schema_raw(schema: Schema | None, segment: str) -> Schema | None:
    """The unresolved property schema (keeps the `x-kubernetes-*` extensions placed beside `$ref`)."""
    schema = resolve(schema)
    if schema is None:
        return None
    props = schema.get("properties")
    if props and segment in props:
        raw: Schema = props[segment]
        return raw
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None
