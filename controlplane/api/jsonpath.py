"""A small JSONPath evaluator for CRD `additionalPrinterColumns`, and Go's text for its results.

It covers the subset of `k8s.io/client-go/util/jsonpath` that printer columns use:
`.a.b`, `['a.b']`, `.a[0]`, `.a[-1]`, `.a[1:3]`, `.a[*]`, `.*`, `..name` (recursive descent),
unions `[0,2]` / `['a','b']`, and filters `[?(@.type=="Ready")]` with `== != < <= > >=` or a
bare `[?(@.field)]` existence test. An optional `{...}` wrapper and a leading `$` are accepted.
Missing keys yield no results, as with upstream's `AllowMissingKeys(true)`.

`go_text` renders one result the way upstream's `PrintResults` does: strings as themselves,
numbers as Go's `%v`, maps and lists as compact `encoding/json`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

__all__ = ["JSONPath", "JSONPathError", "compile_path", "find", "go_float", "go_json", "go_text"]


class JSONPathError(ValueError):
    """A path that does not parse, or a filter comparing values of incompatible types."""


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Keys:
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Indices:
    indices: tuple[int, ...]


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None
    step: int | None


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Filter:
    left: tuple[_Step, ...]
    op: str | None  # None: existence test
    right: tuple[_Step, ...] | _Literal | None


@dataclass(frozen=True)
class _Recursive:
    step: _Step


_Step: TypeAlias = _Field | _Wildcard | _Keys | _Indices | _Slice | _Filter | _Recursive

_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
# Characters that end a bare field name; inside a filter operators and spaces end it too.
_NAME_STOPS = frozenset(".[")
_FILTER_NAME_STOPS = frozenset(".[ =!<>)")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> JSONPathError:
        return JSONPathError(f"invalid JSONPath {self.text!r} at {self.pos}: {message}")

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_spaces(self) -> None:
        while not self.at_end() and self.text[self.pos] == " ":
            self.pos += 1

    def steps(self, *, in_filter: bool) -> tuple[_Step, ...]:
        out: list[_Step] = []
        stops = _FILTER_NAME_STOPS if in_filter else _NAME_STOPS
        while not self.at_end():
            ch = self.text[self.pos]
            if ch == ".":
                if self.peek(2) == "..":
                    self.pos += 2
                    out.append(_Recursive(self.single_step(stops)))
                    continue
                self.pos += 1
                if self.at_end() or self.text[self.pos] in stops:
                    if self.peek() == "[" or self.at_end() or in_filter:
                        continue  # "." alone (or ".[...]") means the current node
                    raise self.error("empty field name")
                out.append(self.single_step(stops))
            elif ch == "[":
                out.append(self.bracket())
            elif in_filter:
                break
            else:
                raise self.error(f"unexpected {ch!r}")
        return tuple(out)

    def single_step(self, stops: frozenset[str]) -> _Step:
        if self.peek() == "[":
            return self.bracket()
        if self.peek() == "*":
            self.pos += 1
            return _Wildcard()
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in stops:
            self.pos += 1
        if self.pos == start:
            raise self.error("empty field name")
        return _Field(self.text[start : self.pos])

    def bracket(self) -> _Step:
        self.pos += 1  # "["
        self.skip_spaces()
        if self.peek() == "?":
            self.pos += 1
            self.skip_spaces()
            if self.peek() != "(":
                raise self.error("expected '(' after '?'")
            self.pos += 1
            step: _Step = self.filter()
            self.skip_spaces()
            if self.peek() != ")":
                raise self.error("unterminated filter")
            self.pos += 1
        elif self.peek() == "*":
            self.pos += 1
            step = _Wildcard()
        elif self.peek() in ("'", '"'):
            names = [self.quoted()]
            self.skip_spaces()
            while self.peek() == ",":
                self.pos += 1
                self.skip_spaces()
                names.append(self.quoted())
                self.skip_spaces()
            step = _Keys(tuple(names))
        else:
            step = self.numeric()
        self.skip_spaces()
        if self.peek() != "]":
            raise self.error("expected ']'")
        self.pos += 1
        return step

    def quoted(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise self.error("expected a quoted name")
        self.pos += 1
        chars: list[str] = []
        while not self.at_end() and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.at_end():
            raise self.error("unterminated string")
        self.pos += 1
        return "".join(chars)

    def numeric(self) -> _Step:
        end = self.text.find("]", self.pos)
        if end < 0:
            raise self.error("unterminated '['")
        body = self.text[self.pos : end].replace(" ", "")
        try:
            if ":" in body:
                parts = body.split(":")
                if len(parts) > 3:
                    raise self.error(f"bad slice {body!r}")
                bounds = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
                if bounds[2] == 0:
                    raise self.error("slice step cannot be zero")
                step: _Step = _Slice(bounds[0], bounds[1], bounds[2])
            else:
                step = _Indices(tuple(int(p) for p in body.split(",")))
        except ValueError as exc:
            if isinstance(exc, JSONPathError):
                raise
            raise self.error(f"bad index {body!r}") from None
        self.pos = end
        return step

    def filter(self) -> _Filter:
        self.skip_spaces()
        left = self.operand()
        if isinstance(left, _Literal):
            raise self.error("a filter must start with '@'")
        self.skip_spaces()
        op = next((c for c in _COMPARISONS if self.text.startswith(c, self.pos)), None)
        if op is None:
            return _Filter(left, None, None)
        self.pos += len(op)
        self.skip_spaces()
        return _Filter(left, op, self.operand())

    def operand(self) -> tuple[_Step, ...] | _Literal:
        ch = self.peek()
        if ch == "@":
            self.pos += 1
            return self.steps(in_filter=True)
        if ch in ("'", '"'):
            return _Literal(self.quoted())
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in " )":
            self.pos += 1
        word = self.text[start : self.pos]
        if word in ("true", "false"):
            return _Literal(word == "true")
        if word == "null":
            return _Literal(None)
        try:
            return _Literal(int(word))
        except ValueError:
            pass
        try:
            return _Literal(float(word))
        except ValueError:
            raise self.error(f"bad filter operand {word!r}") from None


@dataclass(frozen=True)
class JSONPath:
    """A compiled path; `find` returns every match in document order."""

    source: str
    steps: tuple[_Step, ...]

    def find(self, data: Any) -> list[Any]:
        return _evaluate(self.steps, [data])


@functools.lru_cache(maxsize=512)
def compile_path(expression: str) -> JSONPath:
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if text and text[0] not in ".[":
        raise JSONPathError(f"invalid JSONPath {expression!r}: must start with '.' or '['")
    return JSONPath(expression, _Parser(text).steps(in_filter=False))


def find(expression: str, data: Any) -> list[Any]:
    """Every value `expression` selects in `data` (a decoded JSON document)."""
    return compile_path(expression).find(data)


def _evaluate(steps: Sequence[_Step], nodes: list[Any]) -> list[Any]:
    for step in steps:
        nodes = [out for node in nodes for out in _apply(step, node)]
    return nodes


def _descendants(node: Any) -> Iterator[Any]:
    yield node
    children: Any = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
    for child in children:
        yield from _descendants(child)


def _apply(step: _Step, node: Any) -> Iterator[Any]:
    if isinstance(step, _Field):
        if isinstance(node, Mapping) and step.name in node:
            yield node[step.name]
    elif isinstance(step, _Keys):
        if isinstance(node, Mapping):
            yield from (node[name] for name in step.names if name in node)
    elif isinstance(step, _Wildcard):
        if isinstance(node, Mapping):
            yield from node.values()
        elif isinstance(node, list):
            yield from node
    elif isinstance(step, _Indices):
        if isinstance(node, list):
            for index in step.indices:
                if -len(node) <= index < len(node):
                    yield node[index]
    elif isinstance(step, _Slice):
        if isinstance(node, list):
            yield from node[step.start : step.stop : step.step]
    elif isinstance(step, _Recursive):
        for descendant in _descendants(node):
            yield from _apply(step.step, descendant)
    elif isinstance(node, list):
        yield from (item for item in node if _passes(step, item))


def _passes(flt: _Filter, item: Any) -> bool:
    lefts = _evaluate(flt.left, [item])
    if flt.op is None:
        return bool(lefts)
    if not lefts:
        return False
    if len(lefts) > 1:
        raise JSONPathError("can only compare one element at a time")
    if isinstance(flt.right, _Literal):
        right = flt.right.value
    else:
        rights = _evaluate(flt.right or (), [item])
        if len(rights) != 1:
            return False
        right = rights[0]
    return _compare(flt.op, lefts[0], right)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _compare(op: str, left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind != _kind(right) or kind == "other":
        raise JSONPathError(f"incompatible types for comparison: {left!r} {op} {right!r}")
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if kind == "bool":
        raise JSONPathError(f"invalid type for comparison: {left!r} {op} {right!r}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of |value| and the decimal point position."""
    _sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # digits[:point] are the integer part
    return text, point if text != "0" else 1


