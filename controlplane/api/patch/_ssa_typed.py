"""The typed walks of structured-merge-diff over decoded JSON: the field set of a value
(`typed/tofieldset.go`), the comparison of two values (`Compare`, built on the merge walk of
`typed/merge.go`), the apply merge itself, removal of items (`typed/remove.go`), the named-field
closure of a set (`Set.EnsureNamedFieldsAreMembers`) and the validation an applied configuration
must pass (`typed/validate.go`: declared fields, key fields, duplicate keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from controlplane.api.patch._ssa_schema import ListKind, TypeRef
from controlplane.api.patch.fieldpath import (
    FieldSet,
    Path,
    PathElement,
    element_sort_key,
    element_string,
    index_element,
    key_element,
    path_string,
    value_element,
)

__all__ = [
    "MISSING",
    "Comparison",
    "compare",
    "ensure_named",
    "json_equal",
    "merge",
    "remove_items",
    "to_field_set",
    "validate",
    "whole_fields_v1",
]


class _Missing:
    """Absent, as opposed to JSON null: upstream's nil `value.Value`."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class ItemError(Exception):
    """A list item that cannot be named by a path element."""


def json_equal(a: Any, b: Any) -> bool:
    """`value.Equals`: numbers by value, booleans never equal to numbers, maps unordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def item_element(
    kind: ListKind, keys: tuple[str, ...], item_t: TypeRef, index: int, item: Any, *, strict: bool
) -> PathElement:
    """`listItemToPathElement`. Lenient mode names items that break the rules anyway, so that a
    live object written by a plain update never makes a walk fail."""
    if kind == "map":
        if not isinstance(item, dict):
            if strict:
                raise ItemError("value must be a map")
            return index_element(index)
        fields: dict[str, Any] = {}
        for key in keys:
            if key in item:
                fields[key] = item[key]
                continue
            has_default, default = item_t.key_default(key)
            if has_default:
                fields[key] = default
            elif strict:
                raise ItemError(
                    f'associative list with keys has an element that omits key field "{key}" '
                    "(and doesn't have default value)"
                )
        if not fields:
            return index_element(index)
        return key_element(fields)
    if kind == "set":
        if strict and isinstance(item, dict):
            raise ItemError("associative list without keys has an element that's a map type")
        if strict and isinstance(item, list):
            raise ItemError("associative list without keys has an element that's a list type")
        return value_element(item)
    return index_element(index)


def _index_items(t: TypeRef, items: list[Any] | None) -> tuple[list[PathElement], dict[PathElement, Any]]:
    kind, keys = t.list_kind()
    item_t = t.item()
    order: list[PathElement] = []
    observed: dict[PathElement, Any] = {}
    for i, item in enumerate(items or ()):
        pe = item_element(kind, keys, item_t, i, item, strict=False)
        if pe in observed:
            continue  # repeated occurrences are ignored, as upstream's merge walk does
        observed[pe] = item
        order.append(pe)
    return order, observed


def _granular_list(t: TypeRef) -> bool:
    return t.list_kind()[0] != "atomic"


# field sets


def to_field_set(value: Any, t: TypeRef) -> FieldSet:
    out: set[Path] = set()
    _to_field_set(value, t, (), out)
    return frozenset(out)


def _to_field_set(value: Any, t: TypeRef, path: Path, out: set[Path]) -> None:
    shape = t.shape(value)
    if shape == "scalar":
        out.add(path)
        return
    if shape == "list":
        if not _granular_list(t):
            out.add(path)
            return
        if not isinstance(value, list):
            return
        kind, keys = t.list_kind()
        item_t = t.item()
        for i, item in enumerate(value):
            child = (*path, item_element(kind, keys, item_t, i, item, strict=False))
            _to_field_set(item, item_t, child, out)
            out.add(child)
        return
    if t.map_atomic():
        out.add(path)
        return
    if not isinstance(value, dict):
        return
    for key, val in value.items():
        field_t, declared = t.field(key)
        child = (*path, ("f", key))
        _to_field_set(val, field_t, child, out)
        if not declared:
            out.add(child)


def ensure_named(fields: Iterable[Path], t: TypeRef) -> FieldSet:
    """The set plus every declared struct field that has members below it."""
    cache: dict[Path, tuple[TypeRef, bool]] = {(): (t, False)}

    def lookup(prefix: Path) -> tuple[TypeRef, bool]:
        hit = cache.get(prefix)
        if hit is None:
            parent, _ = lookup(prefix[:-1])
            kind, name = prefix[-1]
            hit = parent.field(name) if kind == "f" else (parent.item(), False)
            cache[prefix] = hit
        return hit

    out = set(fields)
    for path in list(out):
        for i in range(1, len(path)):
            prefix = path[:i]
            if prefix not in out and lookup(prefix)[1]:
                out.add(prefix)
    return frozenset(out)


# comparison


@dataclass
class Comparison:
    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)


def compare(lhs: Any, rhs: Any, t: TypeRef) -> Comparison:
    """`TypedValue.Compare`: leaves added/modified/removed, plus granular nodes that appear or
    disappear as a whole."""
    out = Comparison()
    _compare(lhs, rhs, t, (), out)
    return out


def _surely_equal(lhs: Any, rhs: Any) -> bool:
    """Equal JSON texts: then `json_equal` holds and the walk below finds nothing, so it is
    skipped. Python's `==` answers first (cheaply, and no for most differences) but alone would
    take `true` for `1`; texts that differ (key order, 1 vs 1.0) only mean "walk it"."""
    if lhs != rhs:
        return False
    try:
        return bool(orjson.dumps(lhs) == orjson.dumps(rhs))
    except TypeError:
        return False


def _compare(lhs: Any, rhs: Any, t: TypeRef, path: Path, out: Comparison) -> None:
    if lhs is MISSING:
        if rhs is not MISSING:
            _whole(rhs, t, path, out.added)
        return
    if rhs is MISSING:
        _whole(lhs, t, path, out.removed)
        return
    lshape = t.shape(lhs)
    rshape = t.shape(rhs)
    if lshape != rshape:
        # Upstream walks both readings; the left one only reports what disappears below.
        _compare_as(lshape, lhs, rhs, t, path, out)
        _compare_as(rshape, lhs, rhs, t, path, out)
        return
    if rshape == "scalar":
        if not json_equal(lhs, rhs):
            out.modified.add(path)
        return
    if rshape == "list":
        if not lhs or not rhs or not isinstance(lhs, list) or not isinstance(rhs, list):
            _compare_as(rshape, lhs, rhs, t, path, out)
            return
        if t.list_kind()[0] == "atomic":
            if not json_equal(lhs, rhs):
                out.modified.add(path)
            return
        if _surely_equal(lhs, rhs):
            return
        item_t = t.item()
        lorder, lobs = _index_items(t, lhs)
        rorder, robs = _index_items(t, rhs)
        for pe in lorder:
            _compare(lobs[pe], robs.get(pe, MISSING), item_t, (*path, pe), out)
        for pe in rorder:
            if pe not in lobs:
                _whole(robs[pe], item_t, (*path, pe), out.added)
        return
    if not lhs or not rhs or not isinstance(lhs, dict) or not isinstance(rhs, dict) or t.map_atomic():
        _compare_as(rshape, lhs, rhs, t, path, out)
        return
    if _surely_equal(lhs, rhs):
        return
    field_of = t.field
    for key, lval in lhs.items():
        _compare(lval, rhs.get(key, MISSING), field_of(key)[0], (*path, ("f", key)), out)
    for key, rval in rhs.items():
        if key not in lhs:
            _whole(rval, field_of(key)[0], (*path, ("f", key)), out.added)


def _whole(value: Any, t: TypeRef, path: Path, out: set[Path]) -> None:
    """`_compare` against a missing side: every node of `value` that the walk visits."""
    if isinstance(value, dict):
        if value and not t.map_atomic():
            field_of = t.field
            for key, val in value.items():
                _whole(val, field_of(key)[0], (*path, ("f", key)), out)
    elif isinstance(value, list) and value:
        kind, keys = t.list_kind()
        if kind != "atomic":
            item_t = t.item()
            seen: set[PathElement] = set()
            for i, item in enumerate(value):
                pe = item_element(kind, keys, item_t, i, item, strict=False)
                if pe not in seen:
                    seen.add(pe)
                    _whole(item, item_t, (*path, pe), out)
    out.add(path)


def _leaf(lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    if lhs is MISSING:
        out.added.add(path)
    elif rhs is MISSING:
        out.removed.add(path)
    elif not json_equal(lhs, rhs):
        out.modified.add(path)


def _compare_as(shape: str, lhs: Any, rhs: Any, t: TypeRef, path: Path, out: Comparison) -> None:
    if shape == "scalar":
        _leaf(lhs, rhs, path, out)
        return
    if shape == "list":
        lv = lhs if isinstance(lhs, list) else None
        rv = rhs if isinstance(rhs, list) else None
        if not _granular_list(t) or (not lv and not rv):
            _leaf(lhs, rhs, path, out)
            return
        item_t = t.item()
        lorder, lobs = _index_items(t, lv)
        rorder, robs = _index_items(t, rv)
        for pe in dict.fromkeys([*lorder, *rorder]):
            _compare(lobs.get(pe, MISSING), robs.get(pe, MISSING), item_t, (*path, pe), out)
    else:
        lm = lhs if isinstance(lhs, dict) else None
        rm = rhs if isinstance(rhs, dict) else None
        if t.map_atomic() or (not lm and not rm):
            _leaf(lhs, rhs, path, out)
            return
        lm = lm or {}
        rm = rm or {}
        for key in dict.fromkeys([*lm, *rm]):
            field_t, _ = t.field(key)
            _compare(lm.get(key, MISSING), rm.get(key, MISSING), field_t, (*path, ("f", key)), out)
    if lhs is MISSING:
        out.added.add(path)
    elif rhs is MISSING:
        out.removed.add(path)


def whole_fields_v1(value: Any, t: TypeRef) -> dict[str, Any]:
    """`to_fields_v1` of what `_whole` collects below a member node (relative to it), built in
    one walk: every node visited is a member, so a node with children carries `"."`."""
    if isinstance(value, dict):
        if not value or t.map_atomic():
            return {}
        field_of = t.field
        out: dict[str, Any] = {".": {}}
        for key in sorted(value):
            out[f"f:{key}"] = whole_fields_v1(value[key], field_of(key)[0])
        return out
    if not isinstance(value, list) or not value:
        return {}
    kind, keys = t.list_kind()
    if kind == "atomic":
        return {}
    item_t = t.item()
    items: dict[PathElement, Any] = {}
    for i, item in enumerate(value):
        pe = item_element(kind, keys, item_t, i, item, strict=False)
        if pe not in items:
            items[pe] = item
    out = {".": {}}
    if all(pe[0] != "i" for pe in items):
        # `k:`/`v:` texts sort as their elements do
        texts = {f"{pe[0]}:{pe[1]}": item for pe, item in items.items()}
        for text in sorted(texts):
            out[text] = whole_fields_v1(texts[text], item_t)
    else:
        for pe in sorted(items, key=element_sort_key):
            out[f"{pe[0]}:{pe[1]}"] = whole_fields_v1(items[pe], item_t)
    return out


# merge


def merge(lhs: Any, rhs: Any, t: TypeRef) -> Any:
    """`TypedValue.Merge` with the apply rule: the right side wins at every leaf, granular maps
    merge key by key and associative lists item by item (keeping the live order and placing
    new items where the applied order puts them)."""
    return _merge(lhs, rhs, t)


def _merge(lhs: Any, rhs: Any, t: TypeRef) -> Any:
    if rhs is MISSING:
        return lhs
    lhs_shape = None if lhs is MISSING else t.shape(lhs)
    shape = t.shape(rhs)
    if lhs_shape is not None and lhs_shape != shape:
        lhs = MISSING
    if shape == "scalar":
        return rhs
    if shape == "list":
        lv = lhs if isinstance(lhs, list) else None
        rv = rhs if isinstance(rhs, list) else None
        if not _granular_list(t) or (not lv and not rv):
            return rhs
        merged_list = _merge_list(t, lv, rv)
        return merged_list if merged_list else MISSING
    lm = lhs if isinstance(lhs, dict) else None
    rm = rhs if isinstance(rhs, dict) else None
    if t.map_atomic() or (not lm and not rm):
        return rhs
    lm = lm or {}
    rm = rm or {}
    out: dict[str, Any] = {}
    for key in dict.fromkeys([*lm, *rm]):
        field_t, _ = t.field(key)
        value = _merge(lm.get(key, MISSING), rm.get(key, MISSING), field_t)
        if value is not MISSING:
            out[key] = value
    return out if out else MISSING


def _merge_list(t: TypeRef, lhs: list[Any] | None, rhs: list[Any] | None) -> list[Any]:
    """Port of the ordering of `mergingWalker.visitListItems`."""
    item_t = t.item()
    rorder, robs = _index_items(t, rhs)
    lorder, lobs = _index_items(t, lhs)
    shared = [pe for pe in rorder if pe in lobs]
    shared_pos = 0
    next_shared = shared[0] if shared else None
    if shared:
        shared_pos = 1

    def advance() -> PathElement | None:
        nonlocal shared_pos
        if shared_pos < len(shared):
            pe = shared[shared_pos]
            shared_pos += 1
            return pe
        return None

    out: list[Any] = []

    def emit(value: Any) -> None:
        if value is not MISSING:
            out.append(value)

    li = ri = 0
    while li < len(lorder) or ri < len(rorder):
        if li < len(lorder) and ri < len(rorder):
            pe = lorder[li]
            if pe == rorder[ri]:
                emit(_merge(lobs[pe], robs[pe], item_t))
                li += 1
                ri += 1
                next_shared = advance()
                continue
            if pe in robs and next_shared is not None and next_shared != pe:
                li += 1  # shared item, but not the one wanted in this round
                continue
        if li < len(lorder):
            pe = lorder[li]
            if pe not in robs:
                emit(_merge(lobs[pe], MISSING, item_t))
                li += 1
                continue
        if ri < len(rorder):
            pe = rorder[ri]
            emit(_merge(lobs.get(pe, MISSING), robs[pe], item_t))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = advance()
    return out


# removal


class _Trie:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PathElement, _Trie] = {}


def _trie(paths: Iterable[Path]) -> _Trie:
    root = _Trie()
    for path in paths:
        node = root
        for pe in path:
            node = node.children.setdefault(pe, _Trie())
        node.member = True
    return root


def remove_items(value: Any, t: TypeRef, fields: Iterable[Path]) -> Any:
    """`TypedValue.RemoveItems`: drop every map entry and list item whose path is in the set.
    A map or list emptied by the removal stays, empty, where upstream leaves a null: a declared
    field emptied by pruning is then removed whole by the prune's last step, while a map entry
    the applier still names keeps the (empty) value it applied."""
    root = _trie(fields)
    if not root.children:
        return value
    return _remove(value, t, root)


def _remove(value: Any, t: TypeRef, node: _Trie) -> Any:
    shape = t.shape(value)
    if shape == "list" and isinstance(value, list) and value and _granular_list(t):
        kind, keys = t.list_kind()
        item_t = t.item()
        items: list[Any] = []
        for i, item in enumerate(value):
            child = node.children.get(item_element(kind, keys, item_t, i, item, strict=False))
            if child is None:
                items.append(item)
            elif not child.member:
                items.append(_remove(item, item_t, child))
        return items
    if shape == "map" and isinstance(value, dict) and value and not t.map_atomic():
        out: dict[str, Any] = {}
        for key, val in value.items():
            child = node.children.get(("f", key))
            if child is None:
                out[key] = val
            elif not child.member:
                out[key] = _remove(val, t.field(key)[0], child)
        return out
    return value


# validation of an applied configuration


def validate(value: Any, t: TypeRef) -> list[str]:
    """Errors as upstream words them (`<path>: <message>`), empty when the value is valid."""
    errors: list[str] = []
    _validate(value, t, (), errors)
    return errors


def _validate(value: Any, t: TypeRef, path: Path, errors: list[str]) -> None:
    shape = t.shape(value)
    if shape == "map" and isinstance(value, dict):
        if t.map_atomic():
            return
        strict = t.strict()
        for key, val in value.items():
            field_t, declared = t.field(key)
            child = (*path, ("f", key))
            if strict and not declared:
                errors.append(f"{path_string(child)}: field not declared in schema")
                continue
            _validate(val, field_t, child, errors)
    elif shape == "list" and isinstance(value, list):
        kind, keys = t.list_kind()
        if kind == "atomic":
            return
        item_t = t.item()
        seen: set[PathElement] = set()
        for i, item in enumerate(value):
            try:
                pe = item_element(kind, keys, item_t, i, item, strict=True)
            except ItemError as exc:
                errors.append(f"{path_string(path)}: element {i}: {exc}")
                continue
            if pe in seen:
                errors.append(f"{path_string(path)}: duplicate entries for key {element_string(pe)}")
                continue
            seen.add(pe)
            _validate(item, item_t, (*path, pe), errors)
