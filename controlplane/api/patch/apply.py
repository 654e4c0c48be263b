"""Server-side apply (`application/apply-patch+yaml`) as a pure function.

Mirrors structured-merge-diff's `Updater.Apply` behind the apiserver's field manager: the
applied configuration is merged into the live object; what this manager applied last time and
omits now is pruned unless someone else owns it; every other manager whose fields the result
changes is a conflict (409) unless `force`, which moves the fields to the applier instead.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from controlplane.api import errors
from controlplane.api.patch._ssa_schema import TypeRef, root_type
from controlplane.api.patch._ssa_typed import (
    compare,
    ensure_named,
    json_equal,
    merge,
    remove_items,
    to_field_set,
    validate,
)
from controlplane.api.patch.fieldpath import (
    FieldSet,
    Path,
    iterate_sorted,
    path_string,
    recursive_difference,
)
from controlplane.api.patch.managed_fields import (
    STRIP_FIELDS,
    Identity,
    ManagerEntry,
    decode,
    default_reset_fields,
    encode,
    object_without_managed_fields,
)

__all__ = ["InvalidApplyConfiguration", "apply", "conflict_error"]

BEFORE_FIRST_APPLY = "before-first-apply"


class InvalidApplyConfiguration(errors.StatusError):
    """A configuration the typed conversion rejects. Upstream returns it as a plain Go error,
    which the handler renders as a 500 Status without a reason."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = ""


def conflict_error(conflicts: list[tuple[ManagerEntry, Path]]) -> errors.Conflict:
    """`NewConflictError`: one cause per field; the message lists them grouped by manager."""
    ordered = sorted(conflicts, key=lambda c: c[0].identifier())
    causes = [
        errors.Cause(
            reason=errors.FIELD_MANAGER_CONFLICT,
            message=f"conflict with {owner.describe()}",
            field=path_string(path),
        )
        for owner, path in ordered
    ]
    if len(ordered) == 1:
        owner, path = ordered[0]
        message = f"Apply failed with 1 conflict: conflict with {owner.describe()}: {path_string(path)}"
    else:
        lines: list[str] = []
        current = None
        for owner, path in ordered:
            if owner.identifier() != current:
                current = owner.identifier()
                lines.append(f"conflicts with {owner.describe()}:")
            lines.append(f"- {path_string(path)}")
        message = f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message=message, causes=causes)


def _gvknn(applied: dict[str, Any], api_version: str) -> str:
    """`objectGVKNN`: `<ns>/<name>; <group>/<version>, Kind=<kind>`."""
    meta = applied.get("metadata") if isinstance(applied.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    group_version = api_version if "/" in api_version else f"/{api_version}"
    return (
        f"{meta.get('namespace', '')}/{meta.get('name', '')}; {group_version}, Kind={applied.get('kind', '')}"
    )


def _check_configuration(applied: dict[str, Any], api_version: str, t: TypeRef) -> None:
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise errors.BadRequest(message="metadata.managedFields must be nil")
    if applied.get("apiVersion") != api_version:
        raise errors.BadRequest(
            message=(
                "Incorrect version specified in apply patch. "
                f"Specified patch version: {applied.get('apiVersion', '')}, expected: {api_version}"
            )
        )
    problems = validate(applied, t)
    if problems:
        detail = problems[0] if len(problems) == 1 else "errors:\n" + "\n".join(f"  {p}" for p in problems)
        raise InvalidApplyConfiguration(
            message=f"failed to create typed patch object ({_gvknn(applied, api_version)}): {detail}"
        )


def _prune(merged: Any, t: TypeRef, managers: dict[Identity, ManagerEntry], last: FieldSet | None) -> Any:
    """`Updater.prune`: drop what the applier owned last time and no longer applies, unless
    another manager owns it; never drop what the applier did not own."""
    if not last:
        return merged
    last_named = ensure_named(last, t)
    pruned = remove_items(merged, t, last_named)
    managed: set[Path] = set()
    for entry in managers.values():
        managed |= entry.fields
    merged_set = ensure_named(to_field_set(merged, t), t)
    pruned_set = ensure_named(to_field_set(pruned, t), t)
    pruned = remove_items(merged, t, merged_set - (pruned_set | ensure_named(managed, t)))
    pruned_set = ensure_named(to_field_set(pruned, t), t)
    return remove_items(merged, t, (merged_set - pruned_set) & last_named)


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    schema: dict[str, Any] | None,
    now: str,
    subresource: str = "",
    reset_fields: FieldSet | None = None,
) -> dict[str, Any]:
    """Apply `applied` for `manager` to `live` (None: create) and return the new object with its
    `metadata.managedFields`. Raises `errors.Conflict` on conflicts (unless `force`),
    `errors.BadRequest` for a managedFields or apiVersion mismatch in the configuration, and
    `InvalidApplyConfiguration` for one that does not fit the schema."""
    t = root_type(schema)
    _check_configuration(applied, api_version, t)
    reset = default_reset_fields(subresource) if reset_fields is None else reset_fields

    current = object_without_managed_fields(live) if live is not None else {}
    live_entries = None
    if live is not None and isinstance(live.get("metadata"), dict):
        live_entries = live["metadata"].get("managedFields")
    try:
        managers = decode(live_entries)
    except ValueError as exc:
        raise errors.InternalError(message=f"failed to decode managed fields: {exc}") from None
    if live is not None and not live_entries:
        # Objects that predate field tracking: someone set these fields, so they are not
        # silently the applier's to prune or overwrite.
        unknown = ManagerEntry(
            BEFORE_FIRST_APPLY, "Update", api_version, to_field_set(current, t) - STRIP_FIELDS
        )
        if unknown.fields:
            managers[unknown.identity] = unknown

    merged = merge(current, object_without_managed_fields(applied), t)
    me = ManagerEntry(manager, "Apply", api_version, fields=frozenset(), subresource=subresource)
    previous = managers.get(me.identity)
    me.time = previous.time if previous is not None else None
    me.fields = recursive_difference(to_field_set(applied, t), reset)
    managers[me.identity] = me
    merged = _prune(merged, t, managers, previous.fields if previous is not None else None)

    diff = compare(current, merged, t)
    changed = recursive_difference(diff.added | diff.modified, reset)
    removed = recursive_difference(diff.removed, reset)
    conflicts: list[tuple[ManagerEntry, Path]] = []
    for identity, entry in managers.items():
        if identity == me.identity:
            continue
        taken = entry.fields & changed
        conflicts.extend((entry, path) for path in iterate_sorted(taken))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for identity, entry in managers.items():
        if identity != me.identity:
            entry.fields = entry.fields - changed - removed
    me.fields = me.fields - STRIP_FIELDS

    if not json_equal(merged, current):
        me.time = now
    # The merge shares subtrees with its inputs; the caller owns what it gets back.
    result: dict[str, Any] = copy.deepcopy(merged) if isinstance(merged, dict) else {}
    entries = encode(managers.values())
    meta = result.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if entries:
        meta["managedFields"] = entries
    result["metadata"] = meta
    return result
