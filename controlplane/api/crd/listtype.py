"""`x-kubernetes-list-type` set/map invariants (`pkg/apiserver/schema/listtype`)."""

from __future__ import annotations

from typing import Any

from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd import nodes, paths
from controlplane.api.errors import Cause

__all__ = ["validate_lists"]

Schema = dict[str, Any]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def validate_lists(path: str, s: Schema | None, obj: Any) -> list[Cause]:
    out: list[Cause] = []
    _walk(path, s, obj, out)
    return out


def _walk(path: str, s: Schema | None, obj: Any, out: list[Cause]) -> None:
    if s is None:
        return
    if isinstance(obj, dict):
        props = nodes.properties(s)
        _, extra = nodes.additional(s)
        for key, value in obj.items():
            if key in props:
                _walk(paths.child(path, key), props[key], value, out)
            elif extra is not None:
                _walk(paths.key(path, key), extra, value, out)
    elif isinstance(obj, list):
        list_type = s.get("x-kubernetes-list-type")
        if list_type == "set":
            for i, item in enumerate(obj):
                if any(_same(item, other) for other in obj[:i]):
                    out.append(fe.duplicate(paths.index(path, i), item))
        elif list_type == "map":
            _list_map(path, s, obj, out)
        item_schema = nodes.items(s)
        for i, item in enumerate(obj):
            _walk(paths.index(path, i), item_schema, item, out)


def _list_map(path: str, s: Schema, obj: list[Any], out: list[Cause]) -> None:
    keys = nodes.list_map_keys(s)
    item_props = nodes.properties(nodes.items(s))
    seen: list[tuple[Any, ...]] = []
    for i, element in enumerate(obj):
        if not isinstance(element, dict):
            target = paths.child(path, keys[0]) if len(keys) == 1 else path
            out.append(fe.invalid(target, element, "must be an object for an array of list-type map"))
            continue
        values: list[Any] = []
        bad = False
        for name in keys:
            if name in element:
                value = element[name]
                if isinstance(value, dict | list):
                    out.append(
                        fe.invalid(paths.child(paths.index(path, i), name), value, "must be a scalar value")
                    )
                    bad = True
                values.append(value)
            elif isinstance(item_props.get(name), dict) and "default" in item_props[name]:
                values.append(item_props[name]["default"])
            else:
                out.append(fe.required(paths.child(paths.index(path, i), name)))
                bad = True
        if bad:
            continue
        key_tuple = tuple(values)
        if any(all(_same(a, b) for a, b in zip(key_tuple, other, strict=True)) for other in seen):
            key_map = {name: element[name] for name in keys if name in element}
            out.append(fe.duplicate(paths.index(path, i), key_map))
        else:
            seen.append(key_tuple)
