"""Validate a JSON value against a CRD schema: kube-openapi's `SchemaValidator` as used by
apiextensions (`pkg/apiserver/validation`), with its errors turned into `field.Error`s the way
`kubeOpenAPIResultToFieldErrors` does.

Validators run in kube-openapi's order (type, allOf/anyOf/oneOf/not, string, format, number,
array, enum, object); a keyword applies by the kind of the value, not the declared type, so a
wrong type yields the type error and nothing more for that node.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd.formats import check_format
from controlplane.api.crd.regex import RegexError, compile_pattern
from controlplane.api.errors import Cause

__all__ = ["MISSING", "correlate_item", "json_equal", "json_type", "validate_value"]

MISSING: Any = object()

Schema = dict[str, Any]

_REQUIRED = "required"
_ENUM = "enum"
_TOO_LONG = "tooLong"
_MAX_ITEMS = "maxItems"
_MAX_PROPS = "maxProperties"
_TYPE = "type"
_OTHER = "other"


@dataclass(frozen=True)
class _Err:
    code: str
    name: str
    value: Any
    message: str
    limit: Any = None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`; `1` and `1.0` are the same number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b if isinstance(a, str) or isinstance(b, str) else bool(a == b)


def correlate_item(schema: Schema, item: Any, old_list: list[Any] | None) -> Any:
    """The old element an array element corresponds to: by key for list-type map, by value for
    set; elements of atomic lists do not correlate."""
    if old_list is None:
        return MISSING
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        return next((o for o in old_list if json_equal(o, item)), MISSING)
    if list_type == "map" and isinstance(item, dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        want = [item.get(k) for k in keys]
        for old_item in old_list:
            if isinstance(old_item, dict) and all(
                json_equal(old_item.get(k), w) for k, w in zip(keys, want, strict=True)
            ):
                return old_item
    return MISSING


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "unknown"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fe.go_float(value)
    return str(value)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    declared = schema.get("type")
    return [declared] if isinstance(declared, str) and declared else []


def _type_ok(types: list[str], value: Any) -> bool:
    kind = json_type(value)
    if not types or kind in types:
        return True
    if kind == "number" and "integer" in types and float(value).is_integer():
        return True
    return kind == "integer" and "number" in types


def _enum_ok(enum: list[Any], value: Any) -> bool:
    for allowed in enum:
        if allowed is None or value is None:
            if allowed is value:
                return True
            continue
        if isinstance(allowed, bool) != isinstance(value, bool):
            continue
        if isinstance(allowed, int | float) and isinstance(value, int | float):
            if allowed == value:
                return True
        elif allowed == value:
            return True
    return False


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _multiple_of(value: float, factor: float) -> bool:
    if isinstance(value, int) and isinstance(factor, int) and factor != 0:
        return value % factor == 0
    if factor == 0:
        return True
    quotient = value / factor
    return math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9)


class _Validator:
    def __init__(self) -> None:
        self.errs: list[_Err] = []

    def add(self, code: str, name: str, value: Any, message: str, limit: Any = None) -> None:
        self.errs.append(_Err(code, name, value, message, limit))

    def run(self, schema: Schema, data: Any, path: str, old: Any = MISSING) -> None:
        if old is not MISSING and json_equal(data, old):
            # Ratcheting (CRDValidationRatcheting): an unchanged value keeps passing.
            return
        types = _types(schema)
        if data is None:
            if not schema.get("nullable") and types:
                self.add(_TYPE, path, "null", f'{path} in body must be of type {",".join(types)}: "null"')
            self._enum(schema, data, path)
            return
        if not _type_ok(types, data):
            kind = json_type(data)
            self.add(_TYPE, path, kind, f"{path} in body must be of type {','.join(types)}: {_q(kind)}")
        self._composites(schema, data, path, old)
        if isinstance(data, str):
            self._string(schema, data, path)
        elif isinstance(data, int | float) and not isinstance(data, bool):
            self._number(schema, data, path)
        elif isinstance(data, list):
            self._array(schema, data, path, old)
        self._enum(schema, data, path)
        if isinstance(data, dict):
            self._object(schema, data, path, old)

    def _sub(self, schema: Any, data: Any, path: str, old: Any) -> list[_Err]:
        sub = _Validator()
        if isinstance(schema, dict):
            sub.run(schema, data, path, old)
        return sub.errs

    def _composites(self, schema: Schema, data: Any, path: str, old: Any) -> None:
        all_of = schema.get("allOf") or []
        if all_of:
            valid = 0
            for sub_schema in all_of:
                errs = self._sub(sub_schema, data, path, old)
                valid += not errs
                self.errs.extend(errs)
            if valid != len(all_of):
                extra = ". None validated" if valid == 0 else ""
                self.add(_OTHER, path, None, f"{path} must validate all the schemas (allOf){extra}")
        any_of = schema.get("anyOf") or []
        if any_of and not any(not self._sub(s, data, path, old) for s in any_of):
            self.add(_OTHER, path, None, f"{path} must validate at least one schema (anyOf)")
        one_of = schema.get("oneOf") or []
        if one_of:
            valid = sum(1 for s in one_of if not self._sub(s, data, path, old))
            if valid != 1:
                extra = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.add(_OTHER, path, None, f"{path} must validate one and only one schema (oneOf). {extra}")
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and not self._sub(not_schema, data, path, old):
            self.add(_OTHER, path, None, f"{path} must not validate the schema (not)")

    def _string(self, schema: Schema, data: str, path: str) -> None:
        max_length = schema.get("maxLength")
        if isinstance(max_length, int) and len(data) > max_length:
            msg = f"{path} in body should be at most {max_length} chars long"
            self.add(_TOO_LONG, path, data, msg, max_length)
        else:
            min_length = schema.get("minLength")
            pattern = schema.get("pattern")
            if isinstance(min_length, int) and len(data) < min_length:
                self.add(_OTHER, path, data, f"{path} in body should be at least {min_length} chars long")
            elif isinstance(pattern, str) and pattern and not _matches(pattern, data):
                self.add(_OTHER, path, data, f"{path} in body should match '{pattern}'")
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt and not check_format(fmt, data):
            self.add(_TYPE, path, data, f"{path} in body must be of type {fmt}: {_q(data)}")

    def _number(self, schema: Schema, data: float, path: str) -> None:
        factor = schema.get("multipleOf")
        if isinstance(factor, int | float) and not _multiple_of(data, factor):
            self.add(_OTHER, path, data, f"{path} in body should be a multiple of {_num(float(factor))}")
        maximum = schema.get("maximum")
        if isinstance(maximum, int | float):
            if schema.get("exclusiveMaximum") and data >= maximum:
                self.add(_OTHER, path, data, f"{path} in body should be less than {_num(float(maximum))}")
            elif data > maximum:
                msg = f"{path} in body should be less than or equal to {_num(float(maximum))}"
                self.add(_OTHER, path, data, msg)
        minimum = schema.get("minimum")
        if isinstance(minimum, int | float):
            if schema.get("exclusiveMinimum") and data <= minimum:
                self.add(_OTHER, path, data, f"{path} in body should be greater than {_num(float(minimum))}")
            elif data < minimum:
                msg = f"{path} in body should be greater than or equal to {_num(float(minimum))}"
                self.add(_OTHER, path, data, msg)

    def _array(self, schema: Schema, data: list[Any], path: str, old: Any) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            old_list = old if isinstance(old, list) else None
            for index, item in enumerate(data):
                self.run(items, item, f"{path}[{index}]", correlate_item(schema, item, old_list))
        min_items = schema.get("minItems")
        if isinstance(min_items, int) and len(data) < min_items:
            self.add(_OTHER, path, len(data), f"{path} in body should have at least {min_items} items")
        max_items = schema.get("maxItems")
        if isinstance(max_items, int) and len(data) > max_items:
            msg = f"{path} in body should have at most {max_items} items"
            self.add(_MAX_ITEMS, path, len(data), msg, max_items)
        if schema.get("uniqueItems"):
            for i, item in enumerate(data):
                if any(_equal(item, other) for other in data[:i]):
                    self.add(_OTHER, path, None, f"{path} in body shouldn't contain duplicates")
                    break

    def _enum(self, schema: Schema, data: Any, path: str) -> None:
        enum = schema.get("enum")
        if isinstance(enum, list) and enum and not _enum_ok(enum, data):
            self.add(_ENUM, path, data, f"{path} in body should be one of {enum}", enum)

    def _object(self, schema: Schema, data: dict[str, Any], path: str, old: Any) -> None:
        count = len(data)
        min_props = schema.get("minProperties")
        if isinstance(min_props, int) and count < min_props:
            self.add(_OTHER, path, count, f"{path} in body should have at least {min_props} properties")
            return
        max_props = schema.get("maxProperties")
        if isinstance(max_props, int) and count > max_props:
            msg = f"{path} in body should have at most {max_props} properties"
            self.add(_MAX_PROPS, path, count, msg, max_props)
            return
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        if extra is False:
            for key in data:
                if key not in props:
                    self.add(
                        _OTHER,
                        _child(path, key),
                        None,
                        f"{_child(path, key)} in body is a forbidden property",
                    )
        for key in schema.get("required") or []:
            if key not in data:
                self.add(_REQUIRED, _child(path, key), None, f"{_child(path, key)} in body is required")
        old_map = old if isinstance(old, dict) else {}
        for key, value in data.items():
            if key in props:
                if isinstance(props[key], dict):
                    self.run(props[key], value, _child(path, key), old_map.get(key, MISSING))
            elif isinstance(extra, dict):
                self.run(extra, value, _child(path, key), old_map.get(key, MISSING))


def _matches(pattern: str, value: str) -> bool:
    try:
        return compile_pattern(pattern).search(value) is not None
    except RegexError:
        return False


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def validate_value(schema: Schema, data: Any, fld: str = "", old: Any = MISSING) -> list[Cause]:
    """Causes for `data` against `schema`; `fld` prefixes every path (upstream's `fldPath`).
    With `old` (an update), values equal to their correlated old value are not checked."""
    validator = _Validator()
    validator.run(schema, data, "", old)
    out: list[Cause] = []
    for err in validator.errs:
        name = err.name.removeprefix(".")
        path = _child(fld, name) if name and name != "." else fld
        value = "" if err.value is None else err.value
        if err.code == _REQUIRED:
            out.append(fe.required(path))
        elif err.code == _ENUM:
            out.append(fe.not_supported(path, err.value, [_enum_text(v) for v in err.limit]))
        elif err.code == _TOO_LONG:
            out.append(fe.too_long(path, int(err.limit)))
        elif err.code in {_MAX_ITEMS, _MAX_PROPS}:
            out.append(fe.too_many(path, int(err.value), int(err.limit)))
        elif err.code == _TYPE:
            out.append(fe.type_invalid(path, value, err.message))
        else:
            out.append(fe.invalid(path, value, err.message))
    return out
