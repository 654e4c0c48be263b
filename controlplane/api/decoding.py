"""What decoding into upstream's Go structs does to a body, done against the schema instead.

Upstream decodes every built-in object into a typed struct: a value of the wrong JSON type is a
400 (`json: cannot unmarshal number into Go struct field ConfigMap.data of type string`), and a
field the struct does not have is dropped (and, under fieldValidation Strict/Warn, reported —
see `unknown_fields`). We keep objects as JSON, so both are checked here against the upstream
schema. `null` is accepted anywhere, as Go accepts it for every field.
"""

from __future__ import annotations

from typing import Any

import orjson

from controlplane.api import errors, schemas

__all__ = ["check_types", "inspect", "prune_unknown", "type_error"]

Schema = dict[str, Any]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        return set()
    return {declared} if isinstance(declared, str) else set(declared)


def _go_type(schema: Schema | None, ref: str = "") -> str:
    """An approximation of the Go type name upstream's message shows."""
    if schema is None:
        return "interface {}"
    types = _types(schema) - {"null"}
    if "integer" in types:
        return "int32" if schema.get("format") == "int32" else "int64"
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    if "string" in types:
        return "string"
    if "array" in types:
        item = schema.get("items")
        item_ref = item.get("$ref", "") if isinstance(item, dict) else ""
        return "[]" + _go_type(schemas.resolve(item) if isinstance(item, dict) else None, item_ref)
    if "object" in types and isinstance(schema.get("additionalProperties"), dict):
        extra = schema["additionalProperties"]
        return "map[string]" + _go_type(schemas.resolve(extra), extra.get("$ref", ""))
    if ref:
        parts = ref.rsplit("/", 1)[-1].split(".")
        return ".".join(parts[-2:])
    return "map[string]interface {}"


def _mismatch(value: Any, schema: Schema) -> bool:
    one_of = schema.get("oneOf")
    if one_of:  # IntOrString, Quantity
        return all(_mismatch(value, option) for option in one_of if isinstance(option, dict))
    return _wrong_type(value, _types(schema))


def _wrong_type(value: Any, types: set[str]) -> bool:
    if not types or value is None:
        return False
    if isinstance(value, bool):
        return "boolean" not in types
    if isinstance(value, int):
        return not types & {"integer", "number"}
    if isinstance(value, float):
        if "number" in types:
            return False
        return not ("integer" in types and value.is_integer())
    if isinstance(value, str):
        return "string" not in types
    if isinstance(value, list):
        return "array" not in types
    return "object" not in types


class _Node:
    """A schema node resolved once: upstream definitions live for the whole process, so nodes are
    memoised by the id of their (pinned) raw dict."""

    __slots__ = ("extra", "go_type", "items", "one_of", "opaque", "props", "raw", "schema", "types")

    def __init__(self, raw: Schema) -> None:
        self.raw = raw  # pins the dict, so its id is never reused while cached
        schema = schemas.resolve(raw) or {}
        self.schema = schema
        self.opaque = not schema or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        self.types = _types(schema)
        self.one_of = [o for o in schema.get("oneOf") or () if isinstance(o, dict)]
        self.props: dict[str, Any] | None = schema.get("properties")
        extra = schema.get("additionalProperties")
        self.extra: Schema | bool | None = extra if isinstance(extra, dict | bool) else None
        items = schema.get("items")
        self.items: Schema | None = items if isinstance(items, dict) else None
        self.go_type = ""


_NODES: dict[int, _Node] = {}


def _node(raw: Schema) -> _Node:
    found = _NODES.get(id(raw))
    if found is None or found.raw is not raw:
        found = _Node(raw)
        if len(_NODES) > 50_000:
            _NODES.clear()
        _NODES[id(raw)] = found
    return found


def inspect(
    obj: dict[str, Any], schema: Schema, *, prune: bool
) -> tuple[list[str], tuple[str, Any, str] | None]:
    """One walk: the unknown fields (paths like `spec.containers[0].bogus`), the first value of a
    wrong type (path, value, Go type), and, when `prune`, the unknown fields removed in place."""
    unknown: list[str] = []
    mismatch: list[tuple[str, Any, str]] = []
    root = _node(schema)
    key = _object_key(obj)
    if key is not None and _CLEAN.get(key) is root:
        return unknown, None
    _inspect(obj, root, "", "", unknown, mismatch, prune)
    if key is not None and not unknown and not mismatch:
        _remember_clean(key, root)
    return unknown, (mismatch[0] if mismatch else None)


