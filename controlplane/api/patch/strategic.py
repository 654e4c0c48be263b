"""Strategic merge patch (`application/strategic-merge-patch+json`), the apply half of
k8s.io/apimachinery/pkg/util/strategicpatch (mergeMap and friends, with the server's options
MergeParallelList and IgnoreUnmatchedNulls).

How each list merges comes from the object's OpenAPI schema: `x-kubernetes-patch-strategy`
(`merge`, `retainKeys`, `merge,retainKeys`; none means replace) and
`x-kubernetes-patch-merge-key`. Where the schema says nothing (map values, unknown fields,
`x-kubernetes-preserve-unknown-fields`), maps merge and lists are replaced, as in a JSON
merge patch. Directives: `$patch: replace|delete|merge` on maps and list elements,
`$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`.

Deliberate differences from upstream (all on inputs kubectl never sends):
- `$patch: merge` is accepted (the default made explicit); upstream rejects it with a 500.
- Failures upstream leaves as plain Go errors (an unknown `$patch`, a missing merge key, mixed
  element types) answer 400 BadRequest here instead of 500 with an empty reason.
- Values taken verbatim from the patch (new fields, new list elements, replaced lists) are
  cleaned of nulls and directives; upstream's typed decoding drops those later, we store JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.api import errors, schemas
from controlplane.api.patch._smp_json import deep_copy, go_equal, go_format, go_key, go_type_name, json_kind

__all__ = ["apply"]

Schema = dict[str, Any]

DIRECTIVE = "$patch"
DELETE = "delete"
REPLACE = "replace"
MERGE = "merge"
RETAIN_KEYS_STRATEGY = "retainKeys"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

# k8s.io/apimachinery/pkg/util/mergepatch/errors.go
_BAD_FORMAT_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_FORMAT_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_FORMAT_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_NO_LIST_OF_LISTS = "lists of lists are not supported"
# NewGenericServerResponse(422, ...) as interpretStrategicMergePatchError uses it.
_UNPROCESSABLE = "the server rejected our request due to an error in our request"

_MAP = "map"  # element kind of a list of maps; scalars use their Go type name as kind
_LIST = "slice"


class StrategicMergePatchError(Exception):
    """A patch that cannot be applied; `unprocessable` selects 422 over 400."""

    def __init__(self, message: str, *, unprocessable: bool = False) -> None:
        super().__init__(message)
        self.unprocessable = unprocessable

    def to_status_error(self) -> errors.StatusError:
        if self.unprocessable:
            return errors.Invalid(message=_UNPROCESSABLE)
        return errors.BadRequest(message=str(self))


def apply(
    doc: dict[str, Any], patch: dict[str, Any], schema: dict[str, Any] | None, *, in_place: bool = False
) -> dict[str, Any]:
    """Apply `patch` to a copy of `doc` (to `doc` itself with `in_place`, for a caller whose
    `doc` is its own and that drops it on a failure); the patch is never mutated nor shared with
    the result. `schema` is the top-level definition of the object's kind
    (`schemas.definition_for(group, version, kind)`), or None for schema-less merging."""
    if patch is None:  # a JSON `null` body decodes to an empty map upstream
        patch = {}
    if not isinstance(patch, dict):
        raise errors.BadRequest(
            message=f"json: cannot unmarshal {json_kind(patch)} into Go value of type map[string]interface {{}}"
        )
    try:
        return _merge_map(doc if in_place else deep_copy(doc), deep_copy(patch), schemas.resolve(schema))
    except StrategicMergePatchError as exc:
        raise exc.to_status_error() from exc
    except RecursionError as exc:
        raise errors.BadRequest(message="patch is nested too deeply") from exc


# --- schema lookups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    schema: Schema | None  # resolved schema of the value, or of the list items for lists
    strategy: str  # the patch strategy with `retainKeys` split off: "", "merge" or "replace"
    merge_key: str


def _field(schema: Schema | None, key: str, *, is_list: bool) -> _Field:
    raw = schemas.field_schema_raw(schema, key)
    if raw is None:
        return _Field(None, "", "")
    meta = schemas.list_meta(raw)
    sub = schemas.items(raw) if is_list else schemas.resolve(raw)
    return _Field(sub, _strategy_without_retain_keys(meta.patch_strategy), meta.merge_key)


def _strategy_without_retain_keys(raw: str) -> str:
    """extractRetainKeysPatchStrategy: `retainKeys` only needs the directive sent in the patch,
    so the server keeps just the other strategy."""
    strategies = raw.split(",")
    if len(strategies) == 1:
        return "" if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
    if len(strategies) == 2 and RETAIN_KEYS_STRATEGY in strategies:
        return strategies[1] if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
    raise StrategicMergePatchError(f"unexpected patch strategy: [{' '.join(strategies)}]")


# --- maps -------------------------------------------------------------------------------------


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == REPLACE:
            return _cleaned_map(patch)
        if directive == DELETE:
            return {}
        if directive != MERGE:
            patch[DIRECTIVE] = directive
            raise _bad_patch_type(directive, patch)

    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for patch_key, patch_value in patch.items():
        key, is_delete_list = patch_key, False
        if patch_key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            key, is_delete_list = _strip_prefix(patch_key, DELETE_FROM_PRIMITIVE_LIST), True

        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not is_delete_list:
                _put_cleaned(original, key, patch_value)
            continue

        current = original[key]
        if go_type_name(current) != go_type_name(patch_value):
            if not is_delete_list:
                _put_cleaned(original, key, patch_value)
            continue
        if isinstance(current, dict):
            field = _field(schema, key, is_list=False)
            if field.strategy == REPLACE:
                original[key] = _cleaned_map(patch_value)
            else:
                original[key] = _merge_map(current, patch_value, field.schema)
        elif isinstance(current, list):
            field = _field(schema, key, is_list=True)
            # Deletion lists apply whatever the field's strategy is.
            if field.strategy == MERGE or is_delete_list:
                original[key] = _merge_list(current, patch_value, field, is_delete_list=is_delete_list)
            else:
                original[key] = _cleaned_list(patch_value)
        else:
            _put_cleaned(original, key, patch_value)
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: drop every field of the live map that the list does not name; every
    non-null field the patch sets must be named in it."""
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise StrategicMergePatchError(_BAD_FORMAT_RETAIN_KEYS)
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise StrategicMergePatchError(_BAD_FORMAT_RETAIN_KEYS)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> None:
    """mergePatchIntoOriginal: merge each list that has a `$setElementOrder/<list>` together with
    its directive, then order it: the directive's order, then the patch's, then the live one."""
    for directive_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        key = _strip_prefix(directive_key, SET_ELEMENT_ORDER)
        found_original, found_patch = key in original, key in patch
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[key], list):
                raise _bad_arg_type("[]interface {}", original[key])
            original_list = original[key]
        if found_patch:
            if not isinstance(patch[key], list):
                raise _bad_arg_type("[]interface {}", patch[key])
            patch_list = patch[key]

        field = _field(schema, key, is_list=True)
        _validate_against_order(patch_list, order, field.merge_key)

        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _cleaned_list(patch_list)
        elif found_original and found_patch:
            if field.strategy == MERGE:
                merged = _merge_list(original_list, patch_list, field, is_delete_list=False)
            else:
                merged = _cleaned_list(patch_list)
        else:
            continue

        if field.merge_key:
            in_order, server_only = _partition_maps(merged, order, field.merge_key)
        else:
            in_order, server_only = _partition_scalars(merged, order)
        kind = _element_kind(original_list, patch_list)
        original[key] = _normalize_element_order(
            in_order, server_only, order, original_list, field.merge_key, kind
        )
        patch.pop(key, None)


