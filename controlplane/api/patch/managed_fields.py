"""`metadata.managedFields`: who owns which fields of an object.

Holds the decoded form of the entries (`ManagerEntry`), their encoding with upstream's order
(`internal/managedfields.go`: by operation, time, manager, apiVersion, subresource), the field
set an object sets (`fields_of`) and the bookkeeping after a non-apply write (`update`), which
mirrors structured-merge-diff's `Updater.Update` as wrapped by the apiserver's field manager:
fields the write changed move to the writer, fields it removed leave every owner, and the
identity-only metadata (name, uid, resourceVersion, ...) is never owned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from controlplane.api.patch._ssa_schema import TypeRef, root_type
from controlplane.api.patch._ssa_typed import compare, to_field_set, whole_fields_v1
from controlplane.api.patch.fieldpath import (
    FieldSet,
    InvalidFieldsV1,
    Path,
    decode_fields_v1,
    edit_fields_v1,
    recursive_difference,
    to_fields_v1,
)

__all__ = [
    "STRIP_FIELDS",
    "Identity",
    "ManagerEntry",
    "decode",
    "default_reset_fields",
    "encode",
    "fields_of",
    "object_without_managed_fields",
    "update",
]

# (manager, operation, apiVersion for Update operations else "", subresource): upstream's
# manager identifier, which leaves the apiVersion out for appliers so an applier keeps one entry.
Identity = tuple[str, str, str, str]


def _path(*names: str) -> Path:
    return tuple(("f", n) for n in names)


# `stripSet` of the apiserver's field manager: never part of any manager's set (exact members,
# so `.metadata.labels.x` stays owned while `.metadata` itself does not).
STRIP_FIELDS: FieldSet = frozenset(
    {
        _path("apiVersion"),
        _path("kind"),
        _path("metadata"),
        _path("metadata", "name"),
        _path("metadata", "namespace"),
        _path("metadata", "creationTimestamp"),
        _path("metadata", "selfLink"),
        _path("metadata", "uid"),
        _path("metadata", "clusterName"),
        _path("metadata", "generation"),
        _path("metadata", "managedFields"),
        _path("metadata", "resourceVersion"),
    }
)


def default_reset_fields(subresource: str) -> FieldSet:
    """Fields a write through `subresource` does not own (upstream's `GetResetFields`): the main
    resource leaves `.status` to the status subresource, which in turn leaves `.spec` alone.
    Callers pass `reset_fields=frozenset()` for kinds without a status subresource."""
    if subresource == "":
        return frozenset({_path("status")})
    if subresource == "status":
        return frozenset({_path("spec")})
    return frozenset()


@dataclass
class ManagerEntry:
    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""
    # The `fieldsV1` this entry was decoded from when it is exactly what `to_fields_v1` would
    # write for `source_fields`: while `fields` is still that set, it is written back as it came.
    source: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    source_fields: FieldSet | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def identity(self) -> Identity:
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def identifier(self) -> str:
        """Upstream's JSON manager identifier (entry without time and fields), the sort key of
        conflict messages."""
        ident: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply" and self.api_version:
            ident["apiVersion"] = self.api_version
        if self.subresource:
            ident["subresource"] = self.subresource
        return orjson.dumps(ident).decode()

    def describe(self) -> str:
        """`printManager`: `"name"`, plus the subresource, plus `using <apiVersion>` for updaters."""
        text = orjson.dumps(self.manager).decode()
        if self.subresource:
            text += f" with subresource {orjson.dumps(self.subresource).decode()}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def _fields_v1(self) -> dict[str, Any]:
        source, source_fields = self.source, self.source_fields
        if source is None or source_fields is None:
            return to_fields_v1(self.fields)
        if self.fields is not source_fields:
            lost = source_fields - self.fields
            gained = self.fields - source_fields
            if 2 * (len(lost) + len(gained)) > len(source_fields):
                return to_fields_v1(self.fields)
            source = edit_fields_v1(source, lost, gained)
        copied: dict[str, Any] = orjson.loads(orjson.dumps(source))  # in C, and shares nothing
        return copied

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self._fields_v1()
        if self.subresource:
            out["subresource"] = self.subresource
        return out


# Recently decoded `fieldsV1` objects by their JSON text (which fixes both the set and whether
# the text is canonical): an object's entries mostly come back unchanged on its next write, and
# objects stamped from one template carry identical ones. The sets are immutable, so shared.
_DECODED_SETS: dict[bytes, tuple[FieldSet, bool]] = {}
_DECODED_SETS_LIMIT = 256


def _decode_fields(encoded: Any) -> tuple[FieldSet, bool]:
    try:
        text = orjson.dumps(encoded) if type(encoded) is dict else None
    except TypeError:
        text = None
    if text is None:
        return decode_fields_v1(encoded)
    hit = _DECODED_SETS.get(text)
    if hit is None:
        hit = decode_fields_v1(encoded)
        if len(_DECODED_SETS) >= _DECODED_SETS_LIMIT:
            del _DECODED_SETS[next(iter(_DECODED_SETS))]
        _DECODED_SETS[text] = hit
    return hit


def decode(entries: Any) -> dict[Identity, ManagerEntry]:
    """Decode `metadata.managedFields`; raises ValueError on a malformed list."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise InvalidFieldsV1("managedFields must be a list")
    out: dict[Identity, ManagerEntry] = {}
    for raw in entries:
        if not isinstance(raw, Mapping):
            raise InvalidFieldsV1("managedFields entries must be objects")
        fields_type = raw.get("fieldsType", "")
        if fields_type != "FieldsV1":
            raise InvalidFieldsV1(f'invalid fieldsType "{fields_type}" (expected FieldsV1)')
        encoded = raw.get("fieldsV1") or {}
        fields, canonical = _decode_fields(encoded)
        time = raw.get("time")
        entry = ManagerEntry(
            manager=str(raw.get("manager", "")),
            operation=str(raw.get("operation", "")),
            api_version=str(raw.get("apiVersion", "")),
            fields=fields,
            time=str(time) if time is not None else None,
            subresource=str(raw.get("subresource", "")),
        )
        previous = out.get(entry.identity)
        if previous is not None:
            entry.fields = previous.fields | entry.fields
        elif canonical:
            entry.source, entry.source_fields = encoded, fields
        out[entry.identity] = entry
    return out


def encode(entries: Iterable[ManagerEntry]) -> list[dict[str, Any]]:
    """Entries with a non-empty set, in upstream's order."""
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.to_dict() for e in kept]


