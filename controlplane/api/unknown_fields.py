"""Find fields a schema does not know, for `fieldValidation=Strict|Warn`.

Upstream decodes strictly and reports `unknown field "spec.foo"` (paths without a leading dot,
list indexes in brackets). Fields under `x-kubernetes-preserve-unknown-fields`, under free-form
maps (`additionalProperties`) and under schema-less nodes are never unknown.

The walk asks every schema node the same few questions on every write; for the upstream
definitions (loaded once, never changed) the answers are kept per node.
"""

from __future__ import annotations

import functools
from typing import Any

from controlplane.api import schemas

__all__ = ["unknown_fields"]

Schema = dict[str, Any]


def unknown_fields(obj: Any, schema: Schema | None) -> list[str]:
    out: list[str] = []
    if schema is not None and id(schema) in _definition_ids():
        _walk_known(obj, schema, "", out)
    else:
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


# The same walk over the upstream definitions. Every schema dict reached from one is part of
# `schemas.definitions()`, which lives (unchanged) as long as the process, so its id names it
# for good: per id, the resolved node's answers, or None where nothing below can be unknown.


class _Node:
    __slots__ = ("extra", "extra_open", "items", "props")

    def __init__(self, resolved: Schema) -> None:
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        items = resolved.get("items")
        self.props: dict[str, Any] | None = props
        self.extra: Schema | None = extra if isinstance(extra, dict) else None
        self.extra_open = extra is True
        self.items: Schema | None = items if isinstance(items, dict) else None


_NODES: dict[int, _Node | None] = {}
_CONTAINERS = (dict, list)


@functools.cache
def _definition_ids() -> frozenset[int]:
    return frozenset(id(d) for d in schemas.definitions().values())


def _node(schema: Schema) -> _Node | None:
    resolved = schemas.resolve(schema)
    node = None
    if resolved is not None and not resolved.get("x-kubernetes-preserve-unknown-fields"):
        node = _Node(resolved)
    _NODES[id(schema)] = node
    return node


def _walk_known(value: Any, schema: Schema, path: str, out: list[str]) -> None:
    key_ = id(schema)
    node = _NODES[key_] if key_ in _NODES else _node(schema)
    if node is None:
        return
    # Only maps and lists hold fields: scalars are not walked into.
    if isinstance(value, dict):
        props = node.props
        extra = node.extra
        if props is None:
            if extra is not None:
                for key, item in value.items():
                    if isinstance(item, _CONTAINERS):
                        _walk_known(item, extra, _join(path, key), out)
            return
        for key, item in value.items():
            if key in props:
                if isinstance(item, _CONTAINERS):
                    _walk_known(item, props[key], _join(path, key), out)
            elif extra is not None:
                if isinstance(item, _CONTAINERS):
                    _walk_known(item, extra, _join(path, key), out)
            elif not node.extra_open:
                out.append(_join(path, key))
    elif isinstance(value, list):
        items = node.items
        if items is not None:
            for index, item in enumerate(value):
                if isinstance(item, _CONTAINERS):
                    _walk_known(item, items, f"{path}[{index}]", out)