def _validate_against_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list, without deletions, must be a subsequence of the `$setElementOrder` list."""
    if not order or not patch_list:
        return
    items = _split_deletions(patch_list)[0] if merge_key else patch_list
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        item = items[patch_index]
        if isinstance(item, dict) and DIRECTIVE in item:
            patch_index += 1
            continue
        if _merge_key_equal(item, order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(items) and order_index >= len(order):
        raise StrategicMergePatchError(
            f"the order in patch list:\n{go_format(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER} list:\n{go_format(order)}"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return go_equal(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return go_equal(left[merge_key], right[merge_key])


# --- lists ------------------------------------------------------------------------------------


def _merge_list(original: list[Any], patch: list[Any], field: _Field, *, is_delete_list: bool) -> list[Any]:
    """mergeSlice: a set union for scalars (or a removal for `$deleteFromPrimitiveList`),
    a merge by key for maps; then patch items first in patch order, live-only items after
    their live predecessors."""
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    merge_key = field.merge_key
    if kind != _MAP:
        if is_delete_list:
            doomed = {go_key(v) for v in patch}
            return [v for v in original if go_key(v) not in doomed]
        merged = _unique(original + patch)
    else:
        if not merge_key:
            raise StrategicMergePatchError("cannot merge lists without merge key")
        original, patch = _apply_list_directives(original, patch, merge_key)
        merged = _merge_by_key(original, patch, merge_key, field.schema)

    if merge_key:
        in_patch, server_only = _partition_maps(merged, patch, merge_key)
    else:
        in_patch, server_only = _partition_scalars(merged, patch)
    return _normalize_element_order(in_patch, server_only, patch, original, merge_key, kind)


def _apply_list_directives(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """mergeSliceWithSpecialElements: `{$patch: delete, <key>: v}` removes every live element
    with that key; a `{$patch: replace}` element makes the rest of the patch the whole list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            doomed = go_key(item[merge_key])
            original = [v for v in original if not (merge_key in v and go_key(v[merge_key]) == doomed)]
        elif directive == REPLACE:
            replace = True  # keep scanning: later directives must still be stripped
        elif directive == MERGE:
            rest = {k: v for k, v in item.items() if k != DIRECTIVE}
            if rest:
                plain.append(rest)
        else:
            raise _bad_patch_type(directive, item)
    if replace:
        return _cleaned_list(plain), []
    return original, plain


