"""`x-kubernetes-validations`: compile once per schema, evaluate per object.

Follows `pkg/apiserver/schema/cel` (compilation) and `validation.go` (evaluation): `self` is the
value at the schema node, `oldSelf` the correlated old value; rules using `oldSelf` (transition
rules) run only on update when an old value exists, unless `optionalOldSelf` makes `oldSelf` an
optional. Null values are not validated. Failures become `field.Error`s whose bad value is the
node's schema type, as upstream (`Invalid value: "object": failed rule: ...`).

Runtime cost is bounded as upstream bounds it (`cel_cost`: a per-call limit and a budget per
object, with upstream's messages); the estimated cost at CRD creation is `cel_estimate`'s.
Not implemented: static type checking at compile time
(unknown fields or overload mismatches surface at evaluation), `format`/`quote`/ip/cidr/semver
libraries, timestamp/duration typing of `date-time`/`duration` strings, CEL escaping of
property names that are reserved words.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from controlplane.api.crd import fielderrors as fe
from controlplane.api.crd import nodes, paths
from controlplane.api.crd.cel_cost import (
    COST_LIMIT_EXCEEDED,
    PER_CALL_LIMIT,
    RUNTIME_COST_BUDGET,
    CostedRunner,
    CostLimitExceeded,
)
from controlplane.api.crd.cel_library import FUNCTIONS, Optional
from controlplane.api.errors import Cause

__all__ = [
    "SUPPORTED_REASONS",
    "CompiledRule",
    "CostBudget",
    "RuleError",
    "compile_rule",
    "escape_property",
    "evaluate_rules",
    "rule_repr",
    "to_cel",
    "unescape_property",
]

SUPPORTED_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_OLD_SELF = re.compile(r"\boldSelf\b")
_STRING_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_ENV = celpy.Environment(runner_class=CostedRunner)


@dataclass
class CostBudget:
    """What is left of the runtime cost budget of one object's validation; once exhausted, no
    further rule runs (upstream returns a remaining budget of -1)."""

    remaining: int = field(default_factory=lambda: RUNTIME_COST_BUDGET)
    exhausted: bool = False


@dataclass(frozen=True)
class RuleError:
    """A rule that does not compile; `field` is `rule` or `messageExpression`."""

    field: str
    detail: str


@dataclass(frozen=True)
class CompiledRule:
    rule: str
    message: str
    message_expression: Any
    program: Any
    uses_old_self: bool
    optional_old_self: bool
    reason: str | None
    field_path: str
    message_expression_text: str = ""


def _go_str(value: Any) -> str:
    return fe.go_value(value if isinstance(value, str) else "")


def rule_repr(rule: dict[str, Any]) -> str:
    """Go's `%#v` of an `apiextensions.ValidationRule`, as upstream puts it in compile errors."""
    reason = rule.get("reason")
    optional = rule.get("optionalOldSelf")
    reason_text = (
        f"(*apiextensions.FieldValueErrorReason)({_go_str(reason)})"
        if reason
        else "(*apiextensions.FieldValueErrorReason)(nil)"
    )
    optional_text = f"(*bool)({'true' if optional else 'false'})" if optional is not None else "(*bool)(nil)"
    return (
        "apiextensions.ValidationRule{"
        f"Rule:{_go_str(rule.get('rule'))}, Message:{_go_str(rule.get('message'))}, "
        f"MessageExpression:{_go_str(rule.get('messageExpression'))}, Reason:{reason_text}, "
        f"FieldPath:{_go_str(rule.get('fieldPath'))}, OptionalOldSelf:{optional_text}}}"
    )


def _compile(expr: str) -> Any:
    return _ENV.program(_ENV.compile(expr), functions=FUNCTIONS)


def _parse_error(exc: Exception) -> str:
    first = str(exc).strip().splitlines()
    return f"compilation failed: ERROR: <input>: Syntax error: {first[0] if first else 'invalid expression'}"


def compile_rule(rule: dict[str, Any]) -> CompiledRule | RuleError:
    text = str(rule.get("rule") or "")
    try:
        program = _compile(text)
    except CELParseError as exc:
        return RuleError("rule", _parse_error(exc))
    message_expression = None
    message_expr_text = str(rule.get("messageExpression") or "").strip()
    if message_expr_text:
        try:
            message_expression = _compile(message_expr_text)
        except CELParseError as exc:
            return RuleError("messageExpression", _parse_error(exc))
    code = _STRING_LITERAL.sub("''", text)
    return CompiledRule(
        rule=text,
        message=str(rule.get("message") or ""),
        message_expression=message_expression,
        program=program,
        uses_old_self=_OLD_SELF.search(code) is not None,
        optional_old_self=bool(rule.get("optionalOldSelf")),
        reason=rule.get("reason"),
        field_path=str(rule.get("fieldPath") or ""),
        message_expression_text=message_expr_text,
    )


