"""Custom resources between the served version and the storage version, for the object store.

Reads convert each stored object to the version asked for and apply that version's schema
defaults (upstream defaults on read from storage too); writes convert to the storage version.
Strategy None rewrites apiVersion; Webhook calls the conversion webhook client.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from controlplane.api import errors
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver.crd import custom
from controlplane.apiserver.crd.watches import WatchTracker
from controlplane.storage.interface import Watch

__all__ = ["CustomResourceCodec"]

Obj = dict[str, Any]


class CustomResourceCodec:
    """`controlplane.apiserver.store.CustomCodec` for CRD-served resources. `ctx` (the server
    context, handed to the conversion webhook client) is set once the context exists."""

    def __init__(self) -> None:
        self.ctx: object | None = None
        self.watches = WatchTracker()

    def synchronous(self, info: ResourceInfo) -> bool:
        return not custom.needs_webhook(info)

    async def _convert(self, info: ResourceInfo, objects: list[Obj], version: str) -> list[Obj]:
        wanted = f"{info.group}/{version}"
        pending = [o for o in objects if o.get("apiVersion") != wanted]
        if not pending:
            return objects
        if not custom.needs_webhook(info):
            for obj in pending:
                custom.rewrite_version(info, obj, version)
            return objects
        try:
            module = importlib.import_module("controlplane.apiserver.conversion")
        except ImportError as exc:
            raise errors.InternalError(message="conversion webhook is not available") from exc
        crd = info.extra.get("crd_object")
        converted: list[Obj] = await module.convert_objects(self.ctx, crd, pending, wanted)
        by_position = iter(converted)
        return [next(by_position) if o.get("apiVersion") != wanted else o for o in objects]

    async def from_storage(self, info: ResourceInfo, objects: list[Obj]) -> list[Obj]:
        out = await self._convert(info, objects, info.version)
        for obj in out:
            custom.default(info, obj)
        return out

    async def to_storage(self, info: ResourceInfo, obj: Obj) -> Obj:
        storage = info.storage_version or info.version
        if obj.get("apiVersion") == f"{info.group}/{storage}":
            return obj
        return (await self._convert(info, [copy.deepcopy(obj)], storage))[0]

    def watch(self, info: ResourceInfo, watch: Watch) -> Watch:
        """Track an open watch so that it ends when its version stops being served."""
        return self.watches.track(str(info.extra.get("crd", "")), info.version, watch)
