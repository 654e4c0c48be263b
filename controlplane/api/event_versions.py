"""One Event, two groups: `events.k8s.io/v1` and core `v1` (pkg/apis/events/v1/conversion.go).

Upstream stores one resource and serves it in both groups; the newer group renames seven fields
and adds none. Storage keeps the core/v1 form, so an Event written through either group is
read through the other. A field one side does not have stays where it is: a stored object only
holds fields of the core schema, and the renames are a bijection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CORE_API_VERSION", "EVENTS_API_VERSION", "from_core", "to_core"]

CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"

# (core/v1 name, events.k8s.io/v1 name), in the order the core schema lists them.
_RENAMES: tuple[tuple[str, str], ...] = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
)
_TO_EVENTS = dict(_RENAMES)
_TO_CORE = {new: old for old, new in _RENAMES}


def _renamed(obj: Mapping[str, Any], names: Mapping[str, str], api_version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Event", "apiVersion": api_version}
    for key, value in obj.items():
        if key not in ("kind", "apiVersion"):
            out[names.get(key, key)] = value
    return out


def from_core(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A core/v1 Event as `events.k8s.io/v1` serves it. Values are shared, not copied."""
    return _renamed(obj, _TO_EVENTS, EVENTS_API_VERSION)


def to_core(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An `events.k8s.io/v1` Event in its core/v1 form. Values are shared, not copied."""
    return _renamed(obj, _TO_CORE, CORE_API_VERSION)
