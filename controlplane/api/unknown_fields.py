"""Find fields a schema does not know, for `fieldValidation=Strict|Warn`.

Upstream decodes strictly and reports `unknown field "spec.foo"` (paths without a leading dot,
list indexes in brackets). Fields under `x-kubernetes-preserve-unknown-fields`, under free-form
maps (`additionalProperties`) and under schema-less nodes are never unknown.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import schemas

__all__ = ["unknown_fields"]

Schema = dict[str, Any]


def unknown_fields(obj: Any, schema: Schema | None) -> list[str]:
    out: list[str] = []
    _walk(obj, schema, "", out)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk(value: Any, schema: Schema | None, path: str, out: list[str]) -> None:
    schema = schemas.resolve(schema)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props: dict[str, Any] | None = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                for key, item in value.items():
                    _walk(item, extra, _join(path, key), out)
            return
        for key, item in value.items():
            if key in props:
                _walk(item, props[key], _join(path, key), out)
            elif isinstance(extra, dict):
                _walk(item, extra, _join(path, key), out)
            elif extra is True:
                continue
            else:
                out.append(_join(path, key))
    elif isinstance(value, list):
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            for index, item in enumerate(value):
                _walk(item, item_schema, f"{path}[{index}]", out)