_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def escape_property(name: str) -> str | None:
    """How a schema property is named in CEL (`x-y` is `x__dash__y`, `if` is `__if__`), or
    None when it cannot be accessed (upstream's `Escape`)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


def unescape_property(name: str) -> str:
    """The schema property a CEL field name stands for (`x__dash__y` is `x-y`)."""
    return _unescape(name)


def _unescape(name: str) -> str:
    if name.startswith("__") and name.endswith("__") and name[2:-2] in _RESERVED:
        return name[2:-2]
    return (
        name.replace("__dot__", ".")
        .replace("__dash__", "-")
        .replace("__slash__", "/")
        .replace("__underscores__", "__")
    )


_CHAIN = re.compile(r"\b(self|oldSelf)((?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")
_SEGMENT = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_ROOT_META = frozenset({"apiVersion", "kind", "metadata"})


def undefined_field(rule: str, schema: dict[str, Any], is_root: bool) -> str:
    """The compile error cel-go's type checker gives for `self.<field>` where the schema has no
    such field ("" when every simple selection on `self`/`oldSelf` resolves). Selections on maps,
    on preserved-unknown objects and on non-objects are left to run time."""
    code = _STRING_LITERAL.sub(lambda m: " " * len(m.group(0)), rule)
    for match in _CHAIN.finditer(code):
        segments = list(_SEGMENT.finditer(match.group(2)))
        if match.group(3):
            segments = segments[:-1]  # the last name is a method call
        node: dict[str, Any] | None = schema
        for i, segment in enumerate(segments):
            name = segment.group(1)
            if node is None or node.get("x-kubernetes-preserve-unknown-fields"):
                break
            if is_root and i == 0 and name in _ROOT_META:
                break
            if node.get("type") != "object" or nodes.additional(node)[0]:
                break
            found = nodes.prop(node, _unescape(name))
            if found is None:
                column = match.start(2) + segment.start() + segment.group(0).index(".") + 1
                return (
                    f"compilation failed: ERROR: <input>:1:{column}: undefined field '{name}'\n"
                    f" | {rule}\n | {'.' * (column - 1)}^"
                )
            node = found
    return ""


def to_cel(value: Any, schema: dict[str, Any] | None = None) -> Any:
    """A JSON value as the CEL type its schema gives it: `number` fields are doubles even when
    the JSON has no fraction, `date-time`/`duration`/`byte` strings are timestamps, durations
    and bytes (as upstream's `UnstructuredToVal`)."""
    if schema is None:
        return json_to_cel(value)
    typ = schema.get("type")
    if isinstance(value, bool) or value is None:
        return json_to_cel(value)
    if isinstance(value, int | float):
        if typ == "number":
            return celtypes.DoubleType(float(value))
        if isinstance(value, float) and typ == "integer" and value.is_integer():
            return celtypes.IntType(int(value))
        return json_to_cel(value)
    if isinstance(value, str):
        return _string_to_cel(value, schema.get("format"))
    if isinstance(value, list):
        item_schema = nodes.items(schema)
        return celtypes.ListType([to_cel(item, item_schema) for item in value])
    if isinstance(value, dict):
        props = nodes.properties(schema)
        _, extra = nodes.additional(schema)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if k in props:
                escaped = escape_property(k)
                if escaped is not None:
                    out[celtypes.StringType(escaped)] = to_cel(v, props[k])
            else:
                out[celtypes.StringType(k)] = to_cel(v, extra)
        return celtypes.MapType(out)
    return json_to_cel(value)


def _string_to_cel(value: str, fmt: Any) -> Any:
    try:
        if fmt in ("date-time", "datetime"):
            return celtypes.TimestampType(value)
        if fmt == "duration":
            return celtypes.DurationType(value)
        if fmt == "byte":
            return celtypes.BytesType(base64.b64decode(value, validate=True))
    except (ValueError, TypeError, binascii.Error):
        pass
    return celtypes.StringType(value)


def _error_string(rule: CompiledRule) -> str:
    return rule.message.strip() if rule.message else rule.rule.strip()


def _message_or_default(rule: CompiledRule) -> str:
    return rule.message.strip() if rule.message else f"failed rule: {_error_string(rule)}"


def _eval_error_text(exc: CELEvalError) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    match = re.match(r"no such member in mapping: '(.*)'", text)
    if match:
        return f"no such key: {match.group(1)}"
    if text.startswith("found no matching overload"):
        return "no such overload"
    return text


def _field_path(base: str, field_path: str) -> str:
    """A rule's `fieldPath` (`.a.b`, `['a.b']`, `[0]`) appended to the node's path."""
    path = base
    for match in re.finditer(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]", field_path):
        name, quoted, number = match.groups()
        if name is not None:
            path = paths.child(path, name)
        elif quoted is not None:
            path = paths.child(path, quoted)
        else:
            path = paths.index(path, int(number))
    return path


def _for_reason(path: str, type_name: str, detail: str, reason: str | None) -> Cause:
    if reason == "FieldValueForbidden":
        return fe.forbidden(path, detail)
    if reason == "FieldValueRequired":
        return fe.required(path, detail)
    if reason == "FieldValueDuplicate":
        return fe.duplicate(path, type_name)
    return fe.invalid(path, type_name, detail)


def _message(rule: CompiledRule, activation: dict[str, Any], budget: CostBudget) -> str:
    if rule.message_expression is None:
        return _message_or_default(rule)
    try:
        result, cost = rule.message_expression.evaluate_with_cost(activation, PER_CALL_LIMIT)
    except CostLimitExceeded:
        budget.exhausted = True
        return (
            "no further validation rules will be run due to call cost exceeds limit for "
            f"messageExpression: {fe.go_value(rule.message_expression_text)}"
        )
    if cost > budget.remaining:
        budget.exhausted = True
        return (
            "messageExpression evaluation failed due to running out of cost budget, "
            "no further validation rules will be run"
        )
    budget.remaining -= cost
    if isinstance(result, CELEvalError):
        return _message_or_default(rule)
    if not isinstance(result, str) or not result.strip() or "\n" in result:
        return _message_or_default(rule)
    return str(result)


def evaluate_rules(
    rules: list[CompiledRule],
    type_name: str,
    path: str,
    value: Any,
    old: Any,
    has_old: bool,
    schema: dict[str, Any] | None = None,
    budget: CostBudget | None = None,
) -> list[Cause]:
    """Run a node's rules; `has_old` says whether `old` is a correlated old value. `budget` is
    the object's runtime cost budget, shared by every node's rules."""
    out: list[Cause] = []
    budget = budget if budget is not None else CostBudget()
    if value is None or not rules or budget.exhausted:
        return out
    shown_path = path or "<nil>"
    self_value = to_cel(value, schema)
    old_value = to_cel(old, schema) if has_old else None
    for rule in rules:
        activation: dict[str, Any] = {"self": self_value}
        if rule.uses_old_self:
            if rule.optional_old_self:
                activation["oldSelf"] = Optional(has_old, old_value)
            elif not has_old:
                continue
            else:
                activation["oldSelf"] = old_value
        try:
            result, cost = rule.program.evaluate_with_cost(activation, PER_CALL_LIMIT)
        except CostLimitExceeded:
            out.append(
                fe.invalid(
                    shown_path,
                    type_name,
                    f"'{COST_LIMIT_EXCEEDED}': no further validation rules will be run due to call cost "
                    f"exceeds limit for rule: {_error_string(rule)}",
                )
            )
            budget.exhausted = True
            return out
        if cost > budget.remaining:
            out.append(
                fe.invalid(
                    shown_path,
                    type_name,
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                )
            )
            budget.exhausted = True
            return out
        budget.remaining -= cost
        if isinstance(result, CELEvalError):
            text = _eval_error_text(result)
            if text == "no such overload":
                detail = (
                    f"'{text}': call arguments did not match a supported operator, function or macro "
                    f"signature for rule: {_error_string(rule)}"
                )
            else:
                detail = f"{text} evaluating rule: {_error_string(rule)}"
            out.append(fe.invalid(shown_path, type_name, detail))
            continue
        if result is True or (isinstance(result, celtypes.BoolType) and bool(result)):
            continue
        target = _field_path(path, rule.field_path) if rule.field_path else shown_path
        out.append(_for_reason(target or "<nil>", type_name, _message(rule, activation, budget), rule.reason))
        if budget.exhausted:
            return out
    return out