def _object_key(obj: Any) -> bytes | None:
    """A body's JSON with a string metadata.name blanked (whatever the string, it checks the
    same): objects made from one template differ in nothing else."""
    if type(obj) is not dict:
        return None
    meta = obj.get("metadata")
    if type(meta) is dict and type(meta.get("name")) is str:
        obj = {**obj, "metadata": {**meta, "name": ""}}
    try:
        raw = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return None
    return raw if len(raw) <= _CLEAN_MAX_BYTES else None


def _remember_clean(key: bytes, node: _Node) -> None:
    if len(_CLEAN) >= _CLEAN_ENTRIES:
        _CLEAN.clear()
    _CLEAN[key] = node


def _inspect(
    value: Any,
    node: _Node,
    path: str,
    go_path: str,
    unknown: list[str],
    mismatch: list[tuple[str, Any, str]],
    prune: bool,
) -> None:
    if node.opaque or value is None:
        return
    if node.one_of:
        if not mismatch and all(_mismatch(value, o) for o in node.one_of):
            mismatch.append((go_path, value, _go_type(node.schema, node.raw.get("$ref", ""))))
        return
    if node.types and not mismatch and _wrong_type(value, node.types):
        mismatch.append((go_path, value, _go_type(node.schema, node.raw.get("$ref", ""))))
        return
    if isinstance(value, dict):
        props = node.props
        extra = node.extra
        if props is None:
            if isinstance(extra, dict):
                sub = _node(extra)
                for item in value.values():
                    _inspect(item, sub, path, go_path, unknown, mismatch, prune)  # Go omits map keys
            return
        doomed: list[str] = []
        for key, item in value.items():
            here = f"{path}.{key}" if path else key
            if key in props:
                (_inspect_member if not path else _inspect)(
                    item,
                    _node(props[key]),
                    here,
                    f"{go_path}.{key}" if go_path else key,
                    unknown,
                    mismatch,
                    prune,
                )
            elif isinstance(extra, dict):
                _inspect(item, _node(extra), here, go_path, unknown, mismatch, prune)
            elif extra is not True:
                unknown.append(here)
                doomed.append(key)
        if prune:
            for key in doomed:
                del value[key]
    elif isinstance(value, list) and node.items is not None:
        sub = _node(node.items)
        for index, item in enumerate(value):
            _inspect(item, sub, f"{path}[{index}]", go_path, unknown, mismatch, prune)


# Bodies (`_object_key`) and their top-level members (a pod's spec...) found clean before, by
# their JSON, with the schema node they were checked against: objects made from one template
# repeat them, and the walk is a large part of decoding a create. Only clean ones are kept: one
# with findings is walked every time. At most 256 keys of 16 KiB.
_CLEAN: dict[bytes, _Node] = {}
_CLEAN_ENTRIES = 256
_CLEAN_MAX_BYTES = 16 * 1024


def _inspect_member(
    value: Any,
    node: _Node,
    path: str,
    go_path: str,
    unknown: list[str],
    mismatch: list[tuple[str, Any, str]],
    prune: bool,
) -> None:
    if path == "metadata" or mismatch or not isinstance(value, dict | list) or not value:
        # metadata names the object, so never repeats; after a mismatch types are not checked.
        _inspect(value, node, path, go_path, unknown, mismatch, prune)
        return
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        _inspect(value, node, path, go_path, unknown, mismatch, prune)
        return
    if _CLEAN.get(raw) is node:
        return
    found = len(unknown)
    _inspect(value, node, path, go_path, unknown, mismatch, prune)
    if len(unknown) == found and not mismatch and len(raw) <= _CLEAN_MAX_BYTES:
        _remember_clean(raw, node)


def type_error(kind: str, version: str, found: tuple[str, Any, str]) -> errors.BadRequest:
    path, value, expected = found
    return errors.BadRequest(
        message=f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {kind}.{path} of type {expected}"
    )


def check_types(obj: dict[str, Any], schema: Schema | None, *, kind: str, version: str) -> None:
    """Raise upstream's 400 for the first value whose JSON type the schema does not allow."""
    if schema is None:
        return
    _, found = inspect(obj, schema, prune=False)
    if found is not None:
        raise type_error(kind, version, found)


def prune_unknown(value: dict[str, Any], raw: Schema | None) -> None:
    """Drop, in place, every field the schema does not declare (what decoding into a Go struct does)."""
    if raw is not None:
        inspect(value, raw, prune=True)
