"""StatefulSet controller: stable pod names and storage, ordered start and stop, partitioned
rolling updates (upstream pkg/controller/statefulset).

Each sync: adopt orphaned ControllerRevisions and claim the set's pods, find or create the update
revision (a rollback renumbers an old one), plan the sync from the cache (statefulset_plan), run
the plan, write status, and prune revisions beyond revisionHistoryLimit that nothing uses.

Pod names are fixed (`<set>-<ordinal>`), so a cache that lags our own writes can never make a
second pod: creating a pod that exists fails with AlreadyExists and the sync is retried. Claims
are created before their pod, and are never deleted here: the garbage collector deletes them when
the retention policy made the set or a scaled-away pod their owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.controllers import history
from controlplane.controllers.controller_ref import (
    ControllerRefManager,
    OwnerKind,
    adopt,
    owner_reference,
    owners_to_sync_on_update,
    recheck_deletion,
    resolve_controller_ref,
    selecting_owners,
)
from controlplane.controllers.podutil import controller_of, is_pod_ready
from controlplane.controllers.runtime import Controller, R, key_of
from controlplane.controllers.statefulset_plan import Action, Plan, plan_statefulset
from controlplane.controllers.statefulset_pods import (
    claim_name,
    claim_owner_up_to_date,
    claims_for_pod,
    claims_match_retention,
    has_unexpected_controller,
    identity_matches,
    ordinal_of,
    parent_and_ordinal,
    pod_revision,
    storage_matches,
    update_claim_owner_refs,
    update_identity,
    update_storage,
)

__all__ = ["MAX_BATCH_SIZE", "StatefulSetController"]

Obj = dict[str, Any]

STATEFULSET_KIND = OwnerKind("apps/v1", "StatefulSet")
# Most requests in flight at once in Parallel mode (upstream MaxBatchSize).
MAX_BATCH_SIZE = 500
# StatefulSetStatus fields upstream serialises with omitempty.
_OMIT_EMPTY = ("observedGeneration", "readyReplicas", "currentReplicas", "updatedReplicas")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _selector(sts: Mapping[str, Any]) -> LabelSelector:
    return label_selector_from_dict(_spec(sts).get("selector"))


def complete_rolling_update(sts: Mapping[str, Any], status: dict[str, Any]) -> None:
    """Once every replica is updated and ready, the update revision becomes the current one."""
    replicas = int(_spec(sts).get("replicas") or 0)
    if (
        (_spec(sts).get("updateStrategy") or {}).get("type") == "RollingUpdate"
        and status["updatedReplicas"] == replicas
        and status["readyReplicas"] == replicas
        and status["replicas"] == replicas
    ):
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = status["updateRevision"]


def inconsistent_status(sts: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether status differs from what the set shows (collisionCount alone does not count)."""
    old = sts.get("status") or {}
    if int(status.get("observedGeneration") or 0) > int(old.get("observedGeneration") or 0):
        return True
    counts = ("replicas", "currentReplicas", "readyReplicas", "updatedReplicas", "availableReplicas")
    if any(int(status.get(k) or 0) != int(old.get(k) or 0) for k in counts):
        return True
    return any((status.get(k) or "") != (old.get(k) or "") for k in ("currentRevision", "updateRevision"))


