"""Built-in kinds kept in another group's storage, between the served and the stored form.

Upstream's "cohabitating resources": `events.k8s.io/v1` Events are core/v1 Events in storage,
so each group reads what the other wrote. The object store converts through this codec as it
converts custom resources through the CRD one: on every read, list, watch event and write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controlplane.api import event_versions
from controlplane.api.resources import ResourceInfo
from controlplane.storage.interface import Watch

__all__ = ["StoredAsCodec"]

Obj = dict[str, Any]
_Convert = Callable[[Mapping[str, Any]], Obj]

# (group, plural) -> (stored form to served form, served form to stored form)
_CONVERSIONS: dict[tuple[str, str], tuple[_Convert, _Convert]] = {
    ("events.k8s.io", "events"): (event_versions.from_core, event_versions.to_core),
}


class StoredAsCodec:
    """`controlplane.apiserver.store.CustomCodec` for `ResourceInfo.stored_as` kinds: pure
    functions, so every call finishes without awaiting."""

    @staticmethod
    def handles(info: ResourceInfo) -> bool:
        return (info.group, info.plural) in _CONVERSIONS

    def synchronous(self, info: ResourceInfo) -> bool:
        return True

    async def from_storage(self, info: ResourceInfo, objects: list[Obj]) -> list[Obj]:
        served = _CONVERSIONS[(info.group, info.plural)][0]
        return [served(obj) for obj in objects]

    async def to_storage(self, info: ResourceInfo, obj: Obj) -> Obj:
        return _CONVERSIONS[(info.group, info.plural)][1](obj)

    def watch(self, info: ResourceInfo, watch: Watch) -> Watch:
        return watch
