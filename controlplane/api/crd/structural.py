"""Validate a CRD's `openAPIV3Schema` as apiextensions does for v1 CRDs.

Three passes, in upstream's order, with upstream's texts:
1. `ValidateCustomResourceDefinitionOpenAPISchema` (validation/validation.go): keywords that are
   not supported, list/map type extensions, `x-kubernetes-validations` (rule, message,
   messageExpression, reason, fieldPath; rules compiled with CEL; `oldSelf` only where values
   correlate), patterns that RE2 refuses, defaults where forbidden.
2. `ValidateStructural` (schema/validation.go): the structural rules (types everywhere,
   `items` for arrays, metadata restricted to name/generateName, nothing but value validations
   inside allOf/anyOf/oneOf/not, those only on fields the structural part specifies).
3. When the schema is structural, `ValidateDefaults`: each default is pruned-equal, valid
   against its schema and its list invariants.

`fld` is the path of the schema, e.g. `spec.versions[0].schema.openAPIV3Schema`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from controlplane.api.crd import cel, cel_estimate, nodes, objectmeta, pruning
from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd.custom_resource_schema import CustomResourceSchema
from controlplane.api.crd.paths import child, index, key
from controlplane.api.crd.regex import RegexError, compile_pattern
from controlplane.api.crd.values import validate_value
from controlplane.api.errors import Cause

__all__ = ["validate_crd_schema"]

Schema = dict[str, Any]

_OPENAPI_V3_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_META_FIELDS = ("metadata", "kind", "apiVersion")
_ROOT, _ITEM, _FIELD = "root", "item", "field"


@dataclass(frozen=True)
class _SSV:
    """`specStandardValidatorV3` state as it descends."""

    allow_defaults: bool = True
    disallow_defaults_reason: str = ""
    inside_resource_meta: bool = False
    uncorrelatable_path: str | None = None

    def forbid_defaults(self, reason: str) -> _SSV:
        return replace(self, allow_defaults=False, disallow_defaults_reason=reason)

    def forbid_old_self(self, path: str) -> _SSV:
        return self if self.uncorrelatable_path is not None else replace(self, uncorrelatable_path=path)


def validate_crd_schema(schema: dict[str, Any], fld: str) -> list[Cause]:
    if not isinstance(schema, dict):
        return [fe.required(fld, "")]
    errs: list[Cause] = []
    _generic(schema, fld, _SSV(), True, errs)
    structural: list[Cause] = []
    _structural(schema, _ROOT, fld, structural)
    _completeness(schema, fld, structural)
    errs.extend(structural)
    if not structural:
        _defaults(schema, fld, False, errs, is_root=True)
        errs.extend(cel_estimate.cost_errors(schema, fld))
    return errs


# --- 1. generic keyword validation ---------------------------------------------------------------


def _generic(s: Any, path: str, ssv: _SSV, is_root: bool, errs: list[Cause]) -> None:
    if not isinstance(s, dict):
        return
    if s.get("uniqueItems") is True:
        errs.append(
            fe.forbidden(
                child(path, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    extra = s.get("additionalProperties")
    props = nodes.properties(s)
    if extra is not None:
        if props and (extra is not True):
            errs.append(
                fe.forbidden(
                    child(path, "additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        sub = ssv
        if ssv.inside_resource_meta:
            sub = sub.forbid_defaults("inside additionalProperties applying to object metadata")
        _generic(extra, child(path, "additionalProperties"), sub, False, errs)
    for name, prop_schema in props.items():
        sub = ssv
        if s.get("x-kubernetes-map-type") == "atomic":
            sub = sub.forbid_old_self(path)
        if (is_root or s.get("x-kubernetes-embedded-resource")) and name in _META_FIELDS:
            sub = replace(sub, inside_resource_meta=True)
            if is_root:
                sub = sub.forbid_defaults(f"in top-level {name}")
        _generic(prop_schema, key(child(path, "properties"), name), sub, False, errs)
    _generic(s.get("not"), child(path, "not"), ssv, False, errs)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for i, sub_schema in enumerate(s.get(keyword) or []):
            _generic(sub_schema, index(child(path, keyword), i), ssv, False, errs)
    items = s.get("items")
    if items is not None:
        sub = ssv
        if s.get("x-kubernetes-list-type") in (None, "atomic"):
            sub = sub.forbid_old_self(path)
        if isinstance(items, list):
            for i, item in enumerate(items):
                _generic(item, index(child(path, "items"), i), sub, False, errs)
        else:
            _generic(items, child(path, "items"), sub, False, errs)
    _extensions(s, path, errs)
    _map_list_keys(s, path, errs)
    _pattern(s, path, errs)
    _validations(s, path, ssv, is_root, errs)
    _standard(s, path, ssv, errs)


def _pattern(s: Schema, path: str, errs: list[Cause]) -> None:
    pattern = s.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            compile_pattern(pattern)
        except RegexError as exc:
            errs.append(
                fe.invalid(
                    child(path, "pattern"), pattern, f"must be a valid regular expression, but isn't: {exc}"
                )
            )


def _extensions(s: Schema, path: str, errs: list[Cause]) -> None:
    typ = s.get("type") or ""
    preserve = s.get("x-kubernetes-preserve-unknown-fields")
    if preserve is False:
        errs.append(
            fe.invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"), False, "must be true or undefined"
            )
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and typ != "object":
        detail = "must be object if x-kubernetes-map-type is specified"
        errs.append(
            fe.invalid(child(path, "type"), typ, detail) if typ else fe.required(child(path, "type"), detail)
        )
    if map_type is not None and map_type not in ("atomic", "granular"):
        errs.append(fe.not_supported(child(path, "x-kubernetes-map-type"), map_type, ["atomic", "granular"]))
    list_type = s.get("x-kubernetes-list-type")
    items = nodes.items(s)
    if list_type is not None and typ != "array":
        detail = "must be array if x-kubernetes-list-type is specified"
        errs.append(
            fe.invalid(child(path, "type"), typ, detail) if typ else fe.required(child(path, "type"), detail)
        )
    elif list_type == "set" and items is not None:
        detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            errs.append(
                fe.invalid(
                    child(path, "items", "x-kubernetes-list-type"),
                    items.get("x-kubernetes-list-type"),
                    detail,
                )
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            errs.append(fe.invalid(child(path, "items", "x-kubernetes-map-type"), list_type, detail))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(
            fe.not_supported(child(path, "x-kubernetes-list-type"), list_type, ["atomic", "set", "map"])
        )
    map_keys = s.get("x-kubernetes-list-map-keys") or []
    if map_keys:
        detail = "must be map if x-kubernetes-list-map-keys is non-empty"
        if list_type is None:
            errs.append(fe.required(child(path, "x-kubernetes-list-type"), detail))
        elif list_type != "map":
            errs.append(fe.invalid(child(path, "x-kubernetes-list-type"), list_type, detail))
    if list_type == "map":
        raw_items = s.get("items")
        if not map_keys:
            errs.append(
                fe.required(
                    child(path, "x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if raw_items is None:
            errs.append(
                fe.required(child(path, "items"), "must have a schema if x-kubernetes-list-type is map")
            )
        elif not isinstance(raw_items, dict):
            errs.append(
                fe.invalid(
                    child(path, "items"),
                    raw_items,
                    "must only have a single schema if x-kubernetes-list-type is map",
                )
            )
        elif raw_items.get("type") != "object":
            errs.append(
                fe.invalid(
                    child(path, "items", "type"),
                    raw_items.get("type") or "",
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
        else:
            seen: set[str] = set()
            item_props = nodes.properties(raw_items)
            for name in map_keys:
                if name in item_props:
                    if item_props[name].get("type") in ("array", "object"):
                        errs.append(
                            fe.invalid(
                                key(child(path, "items", "properties"), name) + ".type",
                                raw_items.get("type"),
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            )
                        )
                else:
                    errs.append(
                        fe.invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            map_keys,
                            "entries must all be names of item properties",
                        )
                    )
                if name in seen:
                    errs.append(
                        fe.invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            map_keys,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(name)


def _has_newlines(text: str) -> bool:
    return "\n" in text or "\r" in text


def _validations(s: Schema, path: str, ssv: _SSV, is_root: bool, errs: list[Cause]) -> None:
    rules = s.get("x-kubernetes-validations") or []
    if not isinstance(rules, list):
        return
    base = child(path, "x-kubernetes-validations")
    for i, rule in enumerate(rules):
        rpath = index(base, i)
        if not isinstance(rule, dict):
            errs.append(fe.invalid(rpath, rule, "must be an object"))
            continue
        text = str(rule.get("rule") or "")
        message = str(rule.get("message") or "")
        message_expression = str(rule.get("messageExpression") or "")
        if not text.strip():
            errs.append(fe.required(child(rpath, "rule"), "rule is not specified"))
        elif message and not message.strip():
            errs.append(
                fe.invalid(child(rpath, "message"), message, "message must be non-empty if specified")
            )
        elif _has_newlines(message.strip()):
            errs.append(fe.invalid(child(rpath, "message"), message, "message must not contain line breaks"))
        elif _has_newlines(text.strip()) and not message.strip():
            errs.append(
                fe.required(child(rpath, "message"), "message must be specified if rule contains line breaks")
            )
        if message_expression and not message_expression.strip():
            errs.append(
                fe.required(
                    child(rpath, "messageExpression"), "messageExpression must be non-empty if specified"
                )
            )
        reason = rule.get("reason")
        if reason is not None and reason not in cel.SUPPORTED_REASONS:
            errs.append(fe.not_supported(child(rpath, "reason"), reason, list(cel.SUPPORTED_REASONS)))
        field_path = rule.get("fieldPath")
        if isinstance(field_path, str) and field_path:
            if not field_path.strip():
                errs.append(
                    fe.invalid(
                        child(rpath, "fieldPath"), field_path, "fieldPath must be non-empty if specified"
                    )
                )
            elif _has_newlines(field_path):
                errs.append(
                    fe.invalid(
                        child(rpath, "fieldPath"), field_path, "fieldPath must not contain line breaks"
                    )
                )
            elif not _field_path_valid(s, field_path):
                errs.append(
                    fe.invalid(child(rpath, "fieldPath"), field_path, "fieldPath must be a valid path")
                )
        if not text.strip():
            continue
        compiled = cel.compile_rule(rule)
        if isinstance(compiled, cel.RuleError):
            errs.append(fe.invalid(child(rpath, compiled.field), cel.rule_repr(rule), compiled.detail))
            continue
        if "\n" not in text and (detail := cel.undefined_field(text, s, is_root)):
            errs.append(fe.invalid(child(rpath, "rule"), cel.rule_repr(rule), detail))
            continue
        if compiled.uses_old_self and ssv.uncorrelatable_path is not None:
            errs.append(
                fe.invalid(
                    child(rpath, "rule"),
                    text,
                    f"oldSelf cannot be used on the uncorrelatable portion of the schema within {ssv.uncorrelatable_path}",
                )
            )


def _field_path_valid(s: Schema, field_path: str) -> bool:
    import re

    node: Schema | None = s
    for match in re.finditer(
        r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]|(.)", field_path
    ):
        name, quoted, number, junk = match.groups()
        if junk is not None or node is None:
            return False
        if number is not None:
            node = nodes.items(node)
            continue
        field_name = name if name is not None else quoted
        sub = nodes.prop(node, field_name)
        if sub is None:
            _, sub = nodes.additional(node)
            if sub is None and not node.get("x-kubernetes-preserve-unknown-fields"):
                return False
        node = sub
    return True


def _standard(s: Schema, path: str, ssv: _SSV, errs: list[Cause]) -> None:
    typ = s.get("type")
    if isinstance(typ, str) and typ and typ not in _OPENAPI_V3_TYPES and typ != "null":
        errs.append(fe.not_supported(child(path, "type"), typ, list(_OPENAPI_V3_TYPES)))
    if "default" in s and not ssv.allow_defaults:
        detail = "must not be set"
        if ssv.disallow_defaults_reason:
            detail += " " + ssv.disallow_defaults_reason
        errs.append(fe.forbidden(child(path, "default"), detail))
    if s.get("id"):
        errs.append(fe.forbidden(child(path, "id"), "id is not supported"))
    if "additionalItems" in s:
        errs.append(fe.forbidden(child(path, "additionalItems"), "additionalItems is not supported"))
    if s.get("patternProperties"):
        errs.append(fe.forbidden(child(path, "patternProperties"), "patternProperties is not supported"))
    if s.get("definitions"):
        errs.append(fe.forbidden(child(path, "definitions"), "definitions is not supported"))
    if s.get("dependencies"):
        errs.append(fe.forbidden(child(path, "dependencies"), "dependencies is not supported"))
    if "$ref" in s:
        errs.append(fe.forbidden(child(path, "$ref"), "$ref is not supported"))
    if typ == "null":
        errs.append(
            fe.forbidden(child(path, "type"), "type cannot be set to null, use nullable as an alternative")
        )
    if isinstance(s.get("items"), list) and s["items"]:
        errs.append(fe.forbidden(child(path, "items"), "items must be a schema object and not an array"))
    if ssv.inside_resource_meta and s.get("x-kubernetes-embedded-resource"):
        errs.append(
            fe.forbidden(
                child(path, "x-kubernetes-embedded-resource"), "must not be used inside of resource meta"
            )
        )


# --- 2. structural rules -------------------------------------------------------------------------

_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _is_int_or_string_any_of(s: Schema) -> bool:
    return s.get("anyOf") == _INT_OR_STRING_ANY_OF


def _is_int_or_string_all_of(s: Schema) -> bool:
    all_of = s.get("allOf") or []
    return bool(all_of) and isinstance(all_of[0], dict) and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF


def _structural(s: Schema | None, lvl: str, path: str, errs: list[Cause]) -> None:
    if s is None:
        return
    typ = s.get("type") or ""
    if typ == "array" and nodes.items(s) is None:
        errs.append(fe.required(child(path, "items"), "must be specified"))
    _structural(nodes.items(s), _ITEM, child(path, "items"), errs)
    for name, prop_schema in nodes.properties(s).items():
        if isinstance(prop_schema, dict):
            _structural(prop_schema, _FIELD, key(child(path, "properties"), name), errs)
    _, extra = nodes.additional(s)
    if extra is not None:
        _structural(extra, _FIELD, child(path, "additionalProperties"), errs)
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    if int_or_string and preserve:
        errs.append(
            fe.invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        errs.append(
            fe.invalid(
                child(path, "x-kubernetes-embedded-resource"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    skip_any_of = int_or_string and _is_int_or_string_any_of(s)
    skip_first_all_of_any_of = int_or_string and _is_int_or_string_all_of(s)
    _value_validation(s, skip_any_of, skip_first_all_of_any_of, lvl, path, errs)
    check_metadata = lvl == _ROOT or embedded
    if embedded and typ != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        errs.append(
            fe.invalid(child(path, "type"), typ, detail) if typ else fe.required(child(path, "type"), detail)
        )
    elif not typ and not embedded and not int_or_string:
        detail = {
            _ROOT: "must not be empty at the root",
            _ITEM: "must not be empty for specified array items",
            _FIELD: "must not be empty for specified object fields",
        }[lvl]
        errs.append(fe.required(child(path, "type"), detail))
    if embedded and s.get("additionalProperties") is not None:
        errs.append(
            fe.forbidden(
                child(path, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if lvl == _ROOT and typ and typ != "object":
        errs.append(fe.invalid(child(path, "type"), typ, "must be object at the root"))
    props = nodes.properties(s)
    for name in ("kind", "apiVersion"):
        sub = props.get(name)
        if isinstance(sub, dict) and check_metadata and sub.get("type") != "string":
            errs.append(
                fe.invalid(
                    key(child(path, "properties"), name) + ".type", sub.get("type") or "", "must be string"
                )
            )
    meta = props.get("metadata")
    if isinstance(meta, dict):
        _metadata_invariants(meta, check_metadata, lvl, key(child(path, "properties"), "metadata"), errs)
    if embedded and not preserve and not props:
        errs.append(
            fe.required(
                child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            )
        )


def _metadata_invariants(s: Schema, check_metadata: bool, lvl: str, path: str, errs: list[Cause]) -> None:
    if check_metadata and s.get("type") != "object":
        errs.append(fe.invalid(child(path, "type"), s.get("type") or "", "must be object"))
    if lvl != _ROOT:
        return
    rest = {k: v for k, v in s.items() if k not in {"type", "default", "properties", "description", "title"}}
    props = nodes.properties(s)
    names = set(props)
    only_names = names <= {"name", "generateName"}
    if not only_names or rest:
        errs.append(
            fe.forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            )
        )


_NESTED_FORBIDDEN_EMPTY = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
)


def _value_validation(
    s: Schema, skip_any_of: bool, skip_first_all_of_any_of: bool, lvl: str, path: str, errs: list[Cause]
) -> None:
    if not skip_any_of:
        for i, sub in enumerate(s.get("anyOf") or []):
            _nested(sub, False, lvl, index(child(path, "anyOf"), i), errs)
    for i, sub in enumerate(s.get("allOf") or []):
        _nested(sub, skip_first_all_of_any_of and i == 0, lvl, index(child(path, "allOf"), i), errs)
    for i, sub in enumerate(s.get("oneOf") or []):
        _nested(sub, False, lvl, index(child(path, "oneOf"), i), errs)
    if isinstance(s.get("not"), dict):
        _nested(s["not"], False, lvl, child(path, "not"), errs)


def _nested(v: Any, skip_any_of: bool, lvl: str, path: str, errs: list[Cause]) -> None:
    if not isinstance(v, dict):
        return
    _value_validation(v, skip_any_of, False, lvl, path, errs)
    if isinstance(v.get("items"), dict):
        _nested(v["items"], False, lvl, child(path, "items"), errs)
    for name, sub in nodes.properties(v).items():
        _nested(sub, False, _FIELD, key(child(path, "properties"), name), errs)
    for name, detail in _NESTED_FORBIDDEN_EMPTY:
        if v.get(name) not in (None, ""):
            errs.append(fe.forbidden(child(path, name), detail))
    if v.get("nullable"):
        errs.append(fe.forbidden(child(path, "nullable"), "must be false to be structural"))
    if "x-kubernetes-preserve-unknown-fields" in v:
        errs.append(
            fe.forbidden(
                child(path, "x-kubernetes-preserve-unknown-fields"), "must be false to be structural"
            )
        )
    if v.get("x-kubernetes-embedded-resource"):
        errs.append(
            fe.forbidden(child(path, "x-kubernetes-embedded-resource"), "must be false to be structural")
        )
    if v.get("x-kubernetes-int-or-string"):
        errs.append(fe.forbidden(child(path, "x-kubernetes-int-or-string"), "must be false to be structural"))
    if v.get("x-kubernetes-list-map-keys"):
        errs.append(fe.forbidden(child(path, "x-kubernetes-list-map-keys"), "must be empty to be structural"))
    if "x-kubernetes-list-type" in v:
        errs.append(fe.forbidden(child(path, "x-kubernetes-list-type"), "must be undefined to be structural"))
    if "x-kubernetes-map-type" in v:
        errs.append(fe.forbidden(child(path, "x-kubernetes-map-type"), "must be undefined to be structural"))
    if "metadata" in nodes.properties(v):
        errs.append(
            fe.forbidden(
                key(child(path, "properties"), "metadata"), "must not be specified in a nested context"
            )
        )


def _completeness(s: Schema | None, path: str, errs: list[Cause]) -> None:
    if s is None:
        return
    _vv_complete(s, s, path, path, errs)
    _completeness(nodes.items(s), child(path, "items"), errs)
    for name, sub in nodes.properties(s).items():
        _completeness(sub, key(child(path, "properties"), name), errs)
    _, extra = nodes.additional(s)
    _completeness(extra, child(path, "additionalProperties"), errs)


def _vv_complete(v: Schema, s: Schema | None, spath: str, vpath: str, errs: list[Cause]) -> None:
    for keyword in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(v.get(keyword) or []):
            _nested_complete(sub, s, spath, index(child(vpath, keyword), i), errs)
    if isinstance(v.get("not"), dict):
        _nested_complete(v["not"], s, spath, child(vpath, "not"), errs)


def _nested_complete(v: Any, s: Schema | None, spath: str, vpath: str, errs: list[Cause]) -> None:
    if not isinstance(v, dict):
        return
    if s is None:
        errs.append(fe.required(spath, f"because it is defined in {vpath}"))
        return
    _vv_complete(v, s, spath, vpath, errs)
    if isinstance(v.get("items"), dict):
        _nested_complete(v["items"], nodes.items(s), child(spath, "items"), child(vpath, "items"), errs)
    for name, sub in nodes.properties(v).items():
        target = nodes.prop(s, name)
        if target is not None:
            _nested_complete(
                sub,
                target,
                key(child(spath, "properties"), name),
                key(child(vpath, "properties"), name),
                errs,
            )
            continue
        _, extra = nodes.additional(s)
        if extra is None:
            errs.append(
                fe.required(
                    key(child(spath, "properties"), name),
                    f"because it is defined in {key(child(vpath, 'properties'), name)}",
                )
            )
        else:
            _nested_complete(
                sub, extra, child(spath, "additionalProperties"), key(child(vpath, "properties"), name), errs
            )


# --- 3. defaults ---------------------------------------------------------------------------------


def _defaults(
    s: Schema | None, path: str, inside_meta: bool, errs: list[Cause], is_root: bool = False
) -> None:
    """`ValidateDefaults` (defaulting/validation.go); additionalProperties are not followed
    because defaults are forbidden there."""
    if s is None:
        return
    if "default" in s and not inside_meta:
        value = s["default"]
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        pruned = copy.deepcopy(value)
        pruning.prune(pruned, s, embedded)
        dpath = child(path, "default")
        if pruned != value:
            errs.append(fe.invalid(dpath, value, "must not have unknown fields"))
        if meta_errs := objectmeta.validate_embedded(dpath, value, s, embedded):
            errs.extend(meta_errs)
        elif value_errs := validate_value(s, value, dpath):
            errs.extend(value_errs)
        else:
            compiled = CustomResourceSchema(s)
            if compiled.has_rules:
                errs.extend(compiled.validate_rules(value, value, dpath))
    _defaults(nodes.items(s), child(path, "items"), inside_meta, errs)
    embedded = is_root or bool(s.get("x-kubernetes-embedded-resource"))
    for name, sub in nodes.properties(s).items():
        sub_inside = inside_meta or (embedded and name in _META_FIELDS)
        _defaults(sub, key(child(path, "properties"), name), sub_inside, errs)


def _map_list_keys(s: Schema, path: str, errs: list[Cause]) -> None:
    """`validateMapListKeysMapSet`: list-map keys must be required or defaulted, never nullable."""
    if s.get("x-kubernetes-list-type") != "map":
        return
    item_schema = nodes.items(s)
    if item_schema is None:
        return
    required = set(item_schema.get("required") or [])
    for name in nodes.list_map_keys(s):
        prop_schema = nodes.prop(item_schema, name)
        if prop_schema is None:
            continue
        ppath = key(child(path, "items", "properties"), name)
        if name not in required and "default" not in prop_schema:
            errs.append(
                fe.required(
                    child(ppath, "default"),
                    "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                )
            )
        if prop_schema.get("nullable"):
            errs.append(
                fe.forbidden(
                    child(ppath, "nullable"),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                )
            )
