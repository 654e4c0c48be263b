"""`field.Error` as upstream renders it (`k8s.io/apimachinery/pkg/util/validation/field`).

Causes carry `field` (the path) and `message` (`ErrorBody()`), so the API server can build
`errors.Invalid` bodies byte-compatible with upstream. Values are rendered the way Go's `%v`,
`%q` and `%#v` would render decoded JSON (`map[string]interface {}{...}` for objects).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from controlplane.api import errors
from controlplane.api.errors import Cause

__all__ = [
    "FIELD_VALUE_TOO_MANY",
    "duplicate",
    "forbidden",
    "go_float",
    "go_value",
    "invalid",
    "not_supported",
    "required",
    "too_long",
    "too_many",
    "type_invalid",
]

FIELD_VALUE_TOO_MANY = "FieldValueTooMany"


def go_float(value: float) -> str:
    """Go's `%v` for a float64 (strconv 'g', shortest): exponent form below 1e-4 and from 1e6."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "0"
    dec = Decimal(repr(float(value))).normalize()
    sign, digit_tuple, _ = dec.as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    exponent = dec.adjusted()
    neg = "-" if sign else ""
    if exponent < -4 or exponent >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mant}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return neg + format(abs(dec), "f")


def _go_sharp(value: Any) -> str:
    """Go's `%#v` for a decoded JSON value."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        inner = ", ".join(
            f"{json.dumps(k, ensure_ascii=False)}:{_go_sharp(v)}" for k, v in sorted(value.items())
        )
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_sharp(v) for v in value) + "}"
    return repr(value)


def go_value(value: Any) -> str:
    """How `field.Error.ErrorBody()` prints a bad value."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return _go_sharp(value)


def _cause(reason: str, path: str, body: str, detail: str) -> Cause:
    return Cause(reason=reason, message=f"{body}: {detail}" if detail else body, field=path)


def required(path: str, detail: str = "") -> Cause:
    return _cause(errors.FIELD_VALUE_REQUIRED, path, "Required value", detail)


def forbidden(path: str, detail: str = "") -> Cause:
    return _cause(errors.FIELD_VALUE_FORBIDDEN, path, "Forbidden", detail)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return _cause(errors.FIELD_VALUE_INVALID, path, f"Invalid value: {go_value(value)}", detail)


def type_invalid(path: str, value: Any, detail: str) -> Cause:
    return _cause(errors.FIELD_VALUE_TYPE_INVALID, path, f"Invalid value: {go_value(value)}", detail)


def duplicate(path: str, value: Any) -> Cause:
    return _cause(errors.FIELD_VALUE_DUPLICATE, path, f"Duplicate value: {go_value(value)}", "")


def not_supported(path: str, value: Any, valid: Iterable[str]) -> Cause:
    quoted = ", ".join(json.dumps(v, ensure_ascii=False) for v in valid)
    detail = f"supported values: {quoted}" if quoted else ""
    return _cause(errors.FIELD_VALUE_NOT_SUPPORTED, path, f"Unsupported value: {go_value(value)}", detail)


def too_long(path: str, max_length: int) -> Cause:
    if max_length >= 0:
        unit = "byte" if max_length == 1 else "bytes"
        detail = f"may not be more than {max_length} {unit}"
    else:
        detail = "value is too long"
    return _cause(errors.FIELD_VALUE_TOO_LONG, path, "Too long", detail)


def too_many(path: str, actual: int, maximum: int) -> Cause:
    if maximum >= 0:
        detail = f"must have at most {maximum} {'item' if maximum == 1 else 'items'}"
    else:
        detail = "has too many items"
    body = f"Too many: {actual}" if actual >= 0 else "Too many"
    return _cause(FIELD_VALUE_TOO_MANY, path, body, detail)
