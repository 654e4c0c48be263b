"""Adoption and release by selector: upstream's BaseControllerRefManager.ClaimObject with the pod
and ReplicaSet ref managers (k8s.io/kubernetes/pkg/controller/controller_ref_manager.go).

An object controlled by us stays ours while the selector matches it and is released (its
controller reference removed) when it stops matching; an orphan that matches is adopted; an
object controlled by anyone else is left alone. Adoption and release are strategic merge patches
that carry the dependent's uid, so a patch never lands on a namesake created in between, and
adoption first re-reads the owner live so a controller being deleted never adopts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector
from controlplane.client import Client, ResourcePath
from controlplane.controllers.podutil import controller_of
from controlplane.controllers.runtime import Informer

__all__ = [
    "CONTROLLER_INDEX",
    "SMP",
    "ControllerRefManager",
    "OwnerKind",
    "controlled_or_orphaned",
    "controller_index",
    "owner_reference",
    "recheck_deletion",
]

log = logging.getLogger("pinnace.controller.claim")

Obj = dict[str, Any]
SMP = "application/strategic-merge-patch+json"

# Objects indexed by their controller's uid, orphans by namespace: the candidates a controller
# may claim without scanning the whole namespace.
CONTROLLER_INDEX = "pinnace.dev/controller-uid-or-orphan"


def controller_index(obj: Mapping[str, Any]) -> list[str]:
    ref = controller_of(obj)
    if ref is not None:
        return [f"uid:{ref.get('uid', '')}"]
    return [f"orphan:{(obj.get('metadata') or {}).get('namespace') or ''}"]


def controlled_or_orphaned(informer: Informer, owner: Mapping[str, Any]) -> list[Obj]:
    meta = owner.get("metadata") or {}
    return [
        *informer.by_index(CONTROLLER_INDEX, f"uid:{meta.get('uid', '')}"),
        *informer.by_index(CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}"),
    ]


@dataclass(frozen=True)
class OwnerKind:
    api_version: str
    kind: str


def owner_reference(owner: Mapping[str, Any], kind: OwnerKind) -> dict[str, Any]:
    """metav1.NewControllerRef: controller and blockOwnerDeletion set."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def recheck_deletion(
    client: Client, rp: ResourcePath, owner: Mapping[str, Any], kind: OwnerKind
) -> Callable[[], Awaitable[None]]:
    """RecheckDeletionTimestamp: one live read of the owner (at most once per sync) that refuses
    adoption if the owner is gone, replaced, or being deleted."""
    meta = owner.get("metadata") or {}
    namespace, name, uid = meta.get("namespace") or None, str(meta.get("name", "")), meta.get("uid")
    verdict: list[errors.StatusError | None] = []

    async def check() -> None:
        if not verdict:
            problem: errors.StatusError | None = None
            try:
                fresh = await client.get(rp, name, namespace)
            except errors.StatusError as exc:
                problem = exc
            else:
                fmeta = fresh.get("metadata") or {}
                if fmeta.get("uid") != uid:
                    problem = errors.Conflict(
                        message=f"original {kind.kind} {namespace}/{name} is gone: "
                        f"got uid {fmeta.get('uid')}, wanted {uid}"
                    )
                elif fmeta.get("deletionTimestamp"):
                    problem = errors.Conflict(
                        message=f"{namespace}/{name} has just been deleted at {fmeta['deletionTimestamp']}"
                    )
            verdict.append(problem)
        if verdict[0] is not None:
            raise verdict[0]

    return check


class ControllerRefManager:
    def __init__(
        self,
        client: Client,
        rp: ResourcePath,
        owner: Mapping[str, Any],
        kind: OwnerKind,
        selector: LabelSelector,
        can_adopt: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._rp = rp
        self._owner = owner
        self._kind = kind
        self._selector = selector
        self._can_adopt = can_adopt
        meta = owner.get("metadata") or {}
        self._uid = meta.get("uid")
        self._namespace = meta.get("namespace") or ""
        self._owner_deleting = bool(meta.get("deletionTimestamp"))

    def _matches(self, obj: Mapping[str, Any]) -> bool:
        return self._selector.matches((obj.get("metadata") or {}).get("labels") or {})

    async def claim(self, objs: Iterable[Obj]) -> list[Obj]:
        """The objects that are ours after adopting and releasing; the first error, if any,
        is raised after every object was tried (upstream aggregates them)."""
        claimed: list[Obj] = []
        failures: list[BaseException] = []
        for obj in objs:
            try:
                if await self._claim_one(obj):
                    claimed.append(obj)
            except (errors.StatusError, OSError, TimeoutError) as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
        return claimed

    async def _claim_one(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != self._uid:
                return False
            if self._matches(obj):
                return True
            if self._owner_deleting:
                return False
            with contextlib.suppress(errors.NotFound):
                await self._release(obj)
            return False
        if self._owner_deleting or not self._matches(obj):
            return False
        if meta.get("deletionTimestamp"):
            return False
        if self._namespace and self._namespace != (meta.get("namespace") or ""):
            return False
        try:
            await self._adopt(obj)
        except errors.NotFound:
            return False
        return True

    async def _adopt(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        try:
            await self._can_adopt()
        except errors.StatusError as exc:
            kind = "Pod" if self._rp.plural == "pods" else obj.get("kind", self._rp.plural)
            raise errors.Conflict(
                message=f"can't adopt {kind} {meta.get('namespace')}/{meta.get('name')} ({meta.get('uid')}): {exc}"
            ) from exc
        # ValidateOwnerReferences refuses this if another controller reference appeared meanwhile.
        patch = {
            "metadata": {
                "ownerReferences": [owner_reference(self._owner, self._kind)],
                "uid": meta.get("uid"),
            }
        }
        await self._client.patch(
            self._rp, str(meta.get("name")), patch, meta.get("namespace"), patch_type=SMP
        )

    async def _release(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        log.debug("releasing %s/%s from %s", meta.get("namespace"), meta.get("name"), self._kind.kind)
        patch = {
            "metadata": {"ownerReferences": [{"$patch": "delete", "uid": self._uid}], "uid": meta.get("uid")}
        }
        try:
            await self._client.patch(
                self._rp, str(meta.get("name")), patch, meta.get("namespace"), patch_type=SMP
            )
        except errors.Invalid:
            # No owner references left, or the uid changed (deleted and recreated): nothing to release.
            return
