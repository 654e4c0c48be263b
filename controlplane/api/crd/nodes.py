"""Accessors on a structural schema node (the CRD's JSON form), shared by the walkers."""

from __future__ import annotations

from typing import Any

__all__ = ["additional", "items", "list_map_keys", "prop", "properties"]

Schema = dict[str, Any]


def properties(s: Schema | None) -> dict[str, Schema]:
    if s is None:
        return {}
    props = s.get("properties")
    return props if isinstance(props, dict) else {}


def prop(s: Schema | None, name: str) -> Schema | None:
    value = properties(s).get(name)
    return value if isinstance(value, dict) else None


def additional(s: Schema | None) -> tuple[bool, Schema | None]:
    """(present, schema): `additionalProperties: true` is present without a schema."""
    if s is None:
        return False, None
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        return True, extra
    return extra is True, None


def items(s: Schema | None) -> Schema | None:
    if s is None:
        return None
    value = s.get("items")
    return value if isinstance(value, dict) else None


def list_map_keys(s: Schema | None) -> list[str]:
    if s is None:
        return []
    keys = s.get("x-kubernetes-list-map-keys")
    return [str(k) for k in keys] if isinstance(keys, list) else []