def object_without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def fields_of(
    obj: Mapping[str, Any],
    schema: dict[str, Any] | None,
    *,
    subresource: str = "",
    reset_fields: FieldSet | None = None,
) -> FieldSet:
    """The paths `obj` sets, as an applier of it would own them (`ToFieldSet` less the strip set
    and the fields the write path resets)."""
    reset = default_reset_fields(subresource) if reset_fields is None else reset_fields
    found = to_field_set(object_without_managed_fields(obj), root_type(schema))
    return recursive_difference(found - STRIP_FIELDS, reset)


def _is_reset(entries: Any) -> bool:
    """`isResetManagedFields`: an empty list, or a list of one empty entry, clears ownership."""
    return isinstance(entries, list) and (len(entries) == 0 or (len(entries) == 1 and entries[0] == {}))


def _managed_of(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return None
    meta = obj.get("metadata")
    return meta.get("managedFields") if isinstance(meta, Mapping) else None


def update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    operation: str = "Update",
    subresource: str = "",
    api_version: str,
    schema: dict[str, Any] | None,
    now: str,
    reset_fields: FieldSet | None = None,
) -> list[dict[str, Any]]:
    """The `metadata.managedFields` of `new` after `manager` wrote it over `old` (None: create).

    A client may rewrite managedFields itself: entries sent in `new` replace the live ones (not
    through a subresource), `[]` or `[{}]` clear them, and anything undecodable falls back to
    the live entries, as upstream's `FieldManager.Update` does.
    """
    manager = manager or "unknown"
    reset = default_reset_fields(subresource) if reset_fields is None else reset_fields
    sent = _managed_of(new)
    managers: dict[Identity, ManagerEntry] = {}
    if not _is_reset(sent):
        if sent and not subresource:
            try:
                managers = decode(sent)
            except ValueError:
                managers = {}
        if not managers:
            try:
                managers = decode(_managed_of(old))
            except ValueError:
                managers = {}

    t = root_type(schema)
    before = object_without_managed_fields(old) if old is not None else {}
    after = object_without_managed_fields(new)
    # A reset of whole top-level fields (`.status`, `.spec`) is a reset of keys both sides may
    # simply leave out of the comparison, instead of walking them and dropping what is found.
    top_level = not t.map_atomic() and all(len(p) == 1 and p[0][0] == "f" for p in reset)
    if top_level:
        for ((_, name),) in reset:
            before.pop(name, None)
            after.pop(name, None)
    if old is None and not managers and top_level:
        return _created(after, t, manager, operation, api_version, now, subresource)
    diff = compare(before, after, t)
    changed: set[Path] | FieldSet = diff.added
    diff.added |= diff.modified
    removed: set[Path] | FieldSet = diff.removed
    if not top_level:
        changed = recursive_difference(changed, reset)
        removed = recursive_difference(removed, reset)
    for entry in managers.values():
        # Only a set that loses paths is replaced, so an untouched one is written as it came.
        if not entry.fields.isdisjoint(changed) or not entry.fields.isdisjoint(removed):
            entry.fields = entry.fields - changed - removed

    own = (changed - removed) - STRIP_FIELDS if removed else changed - STRIP_FIELDS
    if own:
        entry = ManagerEntry(manager, operation, api_version, frozenset(own), now, subresource)
        previous = managers.get(entry.identity)
        if previous is not None:
            entry.fields = entry.fields | previous.fields
            entry.source, entry.source_fields = previous.source, previous.source_fields
        managers[entry.identity] = entry
    return encode(managers.values())