class StatefulSetController(Controller):
    name = "statefulset"
    event_source = "statefulset-controller"
    workers = 5

    def setup(self) -> None:
        informers = self.ctx.informers
        self.sets = informers.informer(R.STATEFULSETS)
        self.pods = informers.informer(R.PODS)
        self.revisions = informers.informer(R.CONTROLLERREVISIONS)
        self.claims = informers.informer(R.PVCS)
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)

    # -- event handlers ----------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Mapping[str, Any] | None) -> Obj | None:
        return resolve_controller_ref(self.sets, namespace, ref, STATEFULSET_KIND.kind)

    def _selecting(self, pod: Mapping[str, Any]) -> list[Obj]:
        return selecting_owners(self.sets, pod, _selector)

    def _on_set(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self.enqueue_obj(new if new is not None else old)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" or (
            event == "ADDED" and new is not None and _meta(new).get("deletionTimestamp")
        ):
            gone = new if new is not None else old
            if gone is not None:
                self.enqueue_obj(self._resolve(str(_meta(gone).get("namespace", "")), controller_of(gone)))
            return
        if new is None:
            return
        namespace = str(_meta(new).get("namespace", ""))
        ref = controller_of(new)
        if event == "ADDED":
            if ref is not None:
                self.enqueue_obj(self._resolve(namespace, ref))
                return
            for sts in self._selecting(new):
                self.enqueue_obj(sts)
            return
        if old is None or _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        targets = owners_to_sync_on_update(self._resolve, self._selecting, old, new)
        for sts in targets.owners:
            self.enqueue_obj(sts)
        controller = targets.controller
        if controller is not None:
            min_ready = int(_spec(controller).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
                self.enqueue_after(key_of(controller), min_ready)

    # -- reading -----------------------------------------------------------------------------

    def _owner_ref(self, sts: Mapping[str, Any]) -> Obj:
        return owner_reference(sts, STATEFULSET_KIND)

    def _can_adopt(self, sts: Mapping[str, Any]) -> Callable[[], Awaitable[None]]:
        """canAdoptFunc: RecheckDeletionTimestamp against a live read of the set."""
        return recheck_deletion(self.ctx.client, R.STATEFULSETS, sts, STATEFULSET_KIND)

    def _list_revisions(self, sts: Mapping[str, Any], selector: LabelSelector) -> list[Obj]:
        """ListControllerRevisions: matching the selector, owned by the set or by nobody."""
        uid = _meta(sts).get("uid")
        out = []
        for rev in self.revisions.list(str(_meta(sts).get("namespace") or "")):
            if not selector.matches(_meta(rev).get("labels") or {}):
                continue
            ref = controller_of(rev)
            if ref is None or ref.get("uid") == uid:
                out.append(rev)
        return out

    def _claim(self, sts: Mapping[str, Any], name: str) -> Obj | None:
        return self.claims.get(f"{_meta(sts).get('namespace')}/{name}")

    def _claims_of(self, sts: Mapping[str, Any]) -> dict[str, Obj]:
        return {
            str(_meta(c).get("name")): c for c in self.claims.list(str(_meta(sts).get("namespace") or ""))
        }

    # -- the sync ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.get(key)
        if sts is None:
            return None
        try:
            selector = _selector(sts)
        except errors.StatusError as exc:
            # A selector the API should have refused: nothing to retry until the set changes.
            self.log.warning("error converting StatefulSet %s selector: %s", key, exc)
            return None
        await self._adopt_orphan_revisions(sts, selector)
        manager = ControllerRefManager(
            self.ctx.client, R.PODS, sts, STATEFULSET_KIND, selector, self._can_adopt(sts)
        )
        pods = await manager.claim(
            self.pods.list(str(_meta(sts).get("namespace") or "")),
            accept=lambda pod: parent_and_ordinal(pod)[0] == _meta(sts).get("name"),
        )
        status = await self._update_statefulset(sts, pods, selector)
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("availableReplicas") != int(_spec(sts).get("replicas") or 0):
            # One more look once pods may have become available (clock skew, missed updates).
            return float(min_ready)
        return None

    async def _adopt_orphan_revisions(self, sts: Obj, selector: LabelSelector) -> None:
        orphans = [r for r in self._list_revisions(sts, selector) if controller_of(r) is None]
        if not orphans:
            return
        await self._can_adopt(sts)()
        for rev in orphans:
            await adopt(self.ctx.client, R.CONTROLLERREVISIONS, self._owner_ref(sts), rev)

    async def _update_statefulset(self, sts: Obj, pods: list[Obj], selector: LabelSelector) -> dict[str, Any]:
        revisions = history.sort_revisions(self._list_revisions(sts, selector))
        current: Obj | None = None
        update: Obj | None = None
        try:
            current, update, collision_count = await self._statefulset_revisions(sts, revisions)
            status = await self._perform_update(sts, pods, current, update, collision_count)
        except errors.StatusError:
            with contextlib.suppress(errors.StatusError):
                await self._truncate_history(sts, pods, revisions, current, update)
            raise
        await self._truncate_history(sts, pods, revisions, current, update)
        return status

    async def _statefulset_revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """getStatefulSetRevisions: (current revision, update revision, collision count)."""
        collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
        template_labels = _meta(_spec(sts).get("template") or {}).get("labels") or {}
        candidate = history.new_controller_revision(
            sts,
            self._owner_ref(sts),
            template_labels,
            history.template_patch(sts),
            history.next_revision(revisions),
            collision_count,
        )
        if _meta(sts).get("annotations"):
            candidate["metadata"]["annotations"] = dict(_meta(sts)["annotations"])
        equal = history.find_equal_revisions(revisions, candidate)
        if equal and history.equal_revision(revisions[-1], equal[-1]):
            # The newest revision already holds this template.
            update = revisions[-1]
        elif equal:
            # Rolled back to an older template: renumber its revision instead of copying it.
            update = await history.update_revision_number(
                self.ctx.client, equal[-1], history.revision_number(candidate)
            )
        else:
            update, collision_count = await history.create_controller_revision(
                self.ctx.client, str(_meta(sts).get("name")), candidate, collision_count
            )
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if _meta(r).get("name") == wanted), None)
        return (current if current is not None else update), update, collision_count

    async def _perform_update(
        self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collision_count: int
    ) -> dict[str, Any]:
        current_set = history.apply_revision(sts, current)
        update_set = history.apply_revision(sts, update)
        plan = plan_statefulset(
            sts,
            current_set,
            update_set,
            str(_meta(current).get("name")),
            str(_meta(update).get("name")),
            collision_count,
            pods,
            self._claims_of(sts),
            self._owner_ref(sts),
            self.ctx.clock.now(),
        )
        status = plan.status
        failure: errors.StatusError | None = None
        try:
            await self._execute(sts, update_set, plan, status)
        except errors.StatusError as exc:
            failure = exc
        try:
            await self._write_status(sts, status)
        except errors.StatusError as exc:
            if failure is None:
                failure = exc
        if failure is not None:
            raise failure
        return status

    # -- running the plan --------------------------------------------------------------------

    async def _execute(self, sts: Obj, update_set: Obj, plan: Plan, status: dict[str, Any]) -> None:
        for _stage, steps in plan.stages:
            if plan.monotonic:
                for step in steps:
                    await self._run_step(sts, update_set, step, status)
            else:
                await self._slow_start(steps, lambda step: self._run_step(sts, update_set, step, status))

    async def _slow_start(
        self, steps: Sequence[list[Action]], run: Callable[[list[Action]], Awaitable[None]]
    ) -> None:
        """slowStartBatch(1, ...): batches of 1, 2, 4, ... (at most MAX_BATCH_SIZE) until one fails."""
        pos = 0
        batch = min(len(steps), 1)
        while batch > 0:
            results = await asyncio.gather(
                *(run(s) for s in steps[pos : pos + batch]), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            for failure in failures:
                if not isinstance(failure, errors.StatusError):
                    raise failure
            if failures:
                raise failures[0]
            pos += batch
            batch = min(2 * batch, len(steps) - pos, MAX_BATCH_SIZE)

    async def _run_step(self, sts: Obj, update_set: Obj, step: list[Action], status: dict[str, Any]) -> None:
        for action in step:
            if action.kind == "delete":
                await self._delete_pod(sts, action, status)
            elif action.kind == "create":
                await self._create_pod(sts, dict(action.pod))
            elif action.kind == "ensure_claims":
                await self._create_missing_claims(sts, action.pod)
            elif action.kind == "update":
                await self._update_pod(update_set, action.pod)
            else:
                await self._update_claims_for_retention(update_set, action.pod)

    def _pod_event(self, verb: str, sts: Obj, pod: Mapping[str, Any], failure: BaseException | None) -> None:
        """recordPodEvent: `<verb> Pod <pod> in StatefulSet <set> successful|failed error: ...`."""
        pod_name, set_name = _meta(pod).get("name"), _meta(sts).get("name")
        if failure is None:
            self.ctx.recorder.event(
                sts,
                "Normal",
                f"Successful{verb.title()}",
                f"{verb} Pod {pod_name} in StatefulSet {set_name} successful",
            )
        else:
            self.ctx.recorder.event(
                sts,
                "Warning",
                f"Failed{verb.title()}",
                f"{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {_text(failure)}",
            )

    def _claim_event(
        self,
        verb: str,
        sts: Obj,
        pod: Mapping[str, Any],
        claim: Mapping[str, Any],
        failure: BaseException | None,
    ) -> None:
        names = (_meta(claim).get("name"), _meta(pod).get("name"), _meta(sts).get("name"))
        if failure is None:
            self.ctx.recorder.event(
                sts,
                "Normal",
                f"Successful{verb.title()}",
                f"{verb} Claim {names[0]} Pod {names[1]} in StatefulSet {names[2]} success",
            )
        else:
            self.ctx.recorder.event(
                sts,
                "Warning",
                f"Failed{verb.title()}",
                f"{verb} Claim {names[0]} for Pod {names[1]} in StatefulSet {names[2]} failed error: {_text(failure)}",
            )

    async def _delete_pod(self, sts: Obj, action: Action, status: dict[str, Any]) -> None:
        name = str(_meta(action.pod).get("name"))
        try:
            await self.ctx.client.delete(R.PODS, name, str(_meta(sts).get("namespace")))
        except errors.StatusError as exc:
            self._pod_event("delete", sts, action.pod, exc)
            if not (action.rolling and isinstance(exc, errors.NotFound)):
                raise
        else:
            self._pod_event("delete", sts, action.pod, None)
        if action.rolling:
            status["currentReplicas"] -= 1

    async def _create_pod(self, sts: Obj, pod: Obj) -> None:
        """CreateStatefulPod: claims first, then the pod, then the claims' retention owners."""
        try:
            await self._create_claims(sts, pod)
        except errors.StatusError as exc:
            self._pod_event("create", sts, pod, exc)
            raise
        try:
            await self.ctx.client.create(R.PODS, pod, str(_meta(sts).get("namespace")))
        except errors.AlreadyExists:
            raise
        except errors.StatusError as exc:
            self._pod_event("create", sts, pod, exc)
            raise
        try:
            await self._update_claims_for_retention(sts, pod)
        except errors.StatusError as exc:
            self._pod_event("update", sts, pod, exc)
            raise
        self._pod_event("create", sts, pod, None)

    async def _create_missing_claims(self, sts: Obj, pod: Mapping[str, Any]) -> None:
        await self._create_claims(sts, pod)
        try:
            await self._update_claims_for_retention(sts, pod)
        except errors.StatusError as exc:
            self._pod_event("update", sts, pod, exc)
            raise

    async def _create_claims(self, sts: Obj, pod: Mapping[str, Any]) -> None:
        """createPersistentVolumeClaims: create the pod's claims the cache does not hold; one
        being deleted is an error until it is gone (the pod would lose its data otherwise)."""
        problems: list[str] = []
        namespace = str(_meta(sts).get("namespace"))
        for claim in claims_for_pod(sts, pod).values():
            name = str(claim["metadata"]["name"])
            existing = self._claim(sts, name)
            if existing is None:
                try:
                    await self.ctx.client.create(R.PVCS, claim, namespace)
                except errors.AlreadyExists:
                    continue  # our cache lags our own earlier create
                except errors.StatusError as exc:
                    problems.append(f"failed to create PVC {name}: {_text(exc)}")
                    self._claim_event("create", sts, pod, claim, exc)
                    continue
                self._claim_event("create", sts, pod, claim, None)
            elif _meta(existing).get("deletionTimestamp"):
                problems.append(f"pvc {name} is being deleted")
        if problems:
            raise errors.Conflict(message="; ".join(problems))

    async def _update_claims_for_retention(self, sts: Obj, pod: Mapping[str, Any]) -> None:
        """UpdatePodClaimForRetentionPolicy: give each existing claim the owners the policy wants."""
        ordinal = ordinal_of(pod)
        namespace = str(_meta(sts).get("namespace"))
        for template in _spec(sts).get("volumeClaimTemplates") or []:
            name = claim_name(sts, template, ordinal)
            claim = self._claim(sts, name)
            if claim is None:
                continue  # picked up on a later sync once the cache has it
            if has_unexpected_controller(claim, sts, pod):
                self.ctx.recorder.event(
                    sts,
                    "Warning",
                    "ConflictingController",
                    f"PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging "
                    "controller, the retention policy is ignored for this claim",
                )
            if claim_owner_up_to_date(claim, sts, pod):
                continue
            updated = copy.deepcopy(claim)
            refs = update_claim_owner_refs(claim, sts, pod)
            if refs:
                updated["metadata"]["ownerReferences"] = refs
            else:
                updated["metadata"].pop("ownerReferences", None)
            updated.setdefault("apiVersion", "v1")
            updated.setdefault("kind", "PersistentVolumeClaim")
            try:
                await self.ctx.client.request("PUT", R.PVCS.url(namespace, name), body=updated)
            except errors.StatusError as exc:
                exc.message = f"could not update claim {name} for delete policy ownerRefs: {exc.message}"
                raise

    async def _update_pod(self, sts: Obj, original: Mapping[str, Any]) -> None:
        """UpdateStatefulPod: put identity, storage and claim owners right, retrying conflicts."""
        pod: Obj = copy.deepcopy(dict(original))
        namespace, name = str(_meta(sts).get("namespace")), str(_meta(pod).get("name"))
        attempted = False
        failure: errors.StatusError | None = None
        for _ in range(5):
            consistent = True
            if not identity_matches(sts, pod):
                update_identity(sts, pod)
                consistent = False
            if not storage_matches(sts, pod):
                update_storage(sts, pod)
                consistent = False
                try:
                    await self._create_claims(sts, pod)
                except errors.StatusError as exc:
                    self._pod_event("update", sts, pod, exc)
                    raise
            if not claims_match_retention(sts, pod, self._claims_of(sts)):
                try:
                    await self._update_claims_for_retention(sts, pod)
                except errors.StatusError as exc:
                    self._pod_event("update", sts, pod, exc)
                    raise
                consistent = False
            if consistent:
                return
            attempted = True
            try:
                await self.ctx.client.request("PUT", R.PODS.url(namespace, name), body=pod)
                failure = None
                break
            except errors.Conflict as exc:
                failure = exc
                pod = await self.ctx.client.get(R.PODS, name, namespace)
            except errors.StatusError as exc:
                failure = exc
                break
        if attempted:
            self._pod_event("update", sts, pod, failure)
        if failure is not None:
            raise failure

    # -- status and history ------------------------------------------------------------------

    async def _write_status(self, sts: Obj, status: dict[str, Any]) -> None:
        """updateStatefulSetStatus: complete a finished rolling update, then write when anything
        kubectl or the next sync reads changed (retrying conflicts against a fresh read)."""
        complete_rolling_update(sts, status)
        if not inconsistent_status(sts, status):
            return
        meta = _meta(sts)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        body: Obj = {k: v for k, v in status.items() if not (k in _OMIT_EMPTY and not v)}
        target = copy.deepcopy(sts)
        for attempt in range(5):
            target["status"] = dict(body)
            target.setdefault("apiVersion", STATEFULSET_KIND.api_version)
            target.setdefault("kind", STATEFULSET_KIND.kind)
            try:
                await self.ctx.client.request(
                    "PUT", R.STATEFULSETS.url(namespace, name, "status"), body=target
                )
                return
            except errors.Conflict:
                if attempt == 4:
                    raise
                target = await self.ctx.client.get(R.STATEFULSETS, name, namespace)

    async def _truncate_history(
        self,
        sts: Obj,
        pods: Sequence[Obj],
        revisions: list[Obj],
        current: Obj | None,
        update: Obj | None,
    ) -> None:
        live = {pod_revision(p) for p in pods}
        live.update(str(_meta(r).get("name")) for r in (current, update) if r is not None)
        limit = _spec(sts).get("revisionHistoryLimit")
        namespace = str(_meta(sts).get("namespace"))
        for rev in history.prune_unlive_history(revisions, live, 10 if limit is None else int(limit)):
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(R.CONTROLLERREVISIONS, str(_meta(rev).get("name")), namespace)


def _text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, errors.StatusError) else str(exc)
