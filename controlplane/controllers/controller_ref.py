"""Controller references: making them, following them back to their owner, and claiming objects
by selector (upstream metav1.NewControllerRef, controller_utils' RecheckDeletionTimestamp and
k8s.io/kubernetes/pkg/controller/controller_ref_manager.go). Every controller that owns what it
selects (ReplicaSets, ReplicationControllers, Deployments, DaemonSets, StatefulSets) claims
through the one ControllerRefManager here.

An object controlled by us stays ours while the selector (and any filter) matches it and is
released (its controller reference removed) when it stops matching; an orphan that matches is
adopted; an object controlled by anyone else is left alone. Adoption and release are strategic
merge patches that carry the dependent's uid, so a patch never lands on a namesake created in
between, and adoption first re-reads the owner live so a controller being deleted never adopts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
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
    "UpdateTargets",
    "adopt",
    "controlled_or_orphaned",
    "controller_index",
    "owner_reference",
    "owners_to_sync_on_update",
    "recheck_deletion",
    "release",
    "resolve_controller_ref",
    "selecting_owners",
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


def resolve_controller_ref(
    owners: Informer, namespace: str, ref: Mapping[str, Any] | None, kind: str
) -> Obj | None:
    """resolveControllerRef: the cached owner a controller reference names, or None when the
    reference is of another kind or its owner is gone or was replaced (another uid)."""
    if ref is None or ref.get("kind") != kind:
        return None
    name = str(ref.get("name", ""))
    owner = owners.get(f"{namespace}/{name}" if namespace else name)
    if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    return owner


def selecting_owners(
    owners: Informer, obj: Mapping[str, Any], selector_of: Callable[[Obj], LabelSelector]
) -> list[Obj]:
    """The cached owners in obj's namespace whose selector matches obj's labels (upstream
    GetPodReplicaSets, GetPodDaemonSets, getPodStatefulSets, getDeploymentsForReplicaSet). An
    owner whose selector is invalid or empty matches nothing here, never everything."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    found = []
    for owner in owners.list(str(meta.get("namespace") or "")):
        try:
            selector = selector_of(owner)
        except errors.StatusError:
            continue
        if not selector.empty and selector.matches(labels):
            found.append(owner)
    return found


@dataclass(frozen=True)
class UpdateTargets:
    """Whom an update of a dependent concerns: the owners to sync, and its current controller
    when that resolves (for the caller's own follow-ups, such as a minReadySeconds re-check)."""

    owners: list[Obj]
    controller: Obj | None


def owners_to_sync_on_update(
    resolve: Callable[[str, Mapping[str, Any]], Obj | None],
    selecting: Callable[[Obj], list[Obj]],
    old: Obj,
    new: Obj,
) -> UpdateTargets:
    """The part upstream's updatePod (ReplicaSet, DaemonSet, StatefulSet), updateReplicaSet
    (Deployment) and updateHistory (DaemonSet) share: when the controller reference changed the
    old controller syncs; a controlled object syncs its controller and nothing else; an orphan
    whose labels or reference changed syncs every owner selecting it, so one may adopt it.
    `resolve` is the caller's resolveControllerRef, `selecting` its owners-selecting lookup."""
    namespace = str((new.get("metadata") or {}).get("namespace") or "")
    ref, old_ref = controller_of(new), controller_of(old)
    found: list[Obj] = []
    if old_ref != ref and old_ref is not None:
        previous = resolve(namespace, old_ref)
        if previous is not None:
            found.append(previous)
    if ref is not None:
        current = resolve(namespace, ref)
        if current is not None:
            found.append(current)
        return UpdateTargets(found, current)
    old_labels = (old.get("metadata") or {}).get("labels") or {}
    new_labels = (new.get("metadata") or {}).get("labels") or {}
    if old_labels != new_labels or old_ref != ref:
        found.extend(selecting(new))
    return UpdateTargets(found, None)


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


async def adopt(
    client: Client, rp: ResourcePath, owner_ref: Obj, obj: Mapping[str, Any], finalizers: Sequence[str] = ()
) -> Obj:
    """Make `owner_ref` obj's controller, adding `finalizers` (upstream ownerRefControllerPatch).
    ValidateOwnerReferences refuses this if another controller reference appeared meanwhile."""
    meta = obj.get("metadata") or {}
    patch_meta: Obj = {"ownerReferences": [owner_ref], "uid": meta.get("uid")}
    if finalizers:
        patch_meta["finalizers"] = list(finalizers)
    return await client.patch(
        rp, str(meta.get("name")), {"metadata": patch_meta}, meta.get("namespace"), patch_type=SMP
    )


async def release(
    client: Client, rp: ResourcePath, owner_uid: Any, obj: Mapping[str, Any], finalizers: Sequence[str] = ()
) -> None:
    """Drop the owner's reference and `finalizers` (GenerateDeleteOwnerRefStrategicMergeBytes);
    an object already gone or no longer ours is not an error."""
    meta = obj.get("metadata") or {}
    patch_meta: Obj = {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": meta.get("uid")}
    if finalizers:
        patch_meta["$deleteFromPrimitiveList/finalizers"] = list(finalizers)
    patch = {"metadata": patch_meta}
    try:
        await client.patch(rp, str(meta.get("name")), patch, meta.get("namespace"), patch_type=SMP)
    except (errors.NotFound, errors.Invalid):
        # Gone, no owner references left, or the uid changed (deleted and recreated).
        return


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

    async def claim(self, objs: Iterable[Obj], accept: Callable[[Obj], bool] | None = None) -> list[Obj]:
        """The objects that are ours after adopting and releasing, in the order given; the first
        error, if any, is raised after every object was tried (upstream aggregates them).
        `accept` narrows what matches beyond the selector (upstream ClaimPods' filters)."""
        claimed: list[Obj] = []
        failures: list[BaseException] = []
        for obj in objs:
            try:
                if await self._claim_one(obj, accept):
                    claimed.append(obj)
            except (errors.StatusError, OSError, TimeoutError) as exc:
                failures.append(exc)
        if failures:
            raise failures[0]
        return claimed

    def _matches(self, obj: Obj, accept: Callable[[Obj], bool] | None) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return self._selector.matches(labels) and (accept is None or accept(obj))

    async def _claim_one(self, obj: Obj, accept: Callable[[Obj], bool] | None) -> bool:
        meta = obj.get("metadata") or {}
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != self._uid:
                return False
            if self._matches(obj, accept):
                return True
            if self._owner_deleting:
                return False
            log.debug("releasing %s/%s from %s", meta.get("namespace"), meta.get("name"), self._kind.kind)
            await release(self._client, self._rp, self._uid, obj)
            return False
        if self._owner_deleting or not self._matches(obj, accept):
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
        await adopt(self._client, self._rp, owner_reference(self._owner, self._kind), obj)
