"""DaemonSet controller: one pod per eligible node (upstream pkg/controller/daemon).

Each sync: claim the DaemonSet's pods and ControllerRevisions, find or snapshot the revision of the
current template (its hash labels the pods `controller-revision-hash`), then

1. manage: create a pod on every eligible node that has none (pinned to it with a required node
   affinity on metadata.name, for the default scheduler to bind), delete pods on nodes that must
   no longer run one, replace failed pods with a per-node back-off;
2. roll: with RollingUpdate, replace out-of-date pods within maxUnavailable / maxSurge (OnDelete
   waits for users to delete pods);
3. prune revisions beyond revisionHistoryLimit that no pod still uses;
4. write status.

Expectations make it safe against its own informer lagging: after asking for pods it does not
manage the DaemonSet again until the informer has shown each creation and deletion (status is
still refreshed, without raising observedGeneration).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.client import ResourcePath
from controlplane.controllers import history
from controlplane.controllers.controller_ref import (
    ControllerRefManager,
    OwnerKind,
    owner_reference,
    owners_to_sync_on_update,
    recheck_deletion,
    resolve_controller_ref,
    selecting_owners,
)
from controlplane.controllers.daemonset_placement import pin_to_node, should_run_on_node
from controlplane.controllers.daemonset_rollout import (
    compute_status,
    create_pod_template,
    daemon_pods_by_node,
    plan_manage,
    plan_rolling_update,
    template_generation,
)
from controlplane.controllers.daemonset_tracking import FailedPodBackoff
from controlplane.controllers.expectations import ControllerExpectations
from controlplane.controllers.pod_control import create_pod, delete_pod
from controlplane.controllers.podutil import controller_of, is_pod_ready
from controlplane.controllers.runtime import Controller, R, key_of
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["BACKOFF_GC_INTERVAL", "BURST_REPLICAS", "DaemonSetController"]

Obj = dict[str, Any]

# An upper bound on creations or deletions per sync (registry DoS protection, as upstream).
BURST_REPLICAS = 250
SLOW_START_INITIAL_BATCH = 1
BACKOFF_GC_INTERVAL = 60.0
DAEMONSET_KIND = OwnerKind("apps/v1", "DaemonSet")
# DaemonSetStatus fields upstream serialises with omitempty.
_OMIT_EMPTY = ("observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _selector(ds: Mapping[str, Any]) -> LabelSelector:
    return label_selector_from_dict((ds.get("spec") or {}).get("selector"))


def _selects_everything(selector: Any) -> bool:
    return (
        isinstance(selector, Mapping)
        and not selector.get("matchLabels")
        and not selector.get("matchExpressions")
    )


def _ignorable_node_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """shouldIgnoreNodeUpdate: only heartbeats moved (conditions with the same true types)."""

    def true_types(node: Mapping[str, Any]) -> set[str]:
        return {
            str(c.get("type"))
            for c in (node.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"
        }

    if true_types(old) != true_types(new):
        return False

    def stripped(node: Mapping[str, Any]) -> Obj:
        # Shallow: compared, never modified.
        meta = {
            k: v
            for k, v in (node.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields")
        }
        status = {k: v for k, v in (node.get("status") or {}).items() if k != "conditions"}
        return {**node, "metadata": meta, "status": status}

    return stripped(old) == stripped(new)


class DaemonSetController(Controller):
    name = "daemonset"
    event_source = "daemonset-controller"
    workers = 2

    def setup(self) -> None:
        informers = self.ctx.informers
        self.daemonsets = informers.informer(R.DAEMONSETS)
        self.revisions = informers.informer(R.CONTROLLERREVISIONS)
        self.pods = informers.informer(R.PODS)
        self.nodes = informers.informer(R.NODES)
        self.expectations = ControllerExpectations(self.ctx.clock)
        self.failed_pods_backoff = FailedPodBackoff(
            float(self.ctx.config.extra.get("daemonset_failed_pod_backoff", 1.0)),
            float(self.ctx.config.extra.get("daemonset_failed_pod_backoff_max", 900.0)),
        )
        self.burst_replicas = int(self.ctx.config.extra.get("daemonset_burst_replicas", BURST_REPLICAS))
        self.daemonsets.add_handler(self._on_daemonset)
        self.revisions.add_handler(self._on_revision)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    async def run_extra(self, stop: asyncio.Event) -> None:
        """Drop back-off entries of nodes whose pods stopped failing long ago."""
        while not stop.is_set():
            sleeper = asyncio.ensure_future(self.ctx.clock.sleep(BACKOFF_GC_INTERVAL))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                stopper.cancel()
            self.failed_pods_backoff.gc(self.ctx.clock.monotonic())

    # -- event handlers ----------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Mapping[str, Any] | None) -> Obj | None:
        return resolve_controller_ref(self.daemonsets, namespace, ref, DAEMONSET_KIND.kind)

    def _selecting(self, obj: Mapping[str, Any]) -> list[Obj]:
        """GetPodDaemonSets / GetHistoryDaemonSets: DaemonSets of the namespace selecting obj."""
        return selecting_owners(self.daemonsets, obj, _selector)

    def _on_daemonset(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self.enqueue_obj(new if new is not None else old)

    def _on_revision(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" or (new is not None and _meta(new).get("deletionTimestamp")):
            gone = new if new is not None else old
            if gone is not None:
                self.enqueue_obj(self._resolve(str(_meta(gone).get("namespace", "")), controller_of(gone)))
            return
        if new is None:
            return
        if event == "ADDED":
            if controller_of(new) is None:
                for ds in self._selecting(new):
                    self.enqueue_obj(ds)
            return
        if old is None or _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        for ds in owners_to_sync_on_update(self._resolve, self._selecting, old, new).owners:
            self.enqueue_obj(ds)

    def _pod_gone(self, pod: Obj) -> None:
        ds = self._resolve(str(_meta(pod).get("namespace", "")), controller_of(pod))
        if ds is not None:
            self.expectations.deletion_observed(key_of(ds))
            self.enqueue_obj(ds)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED":
            gone = old if old is not None else new
            if gone is not None:
                self._pod_gone(gone)
            return
        if new is None:
            return
        meta = _meta(new)
        namespace = str(meta.get("namespace", ""))
        if event == "ADDED":
            if meta.get("deletionTimestamp"):
                # Seen for the first time already being deleted (a restart): not a creation.
                self._pod_gone(new)
                return
            ref = controller_of(new)
            if ref is not None:
                ds = self._resolve(namespace, ref)
                if ds is not None:
                    self.expectations.creation_observed(key_of(ds))
                    self.enqueue_obj(ds)
                return
            for ds in self._selecting(new):
                self.enqueue_obj(ds)
            return
        if old is None or _meta(old).get("resourceVersion") == meta.get("resourceVersion"):
            return
        if meta.get("deletionTimestamp"):
            # Graceful deletion started: replace the pod now, not when the kubelet is done.
            self._pod_gone(new)
            return
        targets = owners_to_sync_on_update(self._resolve, self._selecting, old, new)
        for ds in targets.owners:
            self.enqueue_obj(ds)
        controller = targets.controller
        if controller is not None:
            min_ready = int((controller.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
                self.enqueue_after(key_of(controller), min_ready + 1)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "ADDED" and new is not None:
            for ds in self.daemonsets.list():
                if should_run_on_node(new, ds)[0]:
                    self.enqueue_obj(ds)
            return
        if event == "MODIFIED" and old is not None and new is not None:
            if _ignorable_node_update(old, new):
                return
            for ds in self.daemonsets.list():
                if should_run_on_node(old, ds) != should_run_on_node(new, ds):
                    self.enqueue_obj(ds)
            return
        if event == "DELETED":
            # Upstream leaves this to the next resync; pods pinned to a vanished node that never
            # got scheduled are ours to delete, and the desired count drops, so look now.
            for ds in self.daemonsets.list():
                self.enqueue_obj(ds)

    # -- reading -----------------------------------------------------------------------------

    def _owner_ref(self, ds: Mapping[str, Any]) -> Obj:
        return owner_reference(ds, DAEMONSET_KIND)

    def _ref_manager(self, ds: Obj, rp: ResourcePath) -> ControllerRefManager:
        """A claimer of `rp` objects for ds, adopting only after a live read still shows it alive
        (RecheckDeletionTimestamp)."""
        return ControllerRefManager(
            self.ctx.client,
            rp,
            ds,
            DAEMONSET_KIND,
            _selector(ds),
            recheck_deletion(self.ctx.client, R.DAEMONSETS, ds, DAEMONSET_KIND),
        )

    async def _daemon_pods(self, ds: Obj) -> list[Obj]:
        """getDaemonPods: the namespace's pods, adopting orphans and releasing strays."""
        pods = self.pods.list(str(_meta(ds).get("namespace") or ""))
        return await self._ref_manager(ds, R.PODS).claim(pods)

    async def _pods_by_node(self, ds: Obj, include_deleted_terminal: bool = False) -> dict[str, list[Any]]:
        return daemon_pods_by_node(await self._daemon_pods(ds), include_deleted_terminal)

    # -- the sync ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.delete(key)
            return None
        nodes = self.nodes.list()
        if _selects_everything((ds.get("spec") or {}).get("selector")):
            self.ctx.recorder.event(
                ds,
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return None
        if _meta(ds).get("deletionTimestamp"):
            # Its revisions may already be gone or orphaned: no status can be trusted now.
            return None
        current, old = await self._construct_history(ds)
        hash_ = str(
            ((current.get("metadata") or {}).get("labels") or {}).get(history.REVISION_HASH_LABEL, "")
        )
        if not self.expectations.satisfied(key):
            # Only status; observedGeneration stays, since this generation was not acted on.
            return await self._update_status(ds, nodes, hash_, update_observed_generation=False)
        failure: errors.StatusError | None = None
        requeue: float | None = None
        try:
            requeue = await self._update_daemonset(ds, nodes, hash_, key, old)
        except errors.StatusError as exc:
            failure = exc
        status_requeue = await self._update_status(ds, nodes, hash_, update_observed_generation=True)
        if failure is not None:
            raise failure
        delays = [d for d in (requeue, status_requeue) if d is not None]
        return min(delays) if delays else None

    async def _update_daemonset(
        self, ds: Obj, nodes: list[Obj], hash_: str, key: str, old: list[Obj]
    ) -> float | None:
        requeue = await self._manage(ds, nodes, hash_)
        if self.expectations.satisfied(key):
            strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type")
            if strategy == "RollingUpdate":
                await self._rolling_update(ds, nodes, hash_)
        await self._cleanup_history(ds, old)
        return requeue

    async def _manage(self, ds: Obj, nodes: list[Obj], hash_: str) -> float | None:
        by_node = await self._pods_by_node(ds)
        plan = plan_manage(
            ds,
            nodes,
            by_node,
            hash_,
            self.failed_pods_backoff,
            self.ctx.clock.monotonic(),
            self.ctx.clock.now(),
        )
        for type_, reason, message in plan.events:
            self.ctx.recorder.event(ds, type_, reason, message)
        await self._sync_nodes(ds, plan.delete, plan.create_on, hash_)
        return plan.requeue_after

    async def _rolling_update(self, ds: Obj, nodes: list[Obj], hash_: str) -> None:
        by_node = await self._pods_by_node(ds)
        plan = plan_rolling_update(ds, nodes, by_node, hash_, self.ctx.clock.now())
        await self._sync_nodes(ds, plan.delete, plan.create_on, hash_)

    async def _sync_nodes(self, ds: Obj, to_delete: list[str], create_on: list[str], hash_: str) -> None:
        """syncNodes: set expectations first, create in slow-start batches (1, 2, 4, ...; the
        rest is skipped after a failing batch), then delete."""
        key = key_of(ds)
        create_count = min(len(create_on), self.burst_replicas)
        delete_count = min(len(to_delete), self.burst_replicas)
        self.expectations.set(key, create_count, delete_count)
        failures: list[errors.StatusError] = []
        template = create_pod_template(
            (ds.get("spec") or {}).get("template") or {}, template_generation(ds), hash_
        )
        pos = 0
        batch = min(create_count, SLOW_START_INITIAL_BATCH)
        while pos < create_count:
            before = len(failures)
            results = await asyncio.gather(
                *(self._create_pod(ds, template, node) for node in create_on[pos : pos + batch]),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    if namespace_terminating(result):
                        continue
                    self.expectations.creation_observed(key)
                    if not isinstance(result, errors.StatusError):
                        raise result
                    failures.append(result)
            pos += batch
            skipped = create_count - pos
            if len(failures) > before and skipped > 0:
                # The rest would likely fail alike; the next sync retries them.
                self.expectations.lower(key, skipped, 0)
                break
            batch = min(2 * batch, create_count - pos)
        results = await asyncio.gather(
            *(self._delete_pod(ds, name) for name in to_delete[:delete_count]), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self.expectations.deletion_observed(key)
                if isinstance(result, errors.NotFound):
                    continue
                if not isinstance(result, errors.StatusError):
                    raise result
                failures.append(result)
        if failures:
            raise failures[0]

    async def _create_pod(self, ds: Obj, template: Obj, node_name: str) -> None:
        meta = _meta(ds)
        tmpl_meta = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        spec["affinity"] = pin_to_node(spec.get("affinity"), node_name)
        pod_meta: Obj = {
            "generateName": f"{meta.get('name')}-",
            "labels": dict(tmpl_meta.get("labels") or {}),
            "ownerReferences": [self._owner_ref(ds)],
        }
        if tmpl_meta.get("annotations"):
            pod_meta["annotations"] = dict(tmpl_meta["annotations"])
        if tmpl_meta.get("finalizers"):
            pod_meta["finalizers"] = list(tmpl_meta["finalizers"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
        await create_pod(self.ctx.client, self.ctx.recorder, ds, pod, str(meta.get("namespace")))

    async def _delete_pod(self, ds: Obj, name: str) -> None:
        await delete_pod(self.ctx.client, self.ctx.recorder, ds, name, str(_meta(ds).get("namespace")))

    # -- revisions ---------------------------------------------------------------------------

    async def _construct_history(self, ds: Obj) -> tuple[Obj, list[Obj]]:
        """constructHistory: (the revision of the current template, the older ones)."""
        meta = _meta(ds)
        revisions = await self._ref_manager(ds, R.CONTROLLERREVISIONS).claim(
            self.revisions.list(str(meta.get("namespace") or ""))
        )
        patch = history.template_patch(ds)
        current: list[Obj] = []
        old: list[Obj] = []
        for found in revisions:
            rev = found
            if history.REVISION_HASH_LABEL not in ((rev.get("metadata") or {}).get("labels") or {}):
                # Revisions from before the label existed: use the name, not a recomputed hash,
                # so a hash collision cannot mislabel it.
                relabelled = copy.deepcopy(rev)
                rev_name = relabelled["metadata"]["name"]
                relabelled["metadata"].setdefault("labels", {})[history.REVISION_HASH_LABEL] = rev_name
                rev = await self.ctx.client.request(
                    "PUT", R.CONTROLLERREVISIONS.url(meta.get("namespace"), rev_name), body=relabelled
                )
            (current if rev.get("data") == patch else old).append(rev)
        wanted_revision = history.max_revision(old) + 1
        if not current:
            return await self._snapshot(ds, wanted_revision), old
        keep = await self._dedup_current(ds, current)
        if history.revision_number(keep) < wanted_revision:
            keep = await history.update_revision_number(self.ctx.client, keep, wanted_revision)
        return keep, old

    async def _snapshot(self, ds: Obj, revision: int) -> Obj:
        meta = _meta(ds)
        namespace = str(meta.get("namespace"))
        template = (ds.get("spec") or {}).get("template") or {}
        collision_count = (ds.get("status") or {}).get("collisionCount")
        hash_ = history.compute_hash(template, collision_count)
        name = f"{meta.get('name')}-{hash_}"
        rev_meta: Obj = {
            "name": name,
            "namespace": namespace,
            "labels": {
                **((template.get("metadata") or {}).get("labels") or {}),
                history.REVISION_HASH_LABEL: hash_,
            },
            "ownerReferences": [self._owner_ref(ds)],
        }
        if meta.get("annotations"):
            rev_meta["annotations"] = dict(meta["annotations"])
        body = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": rev_meta,
            "data": history.template_patch(ds),
            "revision": revision,
        }
        try:
            return await self.ctx.client.create(R.CONTROLLERREVISIONS, body, namespace)
        except errors.AlreadyExists:
            existing = await self.ctx.client.get(R.CONTROLLERREVISIONS, name, namespace)
            if existing.get("data") == body["data"]:
                return existing
            # A different template hashed to this name: bump collisionCount and try again next sync.
            fresh = await self.ctx.client.get(R.DAEMONSETS, str(meta.get("name")), namespace)
            fresh_count = (fresh.get("status") or {}).get("collisionCount")
            if fresh_count != collision_count:
                raise errors.Conflict(
                    message=f"found a stale collision count ({collision_count}, expected {fresh_count}) "
                    f"of DaemonSet {meta.get('name')!r} while processing; will retry until it is updated"
                ) from None
            fresh.setdefault("status", {})["collisionCount"] = int(fresh_count or 0) + 1
            await self.ctx.client.request(
                "PUT", R.DAEMONSETS.url(namespace, str(meta.get("name")), "status"), body=fresh
            )
            raise

    async def _dedup_current(self, ds: Obj, current: list[Obj]) -> Obj:
        """dedupCurHistories: keep the newest of several revisions of the current template,
        moving pods onto its hash before deleting the others."""
        if len(current) == 1:
            return current[0]
        keep = current[0]
        for rev in current:
            if history.revision_number(rev) >= history.revision_number(keep):
                keep = rev
        keep_hash = ((keep.get("metadata") or {}).get("labels") or {}).get(history.REVISION_HASH_LABEL)
        namespace = str(_meta(ds).get("namespace"))
        for rev in current:
            if rev is keep:
                continue
            for pod in await self._daemon_pods(ds):
                if ((pod.get("metadata") or {}).get("labels") or {}).get(
                    history.REVISION_HASH_LABEL
                ) != keep_hash:
                    patch = {"metadata": {"labels": {history.REVISION_HASH_LABEL: keep_hash}}}
                    await self.ctx.client.patch(R.PODS, str(_meta(pod).get("name")), patch, namespace)
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(R.CONTROLLERREVISIONS, str(_meta(rev).get("name")), namespace)
        return keep

    async def _cleanup_history(self, ds: Obj, old: list[Obj]) -> None:
        by_node = await self._pods_by_node(ds, include_deleted_terminal=True)
        live = {
            str(labels[history.REVISION_HASH_LABEL])
            for pods in by_node.values()
            for pod in pods
            if history.REVISION_HASH_LABEL in (labels := ((pod.get("metadata") or {}).get("labels") or {}))
        }
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        namespace = str(_meta(ds).get("namespace"))
        for rev in history.prune_old_history(old, live, 10 if limit is None else int(limit)):
            with contextlib.suppress(errors.NotFound):
                await self.ctx.client.delete(R.CONTROLLERREVISIONS, str(_meta(rev).get("name")), namespace)

    # -- status ------------------------------------------------------------------------------

    async def _update_status(
        self, ds: Obj, nodes: list[Obj], hash_: str, *, update_observed_generation: bool
    ) -> float | None:
        by_node = await self._pods_by_node(ds)
        counts = compute_status(ds, nodes, by_node, hash_, self.ctx.clock.now())
        status = ds.get("status") or {}
        generation = int(_meta(ds).get("generation") or 0)
        unchanged = all(int(status.get(k) or 0) == v for k, v in counts.items())
        if not (unchanged and int(status.get("observedGeneration") or 0) >= generation):
            await self._store_status(ds, counts, update_observed_generation)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and counts["numberReady"] != counts["numberAvailable"]:
            # A last line of defence against clock skew, as upstream.
            return float(min_ready)
        return None

    async def _store_status(self, ds: Obj, counts: dict[str, int], update_observed_generation: bool) -> None:
        meta = _meta(ds)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        target = copy.deepcopy(ds)
        for attempt in range(2):
            status = target.setdefault("status", {})
            if update_observed_generation:
                status["observedGeneration"] = int(meta.get("generation") or 0)
            status.update(counts)
            for key in _OMIT_EMPTY:
                if status.get(key) == 0:
                    status.pop(key)
            target.setdefault("apiVersion", DAEMONSET_KIND.api_version)
            target.setdefault("kind", DAEMONSET_KIND.kind)
            try:
                await self.ctx.client.request("PUT", R.DAEMONSETS.url(namespace, name, "status"), body=target)
                return
            except errors.Conflict:
                if attempt == 1:
                    raise
                target = await self.ctx.client.get(R.DAEMONSETS, name, namespace)
