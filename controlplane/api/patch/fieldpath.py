"""Field paths and field sets of server-side apply, and their `FieldsV1` encoding.

A path names one node of an object: a field of a map (`f:`), an item of an associative list by
its key fields (`k:`), an item of a set by its value (`v:`) or an item by position (`i:`). A
`FieldSet` is a set of such paths; in `FieldsV1` a node that is itself a member carries `"."`
when it also has members below it, as structured-merge-diff's `fieldpath/serialize.go` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "FieldSet",
    "InvalidFieldsV1",
    "Path",
    "PathElement",
    "canonical_json",
    "element_string",
    "field",
    "from_fields_v1",
    "index_element",
    "iterate_sorted",
    "key_element",
    "path_string",
    "recursive_difference",
    "to_fields_v1",
    "value_element",
]

# ("f", name) | ("k", canonical JSON object of the key fields) | ("v", canonical JSON) | ("i", index).
# Keys and values are held as canonical JSON text so that paths are hashable and compare equal
# exactly when upstream's PathElement.Equals would.
PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]

_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


class InvalidFieldsV1(ValueError):
    """A `fieldsV1` object (or managedFields entry) that does not decode."""


def _normalise(value: Any) -> Any:
    """Numbers as Go holds them after decoding: an integral float prints as an integer."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and Go's HTML escaping, as upstream writes `k:`/`v:` keys."""
    text = orjson.dumps(_normalise(value), option=orjson.OPT_SORT_KEYS).decode()
    # Go's encoder escapes these even inside strings; they never occur outside strings in JSON.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def field(name: str) -> PathElement:
    return ("f", name)


def key_element(fields: Mapping[str, Any]) -> PathElement:
    return ("k", canonical_json(dict(fields)))


def value_element(value: Any) -> PathElement:
    return ("v", canonical_json(value))


def index_element(index: int) -> PathElement:
    return ("i", index)


def _go_string(value: Any) -> str:
    """`value.ToString`: strings Go-quoted, numbers and booleans bare, like `%v`/`%q`."""
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_go_string(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def element_string(pe: PathElement) -> str:
    kind, data = pe
    if kind == "f":
        return "." + str(data)
    if kind == "k":
        fields = orjson.loads(data)
        return "[" + ",".join(sorted(f"{k}={_go_string(v)}" for k, v in fields.items())) + "]"
    if kind == "v":
        return f"[={_go_string(orjson.loads(data))}]"
    return f"[{data}]"


def path_string(path: Path) -> str:
    """Upstream `Path.String()`, e.g. `.spec.template.spec.containers[name="nginx"].image`."""
    return "".join(element_string(pe) for pe in path)


def _element_sort_key(pe: PathElement) -> tuple[int, Any]:
    return (_RANK.get(pe[0], 9), pe[1])


def _encode_element(pe: PathElement) -> str:
    kind, data = pe
    return f"{kind}:{data}"


def _decode_element(text: str) -> PathElement:
    kind, sep, data = text.partition(":")
    if not sep:
        raise InvalidFieldsV1(f"invalid path element {text!r}: missing the type prefix")
    if kind == "f":
        return ("f", data)
    if kind == "k":
        try:
            fields = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidFieldsV1(f"invalid key path element {text!r}: {exc}") from None
        if not isinstance(fields, dict) or not fields:
            raise InvalidFieldsV1(f"invalid key path element {text!r}: expected a non-empty object")
        return key_element(fields)
    if kind == "v":
        try:
            return value_element(orjson.loads(data))
        except orjson.JSONDecodeError as exc:
            raise InvalidFieldsV1(f"invalid value path element {text!r}: {exc}") from None
    if kind == "i":
        try:
            return ("i", int(data))
        except ValueError:
            raise InvalidFieldsV1(f"invalid index path element {text!r}") from None
    raise InvalidFieldsV1(f"invalid path element {text!r}: unknown type prefix {kind!r}")


class _Node:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PathElement, _Node] = {}


def _trie(paths: Iterable[Path]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for pe in path:
            node = node.children.setdefault(pe, _Node())
        node.member = True
    return root


def _encode_node(node: _Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node.member and node.children:
        out["."] = {}
    for pe in sorted(node.children, key=_element_sort_key):
        out[_encode_element(pe)] = _encode_node(node.children[pe])
    return out


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """The `fieldsV1` object of a set (the empty path, i.e. the object itself, is not encodable
    and is dropped, as upstream never records it)."""
    return _encode_node(_trie(p for p in fields if p))


def from_fields_v1(encoded: Mapping[str, Any]) -> FieldSet:
    """Decode a `fieldsV1` object; raises ValueError on a malformed one."""
    out: set[Path] = set()

    def walk(node: Mapping[str, Any], prefix: Path) -> None:
        for text, child in node.items():
            if text == ".":
                if prefix:
                    out.add(prefix)
                continue
            if not isinstance(child, Mapping):
                raise InvalidFieldsV1(f"invalid fieldsV1: {text!r} must map to an object")
            path = (*prefix, _decode_element(text))
            if not child:
                out.add(path)
            else:
                walk(child, path)

    if not isinstance(encoded, Mapping):
        raise InvalidFieldsV1("invalid fieldsV1: expected an object")
    walk(encoded, ())
    return frozenset(out)


def recursive_difference(fields: Iterable[Path], remove: FieldSet) -> FieldSet:
    """Paths of `fields` with no prefix (itself included) in `remove`: drops whole subtrees."""
    if not remove:
        return frozenset(fields)
    return frozenset(p for p in fields if not any(p[:i] in remove for i in range(1, len(p) + 1)))


def iterate_sorted(fields: Iterable[Path]) -> list[Path]:
    """Paths in the order upstream's `Set.Iterate` visits them: at each level the members first,
    then the children, each in path-element order."""

    def key(path: Path) -> tuple[tuple[int, tuple[int, Any]], ...]:
        last = len(path) - 1
        return tuple((0 if i == last else 1, _element_sort_key(pe)) for i, pe in enumerate(path))

    return sorted(fields, key=key)
