"""Kubernetes' CEL libraries (`k8s.io/apiserver/pkg/cel/library`) on top of cel-python.

cel-python dispatches `x.f(y)` to a function named `f` called as `f(x, y)`, so functions that
share a name across receiver types (`indexOf` on strings and lists) dispatch on the receiver.
Covered: lists (isSorted, sum, min, max, indexOf, lastIndexOf), strings ext (charAt, indexOf,
lastIndexOf, lowerAscii, upperAscii, replace, split, substring, trim, join, reverse), regex
(find, findAll), url (url, isURL, getScheme, getHost, getHostname, getPort, getEscapedPath,
getQuery), quantity (quantity, isQuantity, isInteger, asInteger, asApproximateFloat, sign, add,
sub, isGreaterThan, isLessThan, compareTo), optionals for `optionalOldSelf` (hasValue, value,
orValue).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

from controlplane.api import quantity as qty
from controlplane.api.crd.regex import RegexError, compile_pattern

__all__ = ["FUNCTIONS", "Optional", "QuantityValue", "URLValue"]


@dataclass(frozen=True)
class Optional:
    """CEL `optional_type` for `oldSelf` under `optionalOldSelf: true`."""

    present: bool
    inner: Any = None


@dataclass(frozen=True)
class QuantityValue:
    value: qty.Quantity


@dataclass(frozen=True)
class URLValue:
    parsed: urllib.parse.SplitResult


def _err(message: str) -> CELEvalError:
    return CELEvalError(message)


def _is_sorted(items: Any) -> Any:
    values = list(items)
    return celtypes.BoolType(all(values[i] <= values[i + 1] for i in range(len(values) - 1)))


def _sum(items: Any) -> Any:
    values = list(items)
    if not values:
        return celtypes.IntType(0)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _min(items: Any, *more: Any) -> Any:
    values = list(items) if not more else [items, *more]
    if not values:
        return _err("min called on empty list")
    return min(values)


def _max(items: Any, *more: Any) -> Any:
    values = list(items) if not more else [items, *more]
    if not values:
        return _err("max called on empty list")
    return max(values)


def _index_of(target: Any, item: Any, start: Any = None) -> Any:
    if isinstance(target, str):
        return celtypes.IntType(str(target).find(str(item), int(start or 0)))
    values = list(target)
    for i, value in enumerate(values):
        if value == item:
            return celtypes.IntType(i)
    return celtypes.IntType(-1)


def _last_index_of(target: Any, item: Any) -> Any:
    if isinstance(target, str):
        return celtypes.IntType(str(target).rfind(str(item)))
    values = list(target)
    for i in range(len(values) - 1, -1, -1):
        if values[i] == item:
            return celtypes.IntType(i)
    return celtypes.IntType(-1)


def _char_at(text: Any, i: Any) -> Any:
    s = str(text)
    idx = int(i)
    if idx < 0 or idx > len(s):
        return _err(f"index out of range: {idx}")
    return celtypes.StringType(s[idx : idx + 1])


def _lower_ascii(text: Any) -> Any:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in str(text)))


def _upper_ascii(text: Any) -> Any:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in str(text)))


def _replace(text: Any, old: Any, new: Any, limit: Any = None) -> Any:
    count = -1 if limit is None else int(limit)
    return celtypes.StringType(str(text).replace(str(old), str(new), count))


def _split(text: Any, sep: Any, limit: Any = None) -> Any:
    count = -1 if limit is None else int(limit)
    if count == 0:
        return celtypes.ListType([])
    parts = str(text).split(str(sep), count - 1 if count > 0 else -1) if str(sep) else list(str(text))
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    s = str(text)
    lo = int(start)
    hi = len(s) if end is None else int(end)
    if lo < 0 or hi > len(s) or lo > hi:
        return _err(f"index out of range: {lo if lo < 0 or lo > len(s) else hi}")
    return celtypes.StringType(s[lo:hi])


def _trim(text: Any) -> Any:
    return celtypes.StringType(str(text).strip())


def _join(items: Any, sep: Any = "") -> Any:
    return celtypes.StringType(str(sep).join(str(i) for i in items))


def _reverse(target: Any) -> Any:
    if isinstance(target, str):
        return celtypes.StringType(str(target)[::-1])
    return celtypes.ListType(list(target)[::-1])


def _find(text: Any, pattern: Any) -> Any:
    try:
        match = compile_pattern(str(pattern)).search(str(text))
    except RegexError as exc:
        return _err(str(exc))
    return celtypes.StringType(match.group(0) if match else "")


def _find_all(text: Any, pattern: Any, limit: Any = None) -> Any:
    try:
        compiled = compile_pattern(str(pattern))
    except RegexError as exc:
        return _err(str(exc))
    out: list[Any] = []
    pos = 0
    s = str(text)
    cap = -1 if limit is None else int(limit)
    while pos <= len(s) and (cap < 0 or len(out) < cap):
        match = compiled.search(s, pos)
        if match is None:
            break
        out.append(celtypes.StringType(match.group(0)))
        pos = match.end() + (1 if match.end() == match.start() else 0)
    return celtypes.ListType(out)


def _parse_url(text: str) -> urllib.parse.SplitResult | None:
    # url.ParseRequestURI: absolute URL or absolute path, no fragment-only, no spaces.
    if not text or " " in text or any(ord(c) < 0x20 for c in text):
        return None
    parsed = urllib.parse.urlsplit(text)
    if not parsed.scheme and not text.startswith("/"):
        return None
    return parsed


def _url(text: Any) -> Any:
    parsed = _parse_url(str(text))
    if parsed is None:
        return _err(f"URL parse error during conversion from string: parse {text!s}: invalid URI for request")
    return URLValue(parsed)


def _is_url(text: Any) -> Any:
    return celtypes.BoolType(_parse_url(str(text)) is not None)


def _get_scheme(u: URLValue) -> Any:
    return celtypes.StringType(u.parsed.scheme)


def _get_host(u: URLValue) -> Any:
    return celtypes.StringType(u.parsed.netloc.rpartition("@")[2])


def _get_hostname(u: URLValue) -> Any:
    host = u.parsed.netloc.rpartition("@")[2]
    if host.startswith("["):
        return celtypes.StringType(host[1 : host.find("]")])
    return celtypes.StringType(host.partition(":")[0])


def _get_port(u: URLValue) -> Any:
    host = u.parsed.netloc.rpartition("@")[2]
    if host.startswith("["):
        rest = host[host.find("]") + 1 :]
        return celtypes.StringType(rest[1:] if rest.startswith(":") else "")
    return celtypes.StringType(host.partition(":")[2])


def _get_escaped_path(u: URLValue) -> Any:
    return celtypes.StringType(u.parsed.path)


def _get_query(u: URLValue) -> Any:
    query: dict[Any, Any] = {}
    for k, v in urllib.parse.parse_qsl(u.parsed.query, keep_blank_values=True):
        query.setdefault(celtypes.StringType(k), celtypes.ListType([]))
        query[celtypes.StringType(k)].append(celtypes.StringType(v))
    return celtypes.MapType(query)


def _quantity(text: Any) -> Any:
    try:
        return QuantityValue(qty.parse_quantity(str(text)))
    except (ValueError, TypeError) as exc:
        return _err(f"quantities must match the regular expression: {exc}")


def _is_quantity(text: Any) -> Any:
    try:
        qty.parse_quantity(str(text))
    except (ValueError, TypeError):
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _qv(q: Any) -> Fraction:
    if isinstance(q, QuantityValue):
        return q.value.value
    return Fraction(int(q))


def _is_integer(q: QuantityValue) -> Any:
    v = _qv(q)
    return celtypes.BoolType(v.denominator == 1 and -(2**63) <= v <= 2**63 - 1)


def _as_integer(q: QuantityValue) -> Any:
    v = _qv(q)
    if v.denominator != 1 or not -(2**63) <= v <= 2**63 - 1:
        return _err("cannot convert value to integer")
    return celtypes.IntType(int(v))


def _as_approximate_float(q: QuantityValue) -> Any:
    return celtypes.DoubleType(float(_qv(q)))


def _sign(q: QuantityValue) -> Any:
    v = _qv(q)
    return celtypes.IntType((v > 0) - (v < 0))


def _with_value(q: QuantityValue, value: Fraction) -> QuantityValue:
    return QuantityValue(qty.Quantity(value, q.value.format))


def _add(q: QuantityValue, other: Any) -> Any:
    return _with_value(q, _qv(q) + _qv(other))


def _sub(q: QuantityValue, other: Any) -> Any:
    return _with_value(q, _qv(q) - _qv(other))


def _is_greater_than(q: QuantityValue, other: Any) -> Any:
    return celtypes.BoolType(_qv(q) > _qv(other))


def _is_less_than(q: QuantityValue, other: Any) -> Any:
    return celtypes.BoolType(_qv(q) < _qv(other))


def _compare_to(q: QuantityValue, other: Any) -> Any:
    a, b = _qv(q), _qv(other)
    return celtypes.IntType((a > b) - (a < b))


def _has_value(o: Optional) -> Any:
    return celtypes.BoolType(o.present)


def _value(o: Optional) -> Any:
    if not o.present:
        return _err("optional.none() dereference")
    return o.inner


def _or_value(o: Optional, default: Any) -> Any:
    return o.inner if o.present else default


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "charAt": _char_at,
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "replace": _replace,
    "split": _split,
    "substring": _substring,
    "trim": _trim,
    "join": _join,
    "reverse": _reverse,
    "find": _find,
    "findAll": _find_all,
    "url": _url,
    "isURL": _is_url,
    "getScheme": _get_scheme,
    "getHost": _get_host,
    "getHostname": _get_hostname,
    "getPort": _get_port,
    "getEscapedPath": _get_escaped_path,
    "getQuery": _get_query,
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "isInteger": _is_integer,
    "asInteger": _as_integer,
    "asApproximateFloat": _as_approximate_float,
    "sign": _sign,
    "add": _add,
    "sub": _sub,
    "isGreaterThan": _is_greater_than,
    "isLessThan": _is_less_than,
    "compareTo": _compare_to,
    "hasValue": _has_value,
    "value": _value,
    "orValue": _or_value,
}
