"""JSON value helpers shared by the patch modules: copying, equality, and Go-style rendering.

Upstream decodes patches with ints preserved (`int64`) beside `float64`, and compares list
elements and merge keys with Go's `==` on interfaces, so `1`, `1.0` and `true` are three
different values there; `go_key` reproduces that identity for Python values. Error messages
quote values the way Go's `%v` prints them, which `go_format` reproduces.
"""

from __future__ import annotations

import copy
import math
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


# Types orjson would otherwise turn into JSON (YAML bodies decode timestamps to datetimes) raise instead.
_NOT_JSON_TYPES = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def json_bytes(value: Any) -> bytes | None:
    """`value` as orjson writes it, or None when that text would not decode back to an equal
    value of the same types: a float that is not finite, an int beyond 64 bits, a non-string
    key, a datetime (from YAML), a subclass of a JSON type, bytes, a set. (An enum or a UUID
    would be written as its value; decoded objects never hold one.)"""
    try:
        text = orjson.dumps(value, option=_NOT_JSON_TYPES)
    except TypeError:
        return None
    # orjson writes NaN and the infinities as `null`; only then can the text lose something.
    if b"null" in text and _has_non_finite(value):
        return None
    return text


def json_copy(value: Any) -> Any:
    """`deep_copy` done in C through orjson, for objects made of JSON values, as decoded request
    bodies and stored objects are; anything orjson cannot reproduce exactly is left to
    `copy.deepcopy`. A tuple comes back as a list."""
    text = json_bytes(value)
    return copy.deepcopy(value) if text is None else orjson.loads(text)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


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
