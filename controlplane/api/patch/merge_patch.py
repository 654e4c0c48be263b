"""JSON merge patch (RFC 7386, `application/merge-patch+json`).

`null` deletes a key; an object merges recursively; anything else replaces. Like the
evanphx/json-patch library upstream uses, nulls inside newly added values (also inside objects
in lists) are pruned rather than stored, while null list elements are kept.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.api.patch._smp_json import deep_copy

__all__ = ["apply"]


def apply(doc: dict[str, Any], patch: Any, *, in_place: bool = False) -> dict[str, Any]:
    """Merge the decoded patch body into a copy of `doc` (into `doc` itself with `in_place`, for
    a caller whose `doc` is its own); the patch is never mutated nor shared with the result."""
    if not isinstance(patch, dict):
        # jsonpatch.ErrBadJSONPatch, which the upstream handler turns into a 400.
        raise errors.BadRequest(message="Invalid JSON Patch")
    merged: dict[str, Any] = _merge(doc if in_place else deep_copy(doc), patch)
    return merged


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _pruned(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


def _pruned(value: Any) -> Any:
    """A copy of a patch value without null object members."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