def _merge_by_key(
    original: list[Any], patch: list[Any], merge_key: str, item_schema: Schema | None
) -> list[Any]:
    # A new list: the caller still orders by the live list as it was, without the appended items.
    original = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        wanted = go_key(item[merge_key])
        for index, live in enumerate(original):
            if merge_key in live and go_key(live[merge_key]) == wanted:
                original[index] = _merge_map(live, item, item_schema)
                break
        else:
            cleaned, keep = _cleaned(item)
            if keep:
                original.append(cleaned)
    return original


def _element_kind(*lists: list[Any]) -> str:
    """sliceElementType: every element of all the lists must have one type, and not be a list."""
    kind = ""
    for items in lists:
        for item in items:
            current = (
                _MAP if isinstance(item, dict) else _LIST if isinstance(item, list) else go_type_name(item)
            )
            if not kind:
                if current == _LIST:
                    raise StrategicMergePatchError(_NO_LIST_OF_LISTS, unprocessable=True)
                kind = current
            elif current != kind:
                rendered = "[" + " ".join(go_format(x) for x in lists) + "]"
                raise StrategicMergePatchError(f"list element types are not identical: {rendered}")
    if not kind:
        raise StrategicMergePatchError("no elements in any of the given slices")
    return kind


def _unique(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out: list[Any] = []
    for item in items:
        key = go_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _partition_scalars(items: list[Any], by: list[Any]) -> tuple[list[Any], list[Any]]:
    wanted = {go_key(v) for v in by}
    inside = [v for v in items if go_key(v) in wanted]
    outside = [v for v in items if go_key(v) not in wanted]
    return inside, outside


def _partition_maps(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    wanted: set[Any] = set()
    for entry in by:
        if not isinstance(entry, dict):
            raise StrategicMergePatchError("value for key is not a map.")
        if merge_key in entry:
            wanted.add(go_key(entry[merge_key]))
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (inside if go_key(item[merge_key]) in wanted else outside).append(item)
    return inside, outside


def _normalize_element_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str,
) -> list[Any]:
    """normalizeElementOrder: sort each part by its own order, then interleave them, placing a
    server-only item before a patch item only when the live list had it first."""
    in_patch = _sorted_by(in_patch, patch_order, merge_key, kind)
    server_only = _sorted_by(server_only, server_order, merge_key, kind)
    positions = _positions(server_order, merge_key, kind)

    def position(item: Any) -> int | None:
        return positions.get(_identity(item, merge_key, kind))

    out: list[Any] = []
    left = right = 0
    while left < len(server_only) or right < len(in_patch):
        if left >= len(server_only):
            out.append(in_patch[right])
            right += 1
        elif right >= len(in_patch):
            out.append(server_only[left])
            left += 1
        else:
            lp, rp = position(server_only[left]), position(in_patch[right])
            if lp is not None and rp is not None and lp < rp:
                out.append(server_only[left])
                left += 1
            else:
                out.append(in_patch[right])
                right += 1
    return out


def _sorted_by(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    """normalizeSliceOrder: a stable sort by position in `order`; `$patch: delete` elements last."""
    deletions: list[Any] = []
    if kind == _MAP:
        for entry in (*items, *order):
            if not isinstance(entry, dict):
                raise _bad_arg_type("map[string]interface {}", entry)
            if merge_key not in entry:
                raise _no_merge_key(entry, merge_key)
        items, deletions = _split_deletions(items)
    positions = _positions(order, merge_key, kind)
    end = len(order)
    items = sorted(items, key=lambda item: positions.get(_identity(item, merge_key, kind), end))
    return items + deletions


def _positions(order: list[Any], merge_key: str, kind: str) -> dict[Any, int]:
    positions: dict[Any, int] = {}
    for index, item in enumerate(order):
        positions.setdefault(_identity(item, merge_key, kind), index)
    return positions


def _identity(item: Any, merge_key: str, kind: str) -> Any:
    if kind == _MAP:
        return go_key(item.get(merge_key) if isinstance(item, dict) else None)
    return go_key(item)


def _split_deletions(items: list[Any]) -> tuple[list[Any], list[Any]]:
    keep: list[Any] = []
    deletions: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        (deletions if item.get(DIRECTIVE) == DELETE else keep).append(item)
    return keep, deletions


# --- values taken from the patch as they are -------------------------------------------------


def _cleaned(value: Any) -> tuple[Any, bool]:
    """discardNullValuesFromPatch + removeDirectives: returns the value to store and whether to
    keep it at all (a map carrying `$patch` is dropped); the parallel-list and retainKeys
    directive keys are stripped too, since nothing here would ever read them."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        return _cleaned_map(value), True
    if isinstance(value, list):
        return _cleaned_list(value), True
    return value, True


def _cleaned_map(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or _is_directive_key(key):
            continue
        cleaned, keep = _cleaned(item)
        if keep:
            out[key] = cleaned
    return out


def _cleaned_list(value: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        cleaned, keep = _cleaned(item)
        if keep:
            out.append(cleaned)
    return out


def _put_cleaned(target: dict[str, Any], key: str, value: Any) -> None:
    cleaned, keep = _cleaned(value)
    if keep:
        target[key] = cleaned
    else:
        target.pop(key, None)


def _is_directive_key(key: str) -> bool:
    return key in (DIRECTIVE, RETAIN_KEYS) or key.startswith(
        (SET_ELEMENT_ORDER + "/", DELETE_FROM_PRIMITIVE_LIST + "/")
    )


def _strip_prefix(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        if prefix == DELETE_FROM_PRIMITIVE_LIST:
            raise StrategicMergePatchError(_BAD_FORMAT_PRIMITIVE_LIST)
        raise StrategicMergePatchError(_BAD_FORMAT_SET_ELEMENT_ORDER)
    return rest


# --- upstream error messages (mergepatch.Err*) -----------------------------------------------


def _bad_patch_type(directive: Any, item: dict[str, Any]) -> StrategicMergePatchError:
    return StrategicMergePatchError(f"unknown patch type: {go_format(directive)} in map: {go_format(item)}")


def _no_merge_key(item: dict[str, Any], merge_key: str) -> StrategicMergePatchError:
    return StrategicMergePatchError(
        f"map: {go_format(item)} does not contain declared merge key: {merge_key}"
    )


def _bad_arg_type(expected: str, actual: Any) -> StrategicMergePatchError:
    return StrategicMergePatchError(f"expected a {expected}, but received a {go_type_name(actual)}")
