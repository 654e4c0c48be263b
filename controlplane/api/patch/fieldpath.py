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
    "decode_fields_v1",
    "edit_fields_v1",
    "element_sort_key",
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
_TEXT_ORDERED = frozenset({"f", "k", "v"})
_PLAIN = frozenset({str, int, bool, type(None)})


class InvalidFieldsV1(ValueError):
    """A `fieldsV1` object (or managedFields entry) that does not decode."""


def _normalise(value: Any) -> Any:
    """Numbers as Go holds them after decoding: an integral float prints as an integer."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict and all(type(k) is str and type(v) in _PLAIN for k, v in value.items()):
        return value  # the usual key: strings and integers only, nothing to rewrite
    if isinstance(value, bool | str | int):
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
    if text.isascii() and "<" not in text and ">" not in text and "&" not in text:
        return text
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


def element_sort_key(pe: PathElement) -> tuple[int, Any]:
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


# A trie of paths as nested dicts keyed by path element; this key marks a node that is a member.
_MEMBER: Any = None


def _encode_trie(node: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node.pop(_MEMBER, False) and node:
        out["."] = {}
    if len(node) == 1:
        (((kind, data), child),) = node.items()
        out[f"{kind}:{data}"] = _encode_trie(child)
        return out
    # `f:`, `k:` and `v:` texts sort as their elements do (same prefix, then the data; and
    # f < k < v); only index elements need the element order.
    texts: dict[str, dict[Any, Any]] = {}
    for pe, child in node.items():
        kind = pe[0]
        if kind not in _TEXT_ORDERED:
            for element in sorted(node, key=element_sort_key):
                out[_encode_element(element)] = _encode_trie(node[element])
            return out
        texts[f"{kind}:{pe[1]}"] = child
    for text in sorted(texts):
        out[text] = _encode_trie(texts[text])
    return out


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """The `fieldsV1` object of a set (the empty path, i.e. the object itself, is not encodable
    and is dropped, as upstream never records it)."""
    root: dict[Any, Any] = {}
    for path in fields:
        if not path:
            continue
        node = root
        for pe in path:
            child = node.get(pe)
            if child is None:
                child = node[pe] = {}
            node = child
        node[_MEMBER] = True
    root.pop(_MEMBER, None)
    return _encode_trie(root)


# Element texts recur across objects and writes ("f:spec", 'k:{"name":"app"}'): decoding one
# (a JSON parse and a canonical re-encode for keys) is done once. Bounded against odd clients.
_DECODED: dict[str, tuple[PathElement, bool]] = {}
_DECODED_LIMIT = 8192


def _decode_cached(text: str) -> tuple[PathElement, bool]:
    """The element of `text`, and whether `to_fields_v1` writes that element as `text`."""
    hit = _DECODED.get(text)
    if hit is None:
        pe = _decode_element(text)
        hit = (pe, _encode_element(pe) == text)
        if len(_DECODED) >= _DECODED_LIMIT:
            _DECODED.clear()
        _DECODED[text] = hit
    return hit


def from_fields_v1(encoded: Mapping[str, Any]) -> FieldSet:
    """Decode a `fieldsV1` object; raises ValueError on a malformed one."""
    return decode_fields_v1(encoded)[0]


def decode_fields_v1(encoded: Mapping[str, Any]) -> tuple[FieldSet, bool]:
    """`from_fields_v1`, plus whether `to_fields_v1` of the set gives `encoded` back exactly
    (same texts, same key order), so that a writer may pass an untouched set on as it came."""
    out: set[Path] = set()
    canonical = True
    cache = _DECODED

    def walk(node: Mapping[str, Any], prefix: Path) -> None:
        nonlocal canonical
        # Canonical order: "." first, then `f:`, `k:`, `v:` texts ascending (their texts sort
        # as the elements do), then `i:` by index.
        previous = ""
        last_index: int | None = None
        for text, child in node.items():
            if text == ".":
                if prefix:
                    out.add(prefix)
                if (
                    previous
                    or last_index is not None
                    or not prefix
                    or len(node) == 1
                    or type(child) is not dict
                    or child
                ):
                    canonical = False
                continue
            if type(child) is not dict:
                if not isinstance(child, Mapping):
                    raise InvalidFieldsV1(f"invalid fieldsV1: {text!r} must map to an object")
                canonical = False
            hit = cache.get(text)
            if hit is None:
                hit = _decode_cached(text)
            pe = hit[0]
            if pe[0] == "i":
                if (last_index is not None and pe[1] <= last_index) or not hit[1]:
                    canonical = False
                last_index = pe[1]
            else:
                if text <= previous or last_index is not None or not hit[1]:
                    canonical = False
                previous = text
            path = (*prefix, pe)
            if child:
                walk(child, path)
            else:
                out.add(path)

    if not isinstance(encoded, Mapping):
        raise InvalidFieldsV1("invalid fieldsV1: expected an object")
    walk(encoded, ())
    return frozenset(out), canonical and type(encoded) is dict


def _texts(path: Path) -> list[str]:
    return [f"{kind}:{data}" for kind, data in path]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """`node` with its keys in encoding order ("." first)."""
    out: dict[str, Any] = {".": node["."]} if "." in node else {}
    texts = [t for t in node if t != "."]
    if any(t.startswith("i:") for t in texts):
        texts.sort(key=lambda t: element_sort_key(_decode_cached(t)[0]))
    else:
        texts.sort()
    for text in texts:
        out[text] = node[text]
    return out


def _without(node: dict[str, Any], texts: list[str], depth: int) -> dict[str, Any] | None:
    """`node` less the member at `texts[depth:]` (copying only the changed spine); None when
    that is no member. An emptied non-member goes, a member left alone becomes a leaf."""
    key = texts[depth]
    child = node.get(key)
    if child is None:
        return None
    if depth == len(texts) - 1:
        if "." in child:
            replacement: dict[str, Any] | None = {k: v for k, v in child.items() if k != "."}
        elif not child:
            replacement = None
        else:
            return None
    else:
        below = _without(child, texts, depth + 1)
        if below is None:
            return None
        replacement = below if below and list(below) != ["."] else ({} if below else None)
    out = dict(node)
    if replacement is None:
        del out[key]
    else:
        out[key] = replacement
    return out


def _with(node: dict[str, Any], texts: list[str], depth: int) -> dict[str, Any]:
    """`node` plus the member at `texts[depth:]` (copying only the changed spine)."""
    key = texts[depth]
    child = node.get(key)
    if depth == len(texts) - 1:
        if child is not None and (not child or "." in child):
            return node
        replacement = {} if child is None else {".": {}, **child}
    else:
        replacement = _with(child if child is not None else {}, texts, depth + 1)
        if replacement is child:
            return node
        if child is not None and not child:
            replacement = _ordered({".": {}, **replacement})  # a leaf member gains children
    out = dict(node)
    out[key] = replacement
    return out if child is not None else _ordered(out)


def edit_fields_v1(encoded: dict[str, Any], removed: Iterable[Path], added: Iterable[Path]) -> dict[str, Any]:
    """`to_fields_v1((S - removed) | added)` from `encoded == to_fields_v1(S)`, for `removed`
    within S and `added` outside it: cheaper than encoding anew when the change is small. The
    result shares untouched subtrees with `encoded`."""
    out = encoded
    for path in removed:
        if path:
            smaller = _without(out, _texts(path), 0)
            if smaller is not None:
                out = smaller
    for path in added:
        if path:
            out = _with(out, _texts(path), 0)
    return out


def recursive_difference(fields: Iterable[Path], remove: FieldSet) -> FieldSet:
    """Paths of `fields` with no prefix (itself included) in `remove`: drops whole subtrees."""
    if not remove:
        return frozenset(fields)
    # Only prefixes as long as some removed path can match, and only under a removed first step.
    lengths = sorted({len(r) for r in remove if r})
    firsts = {r[0] for r in remove if r}
    if not firsts:
        return frozenset(fields)
    if lengths == [1]:
        return frozenset(p for p in fields if not p or p[0] not in firsts)
    return frozenset(
        p
        for p in fields
        if not p or p[0] not in firsts or not any(p[:n] in remove for n in lengths if n <= len(p))
    )


def iterate_sorted(fields: Iterable[Path]) -> list[Path]:
    """Paths in the order upstream's `Set.Iterate` visits them: at each level the members first,
    then the children, each in path-element order."""

    def key(path: Path) -> tuple[tuple[int, tuple[int, Any]], ...]:
        last = len(path) - 1
        return tuple((0 if i == last else 1, element_sort_key(pe)) for i, pe in enumerate(path))

    return sorted(fields, key=key)
