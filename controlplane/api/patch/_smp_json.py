"""JSON value helpers shared by the patch modules: copying, equality, and Go-style rendering.

Upstream decodes patches with ints preserved (`int64`) beside `float64`, and compares list
elements and merge keys with Go's `==` on interfaces, so `1`, `1.0` and `true` are three
different values there; `go_key` reproduces that identity for Python values. Error messages
quote values the way Go's `%v` prints them, which `go_format` reproduces.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import orjson


def deep_copy(value: Any) -> Any:
    """Copy a decoded JSON value (dicts, lists, scalars); faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values as RFC 6902 `test` defines it: numbers compare by value,
    but booleans are not numbers (Python's `True == 1` must not leak through)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    return bool(a == b)


def go_type_name(value: Any) -> str:
    """`reflect.TypeOf(v).String()` for the value as upstream decodes it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def go_key(value: Any) -> Hashable:
    """A hashable identity equal exactly when Go's interface `==` holds (same dynamic type and
    value). Containers, which Go cannot compare, get a canonical JSON rendering instead."""
    if isinstance(value, dict | list):
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return (go_type_name(value), value)


def go_equal(a: Any, b: Any) -> bool:
    return go_key(a) == go_key(b)


def go_format(value: Any) -> str:
    """Render a value as Go's `%v` does for decoded JSON (`map[k:v]`, `[a b]`, `<nil>`)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def json_kind(value: Any) -> str:
    """The JSON kind as Go's decoder names it in `cannot unmarshal <kind> into ...`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
