"""What decoding into upstream's Go structs does to a body, done against the schema instead.

Upstream decodes every built-in object into a typed struct: a value of the wrong JSON type is a
400 (`json: cannot unmarshal number into Go struct field ConfigMap.data of type string`), and a
field the struct does not have is dropped (and, under fieldValidation Strict/Warn, reported —
see `unknown_fields`). We keep objects as JSON, so both are checked here against the upstream
schema. `null` is accepted anywhere, as Go accepts it for every field.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import errors, schemas

__all__ = ["check_types", "prune_unknown"]

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
    types = _types(schema)
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


def check_types(obj: dict[str, Any], schema: Schema | None, *, kind: str, version: str) -> None:
    """Raise upstream's 400 for the first value whose JSON type the schema does not allow."""
    found = _first_mismatch(obj, schema, "")
    if found is None:
        return
    path, value, expected = found
    raise errors.BadRequest(
        message=f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {kind}.{path} of type {expected}"
    )


def _first_mismatch(value: Any, raw: Schema | None, path: str) -> tuple[str, Any, str] | None:
    schema = schemas.resolve(raw)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return None
    if _mismatch(value, schema):
        ref = raw.get("$ref", "") if raw else ""
        return path, value, _go_type(schema, ref)
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                # Go names struct fields in the path, but not map keys.
                found = _first_mismatch(item, props[key], f"{path}.{key}" if path else key)
            elif isinstance(extra, dict):
                found = _first_mismatch(item, extra, path)
            else:
                continue
            if found is not None:
                return found
    elif isinstance(value, list):
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            for item in value:
                found = _first_mismatch(item, item_schema, path)
                if found is not None:
                    return found
    return None


def prune_unknown(value: Any, raw: Schema | None) -> None:
    """Drop, in place, every field the schema does not declare (what decoding into a Go struct does)."""
    schema = schemas.resolve(raw)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props: dict[str, Any] | None = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                for item in value.values():
                    prune_unknown(item, extra)
            return
        for key in list(value):
            if key in props:
                prune_unknown(value[key], props[key])
            elif isinstance(extra, dict):
                prune_unknown(value[key], extra)
            elif extra is not True:
                del value[key]
    elif isinstance(value, list):
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            for item in value:
                prune_unknown(item, item_schema)
