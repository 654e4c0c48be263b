"""The engine behind the ReplicaSet and ReplicationController controllers (upstream
k8s.io/kubernetes/pkg/controller/replicaset/replica_set.go, which serves both kinds).

Per owner key: claim pods by controller reference (adopting matching orphans, releasing owned
pods that stopped matching), then, if the expectations of the previous sync were met, create
the missing replicas in slow-start batches or delete the surplus in deletion-rank order, and
write the status. Subclasses say only which kind they manage and how its selector reads.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector
from controlplane.client import ResourcePath
from controlplane.controllers.controller_ref import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    OwnerKind,
    controlled_or_orphaned,
    controller_index,
    owner_reference,
    owners_to_sync_on_update,
    recheck_deletion,
    resolve_controller_ref,
    selecting_owners,
)
from controlplane.controllers.expectations import UIDTrackingControllerExpectations
from controlplane.controllers.pod_control import FAILED_CREATE, FAILED_DELETE, create_pod, delete_pod
from controlplane.controllers.podutil import (
    controller_of,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
)
from controlplane.controllers.replica_ranking import pods_to_delete
from controlplane.controllers.runtime import Controller, key_of, rfc3339
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.status_causes import namespace_terminating

__all__ = [
    "BURST_REPLICAS",
    "ManagedKind",
    "ReplicaManagerBase",
    "calculate_status",
    "pod_from_template",
    "slow_start_batch",
    "status_up_to_date",
]

Obj = dict[str, Any]

BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH_SIZE = 1
REPLICA_FAILURE = "ReplicaFailure"


@dataclass(frozen=True)
class ManagedKind:
    rp: ResourcePath
    owner: OwnerKind


# --- pure parts ---------------------------------------------------------------------------------


async def slow_start_batch(
    count: int, initial_batch_size: int, fn: Callable[[], Awaitable[None]]
) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in batches of 1, 2, 4, ... run concurrently; stop after the first
    batch with a failure. Returns (successes, first error) like upstream's slowStartBatch."""
    remaining = count
    successes = 0
    batch = min(remaining, initial_batch_size)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        if failures:
            return successes, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def _replicas(owner: Mapping[str, Any]) -> int:
    value = (owner.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _template(owner: Mapping[str, Any]) -> Mapping[str, Any]:
    return (owner.get("spec") or {}).get("template") or {}


def pod_from_template(owner: Mapping[str, Any], kind: OwnerKind) -> Obj:
    """GetPodFromTemplate: labels, annotations, finalizers and spec from the template, named
    `<owner>-` plus the five characters the server appends, controlled by the owner."""
    template = _template(owner)
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": f"{(owner.get('metadata') or {}).get('name', '')}-",
        "ownerReferences": [owner_reference(owner, kind)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            meta[field] = copy.deepcopy(tmeta[field])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def _set_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    for current in conditions:
        same_type = current.get("type") == cond["type"]
        if (
            same_type
            and current.get("status") == cond["status"]
            and current.get("reason") == cond.get("reason")
        ):
            return conditions
    return [*(c for c in conditions if c.get("type") != cond["type"]), cond]


def calculate_status(
    owner: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    manage_error: BaseException | None,
    now: datetime,
) -> Obj:
    """The owner's next status from the pods it owns (upstream calculateStatus). Zero counts are
    left out, as the API's omitempty fields are."""
    spec = owner.get("spec") or {}
    template_labels = (_template(owner).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = ready = available = 0
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    previous = owner.get("status") or {}
    conditions = copy.deepcopy(list(previous.get("conditions") or []))
    failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - _replicas(owner)
        reason = FAILED_CREATE if diff < 0 else FAILED_DELETE if diff > 0 else ""
        cond = {
            "type": REPLICA_FAILURE,
            "status": "True",
            "lastTransitionTime": rfc3339(now),
            "reason": reason,
            "message": str(manage_error),
        }
        conditions = _set_condition(conditions, cond)
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status: Obj = {"replicas": len(pods)}
    for name, value in (
        ("fullyLabeledReplicas", fully_labeled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("observedGeneration", int(previous.get("observedGeneration") or 0)),
    ):
        if value:
            status[name] = value
    if conditions:
        status["conditions"] = conditions
    return status


_COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def status_up_to_date(owner: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """updateReplicaSetStatus's short cut: counts, conditions and observedGeneration all current."""
    current = owner.get("status") or {}
    generation = int((owner.get("metadata") or {}).get("generation") or 0)
    return (
        all(int(current.get(f) or 0) == int(status.get(f) or 0) for f in _COUNTS)
        and int(current.get("observedGeneration") or 0) == generation
        and list(current.get("conditions") or []) == list(status.get("conditions") or [])
    )


def _pod_key(pod: Mapping[str, Any]) -> str:
    return key_of(pod)


# --- the controller -----------------------------------------------------------------------------


class ReplicaManagerBase(Controller):
    """Shared by ReplicaSetController and ReplicationManager; subclasses set `managed` and
    `selector_of`."""

    managed: ClassVar[ManagedKind]
    workers = 5
    burst_replicas: ClassVar[int] = BURST_REPLICAS

    def selector_of(self, owner: Mapping[str, Any]) -> LabelSelector:
        raise NotImplementedError

    def setup(self) -> None:
        self.expectations = UIDTrackingControllerExpectations(self.ctx.clock)
        self.owners = self.ctx.informers.informer(self.managed.rp)
        self.pods = self.ctx.informers.informer(R.PODS)
        self.owners.add_indexer(CONTROLLER_INDEX, controller_index)
        self.pods.add_indexer(CONTROLLER_INDEX, controller_index)
        self.owners.add_handler(self._on_owner)
        self.pods.add_handler(self._on_pod)

    # -- handlers ------------------------------------------------------------------------------

    def _on_owner(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        key = key_of(obj)
        if event == "DELETED" or (
            old is not None and new is not None and old["metadata"].get("uid") != new["metadata"].get("uid")
        ):
            # A namesake created later starts with a clean slate.
            self.expectations.delete(key)
        self.enqueue(key)

    def _resolve(self, namespace: str, ref: Mapping[str, Any]) -> Obj | None:
        return resolve_controller_ref(self.owners, namespace, ref, self.managed.owner.kind)

    def _selecting_owners(self, pod: Mapping[str, Any]) -> list[Obj]:
        if not (pod.get("metadata") or {}).get("labels"):
            return []  # upstream getPodReplicaSets: a pod without labels has no owners to find
        return selecting_owners(self.owners, pod, self.selector_of)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "ADDED" and new is not None:
            self._pod_added(new)
        elif event == "MODIFIED" and old is not None and new is not None:
            self._pod_updated(old, new)
        elif event == "DELETED":
            pod = old if old is not None else new
            if pod is not None:
                self._pod_deleted(pod)

    def _pod_added(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            # Seen for the first time already terminating (a restart): not a creation to count.
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            owner = self._resolve(meta.get("namespace") or "", ref)
            if owner is None:
                return
            key = key_of(owner)
            self.expectations.creation_observed(key)
            self.enqueue(key)
            return
        for owner in self._selecting_owners(pod):
            self.enqueue_obj(owner)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        label_changed = (old["metadata"].get("labels") or {}) != (cur["metadata"].get("labels") or {})
        if cur["metadata"].get("deletionTimestamp"):
            # Graceful deletion starts: replace the pod now, not when the kubelet is done.
            self._pod_deleted(cur)
            if label_changed:
                self._pod_deleted(old)
            return
        targets = owners_to_sync_on_update(self._resolve, self._selecting_owners, old, cur)
        for owner in targets.owners:
            self.enqueue_obj(owner)
        controller = targets.controller
        if controller is not None:
            min_ready = int((controller.get("spec") or {}).get("minReadySeconds") or 0)
            if not is_pod_ready(old) and is_pod_ready(cur) and min_ready > 0:
                # Availability arrives with time, not with an event: look again once it may have.
                self.enqueue_after(key_of(controller), min_ready + 1.0)

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None:
            return
        owner = self._resolve(pod["metadata"].get("namespace") or "", ref)
        if owner is None:
            return
        key = key_of(owner)
        self.expectations.deletion_observed(key, _pod_key(pod))
        self.enqueue(key)

    # -- sync ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.delete(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector_of(owner)
        except errors.StatusError as exc:
            self.log.warning("%s %s has an invalid selector: %s", self.managed.owner.kind, key, exc)
            return None
        active = [p for p in controlled_or_orphaned(self.pods, owner) if is_pod_active(p)]
        manager = ControllerRefManager(
            self.ctx.client,
            R.PODS,
            owner,
            self.managed.owner,
            selector,
            recheck_deletion(self.ctx.client, self.managed.rp, owner, self.managed.owner),
        )
        pods = await manager.claim(active)
        manage_error: BaseException | None = None
        if needs_sync and not owner["metadata"].get("deletionTimestamp"):
            try:
                deleted = await self._manage_replicas(key, owner, pods)
            except (errors.StatusError, OSError, TimeoutError) as exc:
                manage_error = exc
            else:
                # Count what the status will show once the deletions are observed.
                pods = [p for p in pods if _pod_key(p) not in deleted]
        status = calculate_status(owner, pods, manage_error, self.ctx.clock.now())
        updated = await self._update_status(owner, status)
        if manage_error is not None:
            raise manage_error
        spec = updated.get("spec") or {}
        new_status = updated.get("status") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        replicas = _replicas(updated)
        if (
            min_ready > 0
            and int(new_status.get("readyReplicas") or 0) == replicas
            and int(new_status.get("availableReplicas") or 0) != replicas
        ):
            return float(min_ready)
        return None

    async def _manage_replicas(self, key: str, owner: Obj, pods: list[Obj]) -> set[str]:
        """Create or delete pods towards spec.replicas; returns the keys of pods deleted."""
        diff = len(pods) - _replicas(owner)
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            self.expectations.expect_creations(key, count)
            self.log.debug("too few replicas for %s: creating %d", key, count)
            successes, error = await slow_start_batch(
                count, SLOW_START_INITIAL_BATCH_SIZE, lambda: self._create_pod(owner)
            )
            # Creations never attempted will never be observed.
            for _ in range(count - successes):
                self.expectations.creation_observed(key)
            if error is not None:
                raise error
            return set()
        if diff > 0:
            count = min(diff, self.burst_replicas)
            self.log.debug("too many replicas for %s: deleting %d", key, count)
            victims = pods_to_delete(pods, self._related_pods(owner), count, self.ctx.clock.now())
            victim_keys = [_pod_key(p) for p in victims]
            self.expectations.expect_deletions(key, victim_keys)
            results = await asyncio.gather(
                *(self._delete_pod(owner, p) for p in victims), return_exceptions=True
            )
            first: BaseException | None = None
            deleted: set[str] = set()
            for pod_key, result in zip(victim_keys, results, strict=True):
                if isinstance(result, BaseException):
                    # Never observed: stop waiting for it.
                    self.expectations.deletion_observed(key, pod_key)
                    if not isinstance(result, errors.NotFound) and first is None:
                        first = result
                else:
                    deleted.add(pod_key)
            if first is not None:
                raise first
            return deleted
        return set()

    def _related_pods(self, owner: Obj) -> list[Obj]:
        """Active pods of every owner sharing this one's controller (a Deployment's ReplicaSets),
        for the doubled-up-on-a-node rank. Standalone owners have none, as upstream."""
        ref = controller_of(owner)
        if ref is None:
            return []
        seen: set[str] = set()
        related: list[Obj] = []
        for sibling in self.owners.by_index(CONTROLLER_INDEX, f"uid:{ref.get('uid', '')}"):
            for pod in self.pods.by_index(CONTROLLER_INDEX, f"uid:{sibling['metadata'].get('uid', '')}"):
                uid = str(pod["metadata"].get("uid", ""))
                if uid not in seen:
                    seen.add(uid)
                    related.append(pod)
        return related

    async def _create_pod(self, owner: Obj) -> None:
        namespace = owner["metadata"].get("namespace")
        pod = pod_from_template(owner, self.managed.owner)
        if not pod["metadata"].get("labels"):
            raise errors.BadRequest(message="unable to create pods, no labels")
        try:
            await create_pod(self.ctx.client, self.ctx.recorder, owner, pod, namespace)
        except errors.StatusError as exc:
            if namespace_terminating(exc):
                # Every create fails in a terminating namespace; nothing to report or retry.
                return
            raise

    async def _delete_pod(self, owner: Obj, pod: Obj) -> None:
        name = str(pod["metadata"]["name"])
        await delete_pod(self.ctx.client, self.ctx.recorder, owner, name, pod["metadata"].get("namespace"))

    async def _update_status(self, owner: Obj, status: Obj) -> Obj:
        """Write the status when it changed (one retry on a fresh read, as upstream)."""
        if status_up_to_date(owner, status):
            return owner
        meta = owner["metadata"]
        namespace, name = meta.get("namespace"), str(meta["name"])
        # Only top-level keys of the body are set below: a shallow copy leaves the cache alone.
        body = dict(owner)
        for attempt in range(2):
            generation = int(body["metadata"].get("generation") or 0)
            new_status = dict(status)
            if generation:
                new_status["observedGeneration"] = generation
            body["status"] = new_status
            body.setdefault("apiVersion", self.managed.owner.api_version)
            body.setdefault("kind", self.managed.owner.kind)
            try:
                result: Obj = await self.ctx.client.request(
                    "PUT", self.managed.rp.url(namespace, name, "status"), body=body
                )
                return result
            except errors.Conflict:
                if attempt:
                    raise
                body = await self.ctx.client.get(self.managed.rp, name, namespace)
        raise AssertionError("unreachable")