def _format_e(digits: str, point: int, negative: bool, min_exp_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    exp_text = str(abs(exp)).rjust(min_exp_digits, "0")
    return f"{'-' if negative else ''}{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"


def _format_f(digits: str, point: int, negative: bool) -> str:
    if point <= 0:
        text = "0." + "0" * -point + digits
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits))
    else:
        text = digits[:point] + "." + digits[point:]
    return ("-" if negative else "") + text


def go_float(value: float) -> str:
    """Go's `fmt.Sprint(float64)`: shortest digits, `%e` form below 1e-4 and from 1e6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    negative = value < 0 or (value == 0 and str(value).startswith("-"))
    digits, point = _shortest_digits(value)
    if digits == "0":
        return "-0" if negative else "0"
    exp = point - 1
    # strconv's 'g' at the shortest precision switches to %e from an exponent of 6.
    if exp < -4 or exp >= 6:
        return _format_e(digits, point, negative, 2)
    return _format_f(digits, point, negative)


def _go_json_float(value: float) -> str:
    """encoding/json's float64: %f unless the exponent is below -6 or at least 21."""
    if value == 0:
        return "0"
    negative = value < 0
    digits, point = _shortest_digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        return _format_e(digits, point, negative, 1)
    return _format_f(digits, point, negative)


def _go_json_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or ch in "<>&\u2028\u2029":
            # encoding/json escapes HTML-significant characters and the JS line separators.
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """Compact `encoding/json.Marshal` of a decoded JSON value (map keys sorted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_json_string(k)}:{go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _go_json_string(str(value))


def go_text(value: Any) -> str:
    """One JSONPath result as upstream's `PrintResults` writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "<nil>"
    return go_json(value)
