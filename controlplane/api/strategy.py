"""What a write may change, per resource: the REST strategy facts, as pure functions.

Upstream each type has a strategy (PrepareForCreate / PrepareForUpdate): writes to the main
resource keep the stored status when status is a subresource, writes to `/status` keep everything
but status, and `metadata.generation` bumps only when the spec (anything outside metadata and
status) changes. Server-owned metadata (uid, creationTimestamp, deletion fields, generation) is
never taken from the client on update.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from controlplane.api.patch._smp_json import json_bytes
from controlplane.api.resources import ResourceInfo

__all__ = [
    "SERVER_OWNED_METADATA",
    "prepare_for_create",
    "prepare_for_update",
    "spec_of",
]

# Metadata fields the client cannot set on update; copied from the stored object.
SERVER_OWNED_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)

# Kinds whose "status" is not a status (they have no status subresource and keep what clients write).
_OBJECT_ROOT = ("apiVersion", "kind", "metadata", "status")


def spec_of(obj: dict[str, Any], info: ResourceInfo) -> dict[str, Any]:
    """Everything that counts as spec for generation purposes."""
    excluded = _OBJECT_ROOT if info.status_subresource else ("apiVersion", "kind", "metadata")
    return {k: v for k, v in obj.items() if k not in excluded}


def prepare_for_create(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Reset what a create may not set: status (when it is a subresource) and generation."""
    meta = obj.setdefault("metadata", {})
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(field, None)
    if info.group == "" and info.plural == "nodes":
        # The kubelet registers its Node with status (capacity, addresses, conditions) in the
        # create; upstream's node strategy keeps it and only drops status.config.
        obj.setdefault("status", {}).pop("config", None)
    elif info.status_subresource and not info.custom:
        # Upstream strategies zero the status on create for built-ins; a few start it off.
        obj["status"] = _initial_status(info)
    elif info.status_subresource and info.custom:
        obj.pop("status", None)
    if info.tracks_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if _is_daemonset(info):
        meta.setdefault("annotations", {})[TEMPLATE_GENERATION] = "1"


_ALL_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


def _status_reset_metadata(info: ResourceInfo) -> tuple[str, ...]:
    """The metadata a status write may not change (upstream's status strategies): custom
    resources take none of it, apps workloads keep their labels, pods their owners."""
    if info.custom or info.group == "apiextensions.k8s.io":
        return _ALL_METADATA
    if info.group == "apps":
        return ("labels",)
    if info.group == "" and info.plural == "pods":
        return ("ownerReferences",)
    return ()


# apps/v1 carries the internal spec.templateGeneration in this annotation (upstream's conversion);
# it moves only when the pod template changes, and daemon pods are labelled with it.
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def _is_daemonset(info: ResourceInfo) -> bool:
    return info.group == "apps" and info.plural == "daemonsets"


def _template_generation(obj: dict[str, Any]) -> int:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION, "")
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def _initial_status(info: ResourceInfo) -> dict[str, Any]:
    if info.group == "" and info.plural == "pods":
        return {"phase": "Pending"}
    if info.group == "" and info.plural == "namespaces":
        return {"phase": "Active"}
    if info.group == "" and info.plural == "persistentvolumeclaims":
        return {"phase": "Pending"}
    if info.group == "" and info.plural == "persistentvolumes":
        return {"phase": "Pending"}
    if info.group == "" and info.plural == "services":
        return {"loadBalancer": {}}
    return {}


_MISSING: Any = object()


def _copy_of(old_value: Any, new_value: Any) -> Any:
    """A value identical to `old_value` that shares nothing with it: `new_value` itself when it
    serializes to the same bytes (then it already belongs to the object being written, and
    `1`, `1.0` and `true` or a different key order are told apart), else a copy of `old_value`."""
    if not isinstance(old_value, dict | list):
        return old_value  # scalars are immutable
    text = json_bytes(old_value)
    if text is None:
        return copy.deepcopy(old_value)
    if (
        new_value is not old_value
        and type(new_value) is type(old_value)
        and new_value == old_value
        and json_bytes(new_value) == text
    ):
        return new_value
    return orjson.loads(text)


def prepare_for_update(
    info: ResourceInfo,
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    subresource: str = "",
) -> None:
    """Make `new` a legal successor of `old` for a write to the main resource or a subresource.
    Mutates `new` in place."""
    new_meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata", {})
    for field in SERVER_OWNED_METADATA:
        if field in old_meta:
            new_meta[field] = _copy_of(old_meta[field], new_meta.get(field, _MISSING))
        else:
            new_meta.pop(field, None)

    if subresource == "status":
        # Status writes take status and (for built-ins) metadata from the request, minus the
        # fields upstream's status strategy resets (GetResetFields); spec always stays.
        status = new.get("status")
        # Everything else is old's, in old's key order. Most status writes carry the stored spec
        # unchanged (a patch of the stored object), so new's equal value is kept instead of
        # copying old's: the result shares nothing with `old` either way.
        replacement = {
            key: value if key in ("metadata", "status") else _copy_of(value, new.get(key, _MISSING))
            for key, value in old.items()
        }
        replacement["metadata"] = new_meta
        for field in _status_reset_metadata(info):
            if field in old_meta:
                new_meta[field] = _copy_of(old_meta[field], new_meta.get(field, _MISSING))
            else:
                new_meta.pop(field, None)
        if status is None:
            replacement.pop("status", None)
        else:
            replacement["status"] = status
        new.clear()
        new.update(replacement)
        return

    if info.status_subresource:
        if "status" in old:
            new["status"] = _copy_of(old["status"], new.get("status", _MISSING))
        else:
            new.pop("status", None)

    if info.tracks_generation and spec_of(new, info) != spec_of(old, info):
        new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
    if _is_daemonset(info):
        generation = _template_generation(old)
        if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
            generation += 1
        new_meta.setdefault("annotations", {})[TEMPLATE_GENERATION] = str(generation)
