"""The Deployment controller (upstream k8s.io/kubernetes/pkg/controller/deployment).

A Deployment owns ReplicaSets, one per pod template it has had: the "new" one whose template
equals the Deployment's, and old ones. Each sync, in upstream's order of precedence: a Deployment
being deleted only gets its status; a paused one is only scaled (proportionally) and cleaned up;
a deprecated rollback annotation is acted on; a change of `spec.replicas` scales every active
ReplicaSet proportionally; anything else is a rollout by the strategy (RollingUpdate within
maxSurge/maxUnavailable, or Recreate). The decisions are the pure functions of
deployment_rollout and deployment_util; this module reads the caches and writes.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.controllers import deployment_util as du
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
from controlplane.controllers.deployment_rollout import (
    ScaleStep,
    cleanup_candidates,
    old_pods_running,
    paused_condition_update,
    progress_requeue_after,
    proportional_scale_steps,
    recreate_scale_down_steps,
    rolling_new_rs_step,
    rolling_old_rs_steps,
    rollout_status,
)
from controlplane.controllers.podutil import controller_of, status_condition
from controlplane.controllers.runtime import Controller
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["DeploymentController"]

Obj = dict[str, Any]

DEPLOYMENT_KIND = OwnerKind("apps/v1", "Deployment")
# How soon to look again when a progress deadline is less than a second away.
_IMMINENT_DEADLINE_RECHECK = 0.1


def _selector(d: Mapping[str, Any]) -> LabelSelector:
    return label_selector_from_dict((d.get("spec") or {}).get("selector"))


def _selects_everything(d: Mapping[str, Any]) -> bool:
    selector = (d.get("spec") or {}).get("selector")
    return (
        isinstance(selector, dict)
        and not selector.get("matchLabels")
        and not selector.get("matchExpressions")
    )


def _rollback_to(d: Mapping[str, Any]) -> int | None:
    """The deprecated `spec.rollbackTo` (extensions/v1beta1), round-tripped as an annotation."""
    raw = du.annotations_of(d).get(du.DEPRECATED_ROLLBACK_TO)
    if not raw:
        return None
    return du.go_atoi(raw)


class DeploymentController(Controller):
    name = "deployment"
    event_source = "deployment-controller"
    workers = 5

    def setup(self) -> None:
        self.deployments = self.ctx.informers.informer(R.DEPLOYMENTS)
        self.replica_sets = self.ctx.informers.informer(R.REPLICASETS)
        self.pods = self.ctx.informers.informer(R.PODS)
        self.replica_sets.add_indexer(CONTROLLER_INDEX, controller_index)
        self.pods.add_indexer(CONTROLLER_INDEX, controller_index)
        self.deployments.add_handler(self._on_deployment)
        self.replica_sets.add_handler(self._on_replica_set)
        self.pods.add_handler(self._on_pod)

    # -- handlers ------------------------------------------------------------------------------

    def _on_deployment(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self.enqueue_obj(new if new is not None else old)

    def _resolve(self, namespace: str, ref: Mapping[str, Any]) -> Obj | None:
        return resolve_controller_ref(self.deployments, namespace, ref, DEPLOYMENT_KIND.kind)

    def _deployments_selecting(self, rs: Mapping[str, Any]) -> list[Obj]:
        return selecting_owners(self.deployments, rs, _selector)

    def _on_replica_set(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED":
            rs = old if old is not None else new
            if rs is not None:
                self._replica_set_gone(rs)
            return
        if new is None:
            return
        namespace = new["metadata"].get("namespace") or ""
        if event == "ADDED" or old is None:
            if new["metadata"].get("deletionTimestamp"):
                self._replica_set_gone(new)
                return
            ref = controller_of(new)
            if ref is not None:
                self.enqueue_obj(self._resolve(namespace, ref))
                return
            for d in self._deployments_selecting(new):
                self.enqueue_obj(d)
            return
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        for d in owners_to_sync_on_update(self._resolve, self._deployments_selecting, old, new).owners:
            self.enqueue_obj(d)

    def _replica_set_gone(self, rs: Obj) -> None:
        ref = controller_of(rs)
        if ref is not None:
            self.enqueue_obj(self._resolve(rs["metadata"].get("namespace") or "", ref))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A Recreate Deployment waits for its old pods to be gone: wake it when the last one goes."""
        if event != "DELETED":
            return
        pod = old if old is not None else new
        if pod is None:
            return
        namespace = pod["metadata"].get("namespace") or ""
        pod_ref = controller_of(pod)
        if pod_ref is None or pod_ref.get("kind") != "ReplicaSet":
            return
        rs = resolve_controller_ref(self.replica_sets, namespace, pod_ref, "ReplicaSet")
        if rs is None:
            return
        rs_ref = controller_of(rs)
        d = self._resolve(namespace, rs_ref) if rs_ref is not None else None
        if d is None or ((d.get("spec") or {}).get("strategy") or {}).get("type") != "Recreate":
            return
        owned = self.replica_sets.by_index(CONTROLLER_INDEX, f"uid:{du.uid_of(d)}")
        if not any(self._pods_of(d, owned).values()):
            self.enqueue_obj(d)

    # -- reading -------------------------------------------------------------------------------

    def _pods_of(self, d: Mapping[str, Any], rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """getPodMapForDeployment: the Deployment's pods (terminal ones too) by owning ReplicaSet."""
        try:
            selector = _selector(d)
        except errors.StatusError:
            return {}
        by_rs: dict[str, list[Obj]] = {}
        for rs in rs_list:
            uid = du.uid_of(rs)
            by_rs[uid] = [
                p
                for p in self.pods.by_index(CONTROLLER_INDEX, f"uid:{uid}")
                if selector.matches((p.get("metadata") or {}).get("labels") or {})
            ]
        return by_rs

    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        """getReplicaSetsForDeployment: ours after adopting matching orphans and releasing ours
        that stopped matching."""
        selector = _selector(d)
        manager = ControllerRefManager(
            self.ctx.client,
            R.REPLICASETS,
            d,
            DEPLOYMENT_KIND,
            selector,
            recheck_deletion(self.ctx.client, R.DEPLOYMENTS, d, DEPLOYMENT_KIND),
        )
        return await manager.claim(controlled_or_orphaned(self.replica_sets, d))

    # -- writing -------------------------------------------------------------------------------

    async def _write_status(self, d: Obj) -> None:
        """UpdateStatus of the Deployment as it stands in `d` (status and, as upstream's status
        strategy allows, annotations)."""
        meta = d["metadata"]
        namespace, name = meta.get("namespace"), str(meta["name"])
        result = await self.ctx.client.request("PUT", R.DEPLOYMENTS.url(namespace, name, "status"), body=d)
        meta["resourceVersion"] = result["metadata"]["resourceVersion"]
        want = dict(meta.get("annotations") or {})
        got = dict((result.get("metadata") or {}).get("annotations") or {})
        if want != got:
            # This server's status endpoint keeps the stored annotations (upstream's Deployment
            # status strategy resets only spec and labels): write the revision one directly.
            patch_annotations: dict[str, str | None] = {k: v for k, v in want.items() if got.get(k) != v}
            patch_annotations.update({k: None for k in got if k not in want})
            patched = await self.ctx.client.patch(
                R.DEPLOYMENTS,
                name,
                {"metadata": {"annotations": patch_annotations, "resourceVersion": meta["resourceVersion"]}},
                namespace,
            )
            meta["resourceVersion"] = patched["metadata"]["resourceVersion"]

    async def _update_rs(self, rs: Obj) -> Obj:
        meta = rs["metadata"]
        result: Obj = await self.ctx.client.request(
            "PUT", R.REPLICASETS.url(meta.get("namespace"), str(meta["name"])), body=rs
        )
        return result

    async def _scale(self, step: ScaleStep, d: Obj) -> tuple[bool, Obj]:
        """scaleReplicaSet: write the size and the desired/max-replicas annotations when either
        is stale; a size change is announced as a ScalingReplicaSet event."""
        rs = step.rs
        desired = du.replicas(d)
        maximum = desired + du.max_surge(d)
        size_changes = du.replicas(rs) != step.size
        if not size_changes and not du.replicas_annotations_need_update(rs, desired, maximum):
            return False, rs
        previous = du.replicas(rs)
        body = copy.deepcopy(rs)
        body.setdefault("spec", {})["replicas"] = step.size
        du.set_replicas_annotations(body, desired, maximum)
        updated = await self._update_rs(body)
        if size_changes:
            self.ctx.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {step.operation} replica set {du.name_of(rs)} from {previous} to {step.size}",
            )
        return size_changes, updated

    # -- new and old ReplicaSets -----------------------------------------------------------------

    async def _all_replica_sets(
        self, d: Obj, rs_list: list[Obj], create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (new ReplicaSet or None, all old ReplicaSets)."""
        _, old = du.find_old_replica_sets(d, rs_list)
        new = await self._new_replica_set(d, rs_list, old, create)
        return new, old

    async def _new_replica_set(
        self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], create: bool
    ) -> Obj | None:
        existing = du.find_new_replica_set(d, rs_list)
        new_revision = str(du.max_revision(old_rss) + 1)
        spec = d.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.ctx.clock.now()
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            annotations_updated = du.set_new_replica_set_annotations(d, rs_copy, new_revision, True)
            if (
                annotations_updated
                or int((rs_copy.get("spec") or {}).get("minReadySeconds") or 0) != min_ready
            ):
                rs_spec = rs_copy.setdefault("spec", {})
                if min_ready:
                    rs_spec["minReadySeconds"] = min_ready
                else:
                    rs_spec.pop("minReadySeconds", None)
                updated = await self._update_rs(rs_copy)
                # Later reads in this sync see our write, not the cache's older copy.
                rs_list[:] = [updated if du.uid_of(r) == du.uid_of(updated) else r for r in rs_list]
                return updated
            needs_update = du.set_deployment_revision(
                d, du.annotations_of(rs_copy).get(du.REVISION_ANNOTATION, "")
            )
            status = d.setdefault("status", {})
            if du.has_progress_deadline(d) and status_condition(status, du.PROGRESSING) is None:
                msg = f'Found new replica set "{du.name_of(rs_copy)}"'
                du.set_condition(
                    status, du.new_condition(du.PROGRESSING, "True", du.FOUND_NEW_RS_REASON, msg, now)
                )
                needs_update = True
            if needs_update:
                await self._write_status(d)
            return rs_copy
        if not create:
            return None
        return await self._create_new_replica_set(d, rs_list, old_rss, new_revision)

    async def _create_new_replica_set(
        self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], new_revision: str
    ) -> Obj:
        meta = d["metadata"]
        namespace = meta.get("namespace")
        spec = d.get("spec") or {}
        status = d.setdefault("status", {})
        template = copy.deepcopy(dict(du.template_of(d)))
        collision_count = status.get("collisionCount")
        pod_hash = du.compute_hash(template, None if collision_count is None else int(collision_count))
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {
            **(template_meta.get("labels") or {}),
            du.DEFAULT_UNIQUE_LABEL_KEY: pod_hash,
        }
        selector = copy.deepcopy(dict(spec.get("selector") or {}))
        selector["matchLabels"] = {
            **(selector.get("matchLabels") or {}),
            du.DEFAULT_UNIQUE_LABEL_KEY: pod_hash,
        }
        rs_name = f"{meta['name']}-{pod_hash}"
        rs_spec: Obj = {"replicas": 0, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = int(spec["minReadySeconds"])
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "ownerReferences": [owner_reference(d, DEPLOYMENT_KIND)],
                "labels": dict(template_meta["labels"]),
            },
            "spec": rs_spec,
        }
        count = du.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        rs_spec["replicas"] = count
        du.set_new_replica_set_annotations(d, new_rs, new_revision, False)
        now = self.ctx.clock.now()
        already_exists = False
        try:
            created = await self.ctx.client.create(R.REPLICASETS, new_rs, namespace)
        except errors.AlreadyExists:
            already_exists = True
            found = self.replica_sets.get(f"{namespace}/{rs_name}") or await self.ctx.client.get(
                R.REPLICASETS, rs_name, namespace
            )
            ref = controller_of(found)
            if (
                ref is not None
                and ref.get("uid") == meta.get("uid")
                and du.equal_ignore_hash(du.template_of(d), du.template_of(found))
            ):
                created = found
            else:
                # A ReplicaSet of that name with another template: a hash collision. Bump the
                # count so the next sync hashes differently.
                status["collisionCount"] = int(collision_count or 0) + 1
                await self._write_status(d)
                self.log.info(
                    "hash collision for deployment %s/%s: collisionCount %s -> %s",
                    namespace,
                    meta["name"],
                    collision_count,
                    status["collisionCount"],
                )
                raise
        except errors.StatusError as exc:
            if namespace_terminating(exc):
                raise
            msg = f'Failed to create new replica set "{rs_name}": {exc}'
            if du.has_progress_deadline(d):
                du.set_condition(
                    status, du.new_condition(du.PROGRESSING, "False", du.FAILED_RS_CREATE_REASON, msg, now)
                )
                with contextlib.suppress(errors.StatusError):  # the failure above is the one to report
                    await self._write_status(d)
            self.ctx.recorder.event(d, "Warning", du.FAILED_RS_CREATE_REASON, msg)
            raise
        rs_list.append(created)
        if not already_exists and count > 0:
            self.ctx.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {du.name_of(created)} from 0 to {count}",
            )
        needs_update = du.set_deployment_revision(d, new_revision)
        if not already_exists and du.has_progress_deadline(d):
            msg = f'Created new replica set "{du.name_of(created)}"'
            du.set_condition(
                status, du.new_condition(du.PROGRESSING, "True", du.NEW_REPLICA_SET_REASON, msg, now)
            )
            needs_update = True
        if needs_update:
            await self._write_status(d)
        return created

    # -- status ----------------------------------------------------------------------------------

    async def _sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        status = du.calculate_status(all_rss, new_rs, d, self.ctx.clock.now())
        if du.status_equal(d.get("status"), status):
            return
        d["status"] = status
        await self._write_status(d)

    async def _sync_rollout_status(
        self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj
    ) -> float | None:
        now = self.ctx.clock.now()
        status = rollout_status(all_rss, new_rs, d, now)
        if du.status_equal(d.get("status"), status):
            after = progress_requeue_after(d, status, now)
            if after is None:
                return None
            return after if after > 0 else _IMMINENT_DEADLINE_RECHECK
        d["status"] = status
        await self._write_status(d)
        return None

    async def _cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the old ReplicaSets beyond revisionHistoryLimit."""
        for rs in cleanup_candidates(d, old_rss):
            meta = rs["metadata"]
            try:
                await self.ctx.client.delete(R.REPLICASETS, str(meta["name"]), meta.get("namespace"))
            except errors.NotFound:
                continue

    # -- the sync --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.get(key)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        d.setdefault("apiVersion", DEPLOYMENT_KIND.api_version)
        d.setdefault("kind", DEPLOYMENT_KIND.kind)
        if _selects_everything(d):
            self.ctx.recorder.event(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            status = d.setdefault("status", {})
            generation = int(d["metadata"].get("generation") or 0)
            if int(status.get("observedGeneration") or 0) < generation:
                status["observedGeneration"] = generation
                await self._write_status(d)
            return None
        try:
            _selector(d)
        except errors.StatusError as exc:
            self.log.warning("deployment %s has an invalid selector: %s", key, exc)
            return None
        rs_list = await self._claim_replica_sets(d)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, False)
            await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)
            return None
        paused_status = paused_condition_update(d, self.ctx.clock.now())
        if paused_status is not None:
            d["status"] = paused_status
            await self._write_status(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync(d, rs_list)
            return None
        if _rollback_to(d) is not None:
            await self._rollback(d, rs_list)
            return None
        if await self._is_scaling_event(d, rs_list):
            await self._sync(d, rs_list)
            return None
        strategy = ((d.get("spec") or {}).get("strategy") or {}).get("type")
        if strategy == "Recreate":
            return await self._rollout_recreate(d, rs_list)
        if strategy == "RollingUpdate":
            return await self._rollout_rolling(d, rs_list)
        raise errors.BadRequest(message=f"unexpected deployment strategy type: {strategy}")

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, False)
        for rs in du.filter_active([*old_rss, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != du.replicas(d):
                return True
        return False

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling events and paused Deployments: resize proportionally, never roll out."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, False)
        for step in proportional_scale_steps(d, new_rs, old_rss):
            await self._scale(step, d)
        if (d.get("spec") or {}).get("paused") and _rollback_to(d) is None:
            await self._cleanup(old_rss, d)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, True)
        if new_rs is None:  # pragma: no cover - creation either returns one or raises
            return None
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        step = rolling_new_rs_step(all_rss, new_rs, d)
        if step is not None:
            scaled, _ = await self._scale(step, d)
            if scaled:
                return await self._sync_rollout_status(all_rss, new_rs, d)
        scaled_down = False
        for old_step in rolling_old_rs_steps(all_rss, du.filter_active(old_rss), new_rs, d):
            scaled, _ = await self._scale(old_step, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        return await self._sync_rollout_status(all_rss, new_rs, d)

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> float | None:
        # No new ReplicaSet yet: scale down before scaling up.
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        scaled_down = False
        for step in recreate_scale_down_steps(old_rss):
            scaled, _ = await self._scale(step, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if old_pods_running(new_rs, old_rss, self._pods_of(d, rs_list)):
            return await self._sync_rollout_status(all_rss, new_rs, d)
        if new_rs is None:
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, True)
            all_rss = [*old_rss, new_rs]
        if new_rs is not None and du.replicas(new_rs) != du.replicas(d):
            current = du.replicas(new_rs)
            operation = "up" if current < du.replicas(d) else "down"
            await self._scale(ScaleStep(new_rs, du.replicas(d), operation), d)
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        return await self._sync_rollout_status(all_rss, new_rs, d)

    async def _rollback(self, d: Obj, rs_list: list[Obj]) -> None:
        """The deprecated server-side rollback (`deprecated.deployment.rollback.to`); kubectl
        itself rolls back by patching the template, which needs nothing here."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, True)
        all_rss = [*old_rss, *([new_rs] if new_rs is not None else [])]
        target = _rollback_to(d) or 0
        if target == 0:
            target = du.last_revision(all_rss)
            if target == 0:
                self.ctx.recorder.event(
                    d, "Warning", du.ROLLBACK_REVISION_NOT_FOUND, "Unable to find last revision."
                )
                await self._clear_rollback_to(d)
                return
        for rs in all_rss:
            try:
                rs_revision = du.revision(rs)
            except ValueError:
                continue
            if rs_revision != target:
                continue
            if not du.equal_ignore_hash(du.template_of(d), du.template_of(rs)):
                du.set_from_replica_set_template(d, du.template_of(rs))
                # The Deployment takes the annotations of the revision it returns to (change-cause).
                du.set_deployment_annotations_to(d, rs)
                await self._clear_rollback_to(d)
                self.ctx.recorder.event(
                    d,
                    "Normal",
                    du.ROLLBACK_DONE,
                    f'Rolled back deployment "{du.name_of(d)}" to revision {target}',
                )
            else:
                self.ctx.recorder.event(
                    d,
                    "Warning",
                    du.ROLLBACK_TEMPLATE_UNCHANGED,
                    f'The rollback revision contains the same template as current deployment "{du.name_of(d)}"',
                )
                await self._clear_rollback_to(d)
            return
        self.ctx.recorder.event(
            d, "Warning", du.ROLLBACK_REVISION_NOT_FOUND, "Unable to find the revision to rollback to."
        )
        await self._clear_rollback_to(d)

    async def _clear_rollback_to(self, d: Obj) -> None:
        annotations = d["metadata"].get("annotations") or {}
        annotations.pop(du.DEPRECATED_ROLLBACK_TO, None)
        meta = d["metadata"]
        await self.ctx.client.request(
            "PUT", R.DEPLOYMENTS.url(meta.get("namespace"), str(meta["name"])), body=d
        )
