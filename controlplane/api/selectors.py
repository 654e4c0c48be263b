"""Label and field selectors: parsing, matching and formatting, as in apimachinery.

Label selectors follow `k8s.io/apimachinery/pkg/labels/selector.go`: the same lexer and
recursive-descent parser, the same requirement rules and the same error strings, so a bad
`?labelSelector=` comes back worded as upstream words it. Field selectors follow
`pkg/fields/selector.go`: comma-separated `field=value`, `field==value` or `field!=value` terms
with backslash escapes for `\\`, `,` and `=` in values. Every client-facing failure is an
`errors.BadRequest`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controlplane.api import errors
from controlplane.api.names import is_qualified_name, is_valid_label_value

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "escape_field_value",
    "format_label_selector",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
    "unescape_field_value",
]


class Operator(StrEnum):
    """`k8s.io/apimachinery/pkg/selection.Operator` with upstream's string values."""

    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    IN = "in"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    EXISTS = "exists"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = (
    Operator.IN,
    Operator.NOT_IN,
    Operator.EQUALS,
    Operator.DOUBLE_EQUALS,
    Operator.NOT_EQUALS,
    Operator.GREATER_THAN,
    Operator.LESS_THAN,
)
_VALID_OPERATORS = (*_BINARY_OPERATORS, Operator.EXISTS, Operator.DOES_NOT_EXIST)


class _SelectorError(Exception):
    """A parse or requirement error with upstream's text; becomes BadRequest at the edge."""


def _go_int(text: str) -> int | None:
    """`strconv.ParseInt(text, 10, 64)`: optional sign, ASCII digits, int64 range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _render(value: Any) -> str:
    """How `field.Error` renders a bad value: strings quoted, other values as JSON."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _aggregate(messages: list[str]) -> str:
    # utilerrors.Aggregate: one error prints alone, several as "[a, b]" without duplicates.
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _key_error(path: str, key: str) -> str | None:
    msgs = is_qualified_name(key)
    return f"{path}: Invalid value: {_render(key)}: {'; '.join(msgs)}" if msgs else None