# STRIP_FIELDS as element texts, each with the text of its parent first.
_STRIP_TEXTS = sorted(tuple(f"{kind}:{data}" for kind, data in path) for path in STRIP_FIELDS)


def _drop_member(node: dict[str, Any], texts: tuple[str, ...]) -> bool:
    """Take the node at `texts` out of the set encoded by `node`, keeping what is below it;
    whether anything changed."""
    child = node.get(texts[0])
    if child is None:
        return False
    if len(texts) == 1:
        if "." in child:
            del child["."]
            return True
        if not child:
            del node[texts[0]]
            return True
        return False
    if not _drop_member(child, texts[1:]):
        return False
    if not child:
        del node[texts[0]]  # nothing of the set is left below it, and it is no member
    elif len(child) == 1 and "." in child:
        node[texts[0]] = {}  # a member whose members below are all gone
    return True


# Field sets of created objects, by the object's JSON less the metadata the strip set drops
# (name, uid, creationTimestamp...): objects made from one template (a ReplicaSet's pods) have the
# same one, and walking the object is most of a create's managedFields. Failing that, by the JSON
# of each whole top-level member (spec, data...), for objects whose metadata differs (a
# StatefulSet's pods carry their own name in a label). Values are the set's JSON, so no caller
# shares a dict; keys are bounded in size and number (at most 256 x 16 KiB each).
_CREATED_MEMO: dict[bytes, tuple[TypeRef, bytes]] = {}
_WHOLE_MEMO: dict[tuple[str, bytes], tuple[TypeRef, bytes]] = {}
_MEMO_ENTRIES = 256
_MEMO_MAX_BYTES = 16 * 1024
_STRIP_METADATA = frozenset(path[1][1] for path in STRIP_FIELDS if len(path) == 2)


def _memo_put(memo: dict[Any, tuple[TypeRef, bytes]], key: Any, t: TypeRef, fields: dict[str, Any]) -> None:
    if len(memo) >= _MEMO_ENTRIES:
        memo.clear()
    memo[key] = (t, orjson.dumps(fields))


def _created_key(after: dict[str, Any]) -> bytes | None:
    """The JSON `_created`'s field set is a function of, or None when it is not known to be:
    the stripped metadata must be scalars (the walk would go below anything else)."""
    meta = after.get("metadata")
    if isinstance(meta, dict):
        kept: dict[str, Any] = {}
        for key, value in meta.items():
            if key not in _STRIP_METADATA:
                kept[key] = value
            elif value is not None and type(value) not in (str, int):
                return None
        after = {**after, "metadata": kept}
    try:
        raw = orjson.dumps(after)
    except orjson.JSONEncodeError:
        return None
    return raw if len(raw) <= _MEMO_MAX_BYTES else None


def _whole_member(key: str, value: Any, t: TypeRef) -> dict[str, Any]:
    """`whole_fields_v1` of a top-level member, remembered for members other than metadata (which
    names the object, so never repeats)."""
    if key == "metadata" or not isinstance(value, dict | list) or not value:
        return whole_fields_v1(value, t)
    try:
        raw = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return whole_fields_v1(value, t)
    if len(raw) > _MEMO_MAX_BYTES:
        return whole_fields_v1(value, t)
    hit = _WHOLE_MEMO.get((key, raw))
    if hit is not None and hit[0] is t:  # the same schema type, not one since replaced
        fields: dict[str, Any] = orjson.loads(hit[1])
        return fields
    fields = whole_fields_v1(value, t)
    _memo_put(_WHOLE_MEMO, (key, raw), t, fields)
    return fields


def _created(
    after: dict[str, Any],
    t: TypeRef,
    manager: str,
    operation: str,
    api_version: str,
    now: str,
    subresource: str,
) -> list[dict[str, Any]]:
    """`update` of a create with no entries yet: the writer owns every node the comparison with
    nothing finds (its `added` set), less the strip set, encoded in one walk of the object."""
    encoded: dict[str, Any] = {}
    memo_key = _created_key(after) if after else None
    hit = _CREATED_MEMO.get(memo_key) if memo_key is not None else None
    if hit is not None and hit[0] is t:
        encoded = orjson.loads(hit[1])
    elif after:
        for key in sorted(after):
            encoded[f"f:{key}"] = _whole_member(key, after[key], t.field(key)[0])
        for texts in _STRIP_TEXTS:
            _drop_member(encoded, texts)
        if memo_key is not None:
            _memo_put(_CREATED_MEMO, memo_key, t, encoded)
    if not encoded:
        return []
    entry = ManagerEntry(manager, operation, api_version, frozenset(), now, subresource)
    out = entry.to_dict()
    out["fieldsV1"] = encoded
    return [out]
