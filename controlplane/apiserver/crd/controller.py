"""The API server's own CRD controllers: naming, establishing, serving and cleanup.

Upstream runs these inside kube-apiserver (apiextensions-apiserver's naming, establishing and
finalizer controllers and the handler that swaps serving entries); they read and write the
object store directly, because they are the server's machinery, not its clients. One worker
reconciles CRDs by name from a watch on their storage prefix, so a new CRD is served within
milliseconds of its create, and deleting one removes its objects before the CRD goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.resources import CRD_GROUP, CRD_PLURAL, ResourceInfo
from controlplane.apiserver import rest
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.crd import custom, definition, naming
from controlplane.apiserver.crd.codec import CustomResourceCodec
from controlplane.storage import errors as storage_errors

__all__ = ["CRDController"]

log = logging.getLogger("pinnace.apiserver.crd")

Obj = dict[str, Any]

# How soon to look again at a CRD whose objects are still going away (finalizers on them).
CLEANUP_RETRY = 0.5


class CRDController:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        info = ctx.registry.get(CRD_GROUP, "v1", CRD_PLURAL)
        assert info is not None
        self.info: ResourceInfo = info
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._revision = 0

    def enqueue(self, name: str) -> None:
        self._pending.add(name)
        self._wake.set()

    async def _all(self) -> list[Obj]:
        return (await self.ctx.store.list(self.info, None)).items

    async def sync_all(self) -> None:
        """Load every stored CRD (start-up): serve the established ones before the first request."""
        page = await self.ctx.store.list(self.info, None)
        self._revision = page.revision
        for crd in page.items:
            await self.reconcile(crd["metadata"]["name"])

    async def run(self) -> None:
        """Watch and reconcile until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch())
            tg.create_task(self._work())

    async def _watch(self) -> None:
        while True:
            try:
                watch = await self.ctx.store.watch(self.info, None, revision=self._revision)
            except errors.Expired:
                await self.sync_all()
                continue
            try:
                async for event in watch:
                    self._revision = event.revision
                    name = event.kv.key.rsplit("/", 1)[-1]
                    self.enqueue(name)
            except storage_errors.StorageError:
                log.warning("CRD watch ended; resyncing")
                await self.sync_all()
            finally:
                await watch.close()
            if (
                self.ctx.extra.get("stopping")
                and getattr(self.ctx.extra["stopping"], "is_set", lambda: False)()
            ):
                return

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            names = sorted(self._pending)
            self._pending.clear()
            for name in names:
                try:
                    again = await self.reconcile(name)
                except errors.Conflict:
                    again = True  # raced a client's write: the retry reads the new state
                except Exception:
                    log.exception("reconciling CustomResourceDefinition %s", name)
                    again = True
                if again:
                    asyncio.get_running_loop().call_later(CLEANUP_RETRY, self.enqueue, name)

    async def reconcile(self, name: str) -> bool:
        """Bring one CRD's status, serving entries and deletion forward. True: look again later."""
        crd = await self.ctx.store.get_or_none(self.info, "", name)
        if crd is None:
            await self._serve(name, None)
            # Its names are free again: the group's other CRDs may now be accepted.
            for other in await self._all():
                if (
                    other["metadata"]["name"] != name
                    and (other.get("spec") or {}).get("group") == name.split(".", 1)[-1]
                ):
                    self._pending.add(other["metadata"]["name"])
            if self._pending:
                self._wake.set()
            return False
        crd = await self._update_names(crd)
        await self._serve(name, crd)
        if crd["metadata"].get("deletionTimestamp"):
            return await self._finalize(crd)
        return False

    async def _serve(self, name: str, crd: Obj | None) -> None:
        infos = custom.resource_infos(crd) if crd is not None else []
        self.ctx.registry.set_custom(name, infos)
        codec = getattr(self.ctx.store, "custom", None)
        if isinstance(codec, CustomResourceCodec) and codec.watches.count(name):
            # Upstream tears the storage of an unserved version down, which ends its watches;
            # everything written before now (the cleanup's DELETED events) is delivered first.
            served = {info.version for info in infos}
            codec.watches.end(name, served, await self.ctx.store.current_revision())

    async def _update_names(self, crd: Obj) -> Obj:
        others = [o for o in await self._all() if o["metadata"]["name"] != crd["metadata"]["name"]]
        result = naming.calculate(crd, others)
        updated = copy.deepcopy(crd)
        status = updated.setdefault("status", {})
        status["acceptedNames"] = result.accepted
        now = self.ctx.now()
        definition.set_condition(updated, result.names_accepted, now)
        definition.set_condition(updated, result.established, now)
        if updated == crd:
            return crd
        try:
            written = await self.ctx.store.update(
                self.info, updated, expected_revision=int(crd["metadata"]["resourceVersion"])
            )
        except errors.Conflict:
            return crd  # a newer write is on its way through the watch
        if (
            result.names_accepted["status"] == "True"
            and crd.get("status", {}).get("acceptedNames") != result.accepted
        ):
            # Newly accepted names may unblock a sibling that conflicted with the old ones.
            group = (crd.get("spec") or {}).get("group")
            for other in others:
                if (other.get("spec") or {}).get("group") == group and not definition.is_condition_true(
                    other, "NamesAccepted"
                ):
                    self.enqueue(other["metadata"]["name"])
        return written

    async def _finalize(self, crd: Obj) -> bool:
        """Upstream's finalizer controller: delete every object, then drop the finalizer."""
        if definition.CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return await self._delete_if_free(crd)
        now = self.ctx.now()
        progressing = copy.deepcopy(crd)
        definition.set_condition(
            progressing,
            {
                "type": "Terminating",
                "status": "True",
                "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress",
            },
            now,
        )
        crd = await self._write(crd, progressing)
        remaining = 0
        served = self.ctx.registry.custom_entries(crd["metadata"]["name"])
        if served and definition.is_condition_true(crd, "Established"):
            info = served[0]
            for obj in (await self.ctx.store.list(info, None)).items:
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    remaining += 1
                    continue
                try:
                    _, gone = await rest.delete_object(
                        self.ctx, info, meta.get("namespace", ""), meta["name"], rest.DeleteOptions()
                    )
                except errors.NotFound:
                    continue
                if not gone:
                    remaining += 1
        if remaining:
            return True
        done = copy.deepcopy(crd)
        definition.set_condition(
            done,
            {
                "type": "Terminating",
                "status": "False",
                "reason": "InstanceDeletionCompleted",
                "message": "removed all instances",
            },
            self.ctx.now(),
        )
        done["metadata"]["finalizers"] = [
            f for f in done["metadata"].get("finalizers") or [] if f != definition.CLEANUP_FINALIZER
        ]
        if not done["metadata"]["finalizers"]:
            done["metadata"].pop("finalizers")
        crd = await self._write(crd, done)
        return await self._delete_if_free(crd)

    async def _write(self, old: Obj, new: Obj) -> Obj:
        if old == new:
            return old
        return await self.ctx.store.update(
            self.info, new, expected_revision=int(old["metadata"]["resourceVersion"])
        )

    async def _delete_if_free(self, crd: Obj) -> bool:
        if crd["metadata"].get("finalizers"):
            return False  # someone else's finalizer: their controller removes it, then we delete
        with contextlib.suppress(errors.NotFound):
            await self.ctx.store.delete(
                self.info,
                "",
                crd["metadata"]["name"],
                expected_revision=int(crd["metadata"]["resourceVersion"]),
            )
        return False