@dataclass(frozen=True)
class Requirement:
    """One `key <op> values` term; `values` is kept sorted and unique, as upstream's set is."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def build(cls, key: str, operator: Operator, values: Iterable[str] | None) -> Requirement:
        """`labels.NewRequirement`: validates and raises `_SelectorError` with upstream's text."""
        vals = None if values is None else list(values)
        problems: list[str] = []
        key_err = _key_error("key", key)
        if key_err:
            problems.append(key_err)
        count = len(vals or [])
        if operator in (Operator.IN, Operator.NOT_IN):
            if count == 0:
                problems.append(
                    f"values: Invalid value: {_render(vals)}: "
                    "for 'in', 'notin' operators, values set can't be empty"
                )
        elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
            if count != 1:
                problems.append(
                    f"values: Invalid value: {_render(vals)}: exact-match compatibility requires one single value"
                )
        elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            if count != 0:
                problems.append(
                    f"values: Invalid value: {_render(vals)}: "
                    "values set must be empty for exists and does not exist"
                )
        elif operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if count != 1:
                problems.append(
                    f"values: Invalid value: {_render(vals)}: "
                    "for 'Gt', 'Lt' operators, exactly one value is required"
                )
            for i, v in enumerate(vals or []):
                if _go_int(v) is None:
                    problems.append(
                        f"values[{i}]: Invalid value: {_render(v)}: "
                        "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
        for i, v in enumerate(vals or []):
            msgs = is_valid_label_value(v)
            if msgs:
                problems.append(f"values[{i}][{key}]: Invalid value: {_render(v)}: {'; '.join(msgs)}")
        if problems:
            raise _SelectorError(_aggregate(problems))
        return cls(key, operator, tuple(sorted(set(vals or []))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        if self.key not in labels or len(self.values) != 1:
            return False
        have, want = _go_int(labels[self.key]), _go_int(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({joined})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements, sorted by key. `nothing` is upstream's `labels.Nothing()`, what a
    nil `metav1.LabelSelector` converts to: it matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        for r in self.requirements:
            if r.key == key:
                exact = r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                return r.values[0] if exact and len(r.values) == 1 else None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted(reqs: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


# --- the label selector lexer and parser (selector.go) ------------------------------------------

_IDENT, _END, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _IN, _LT, _NEQ, _NOTIN, _OPEN, _ERROR = range(14)
_TOKENS = {
    ")": _CLOSE,
    ",": _COMMA,
    "!": _NOT,
    "==": _DEQ,
    "=": _EQ,
    ">": _GT,
    "in": _IN,
    "<": _LT,
    "!=": _NEQ,
    "notin": _NOTIN,
    "(": _OPEN,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_END, ""))
            return items
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still forms a known operator.
            buf, last = "", (0, "")
            while pos < n and text[pos] in _SPECIAL:
                candidate = buf + text[pos]
                if candidate in _TOKENS:
                    buf, last = candidate, (_TOKENS[candidate], candidate)
                    pos += 1
                elif last[0]:
                    break
                else:
                    buf = candidate
                    pos += 1
            items.append(last if last[0] else (_ERROR, f"error expected: keyword found '{buf}'"))
        else:
            start = pos
            while pos < n and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
            word = text[start:pos]
            items.append((_TOKENS.get(word, _IDENT), word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _tok(self, index: int, values: bool) -> tuple[int, str]:
        tok, lit = self.items[index]
        # In a value context the keywords `in` and `notin` are plain identifiers.
        if values and tok in (_IN, _NOTIN):
            tok = _IDENT
        return tok, lit

    def lookahead(self, values: bool = True) -> tuple[int, str]:
        return self._tok(self.pos, values)

    def consume(self, values: bool = True) -> tuple[int, str]:
        self.pos += 1
        return self._tok(self.pos - 1, values)

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_IDENT, _NOT):
                try:
                    reqs.append(self.requirement())
                except _SelectorError as exc:
                    raise _SelectorError(f"unable to parse requirement: {exc}") from None
                t, lit2 = self.consume()
                if t == _END:
                    return reqs
                if t == _COMMA:
                    t2, lit3 = self.lookahead()
                    if t2 not in (_IDENT, _NOT):
                        raise _SelectorError(f"found '{lit3}', expected: identifier after ','")
                else:
                    raise _SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _END:
                return reqs
            else:
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator: Operator | None = None
        tok, key = self.consume()
        if tok == _NOT:
            operator = Operator.DOES_NOT_EXIST
            tok, key = self.consume()
        if tok != _IDENT:
            raise _SelectorError(f"found '{key}', expected: identifier")
        # Upstream validates the key here with a nil field path, hence the "<nil>" in the text.
        key_err = _key_error("<nil>", key)
        if key_err:
            raise _SelectorError(key_err)
        if self.lookahead()[0] in (_END, _COMMA):
            return Requirement.build(key, operator or Operator.EXISTS, [])
        if operator is Operator.DOES_NOT_EXIST:
            return Requirement.build(key, operator, [])
        operator = self.operator()
        values = self.set_values() if operator in (Operator.IN, Operator.NOT_IN) else self.exact_value()
        return Requirement.build(key, operator, sorted(values))

    def operator(self) -> Operator:
        tok, lit = self.consume(values=False)
        ops = {
            _IN: Operator.IN,
            _EQ: Operator.EQUALS,
            _DEQ: Operator.DOUBLE_EQUALS,
            _GT: Operator.GREATER_THAN,
            _LT: Operator.LESS_THAN,
            _NOTIN: Operator.NOT_IN,
            _NEQ: Operator.NOT_EQUALS,
        }
        if tok not in ops:
            expected = ", ".join(op.value for op in _BINARY_OPERATORS)
            raise _SelectorError(f"found '{lit}', expected: {expected}")
        return ops[tok]

    def set_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _OPEN:
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_IDENT, _COMMA):
            values = self.identifiers()
            if self.consume()[0] != _CLOSE:
                raise _SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self.consume()
            return {""}
        raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _IDENT:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return values
                raise _SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                # Empty strings are values too: "(,a)", "(a,)" and "(a,,b)" all hold "".
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    self.consume()
                    values.add("")
            else:
                raise _SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead()[0] in (_END, _COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _IDENT:
            return {lit}
        raise _SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """`labels.Parse`: the `?labelSelector=` syntax. Raises `errors.BadRequest`."""
    try:
        reqs = _Parser(text).parse()
    except _SelectorError as exc:
        raise errors.BadRequest(message=str(exc)) from None
    return LabelSelector(_sorted(reqs))


_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """`metav1.LabelSelectorAsSelector`: None selects nothing, `{}` selects everything."""
    if sel is None:
        return LabelSelector(nothing=True)
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    reqs: list[Requirement] = []
    try:
        for key, value in match_labels.items():
            reqs.append(Requirement.build(str(key), Operator.EQUALS, [str(value)]))
        for expr in expressions:
            op_name = expr.get("operator", "")
            if op_name not in _EXPRESSION_OPERATORS:
                raise _SelectorError(f"{_render(op_name)} is not a valid label selector operator")
            raw_values = expr.get("values")
            values = None if raw_values is None else [str(v) for v in raw_values]
            reqs.append(Requirement.build(str(expr.get("key", "")), _EXPRESSION_OPERATORS[op_name], values))
    except _SelectorError as exc:
        raise errors.BadRequest(message=str(exc)) from None
    return LabelSelector(_sorted(reqs))


def format_label_selector(sel: LabelSelector | Mapping[str, Any] | None) -> str:
    """The selector's canonical string, e.g. a scale subresource's `status.selector`."""
    if sel is None:
        return ""
    if isinstance(sel, LabelSelector):
        return str(sel)
    return str(label_selector_from_dict(sel))


# --- field selectors (fields/selector.go) -------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    """`field=value` (operator "=") or `field!=value` (operator "!="); `==` is stored as "="."""

    field: str
    operator: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # A field missing from the object's field set reads as "", as fields.Set.Get does.
        equal = fields.get(self.field, "") == self.value
        return equal if self.operator == "=" else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.operator == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    """`fields.EscapeValue`: backslash first, then `,` and `=`."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    """`fields.UnescapeValue`; raises `errors.BadRequest` with upstream's text."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise errors.BadRequest(message=f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Upstream prints the rune with %v, which is its code point.
            raise errors.BadRequest(message=f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise errors.BadRequest(message="invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms: list[str] = []
    start, in_slash = 0, False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """`fields.ParseSelector`: the `?fieldSelector=` syntax. Raises `errors.BadRequest`."""
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise errors.BadRequest(message=f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        reqs.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", unescape_field_value(rhs)))
    return FieldSelector(tuple(reqs))
