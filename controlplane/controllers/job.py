"""Job controller (upstream pkg/controller/job): runs a Job's pods to completion.

Pods are created from the template with the `batch.kubernetes.io/job-tracking` finalizer, so a
finished pod cannot vanish before it is counted: its UID goes into
`status.uncountedTerminatedPods`, the finalizer is removed, and only then does the pod move into
`succeeded`/`failed` (see job_status.py). Creations and deletions in flight are remembered as
expectations, so a lagging informer never makes the controller create pods twice.

Supported: completions and parallelism, NonIndexed and Indexed completion (index annotation and
label, hostname `<job>-<index>`, `completedIndexes`), backoffLimit with exponential pod
re-creation backoff, restartPolicy OnFailure restarts, activeDeadlineSeconds, podFailurePolicy
(FailJob, Ignore, Count on exit codes and pod conditions), successPolicy, suspend/resume,
podReplacementPolicy, the interim SuccessCriteriaMet / FailureTarget conditions (1.31+), orphan
adoption and release, spec.managedBy. Not supported: backoffLimitPerIndex / maxFailedIndexes
(a FailIndex rule is passed over as upstream does with that feature off).
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from controlplane.api import errors, selectors
from controlplane.controllers.controller_ref import OwnerKind, adopt, owner_reference, release
from controlplane.controllers.expectations import ControllerExpectations
from controlplane.controllers.job_expectations import UIDTrackingExpectations
from controlplane.controllers.job_indexes import (
    COMPLETION_INDEX_ANNOTATION,
    UNKNOWN_INDEX,
    Intervals,
    add_completion_index_env,
    completion_index,
    first_pending_indexes,
    format_intervals,
    has_index,
    parse_intervals,
    pod_generate_name_with_index,
    split_duplicated_index_pods,
    total,
    with_indexes,
)
from controlplane.controllers.job_pods import (
    TRACKING_FINALIZER,
    BackoffRecord,
    active_pods_sort_key,
    has_tracking_finalizer,
    is_indexed,
    is_pod_failed,
    is_terminating,
    new_backoff_record,
    only_replace_failed_pods,
    past_backoff_limit_on_failure,
    remaining_backoff,
)
from controlplane.controllers.job_policy import match_pod_failure_policy, match_success_policy
from controlplane.controllers.job_status import (
    COMPLETIONS_REACHED,
    clean_uncounted,
    ensure_condition_status,
    find_condition,
    is_job_finished,
    managed_by_external,
    new_condition,
    status_for_write,
    want_active,
)
from controlplane.controllers.pod_control import create_pod, delete_pod
from controlplane.controllers.podutil import controller_of, is_pod_active, is_pod_ready, parse_time
from controlplane.controllers.runtime import Controller, R, key_of, rfc3339, split_key
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["JobController"]

Obj = dict[str, Any]

ORPHAN_POD_PREFIX = "orphan-pod:"
MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500
SLOW_START_INITIAL_BATCH_SIZE = 1
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JOB_KIND = OwnerKind("batch/v1", "Job")


@dataclass
class _Sync:
    """Everything one sync of one Job works on (upstream syncJobCtx)."""

    job: Obj
    pods: list[Obj]
    active_pods: list[Obj]
    ready: int
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    expected_rm_finalizers: set[str]
    terminating: int
    succeeded: int = 0
    failed: int = 0
    finished: dict[str, Any] | None = None
    prev_succeeded_indexes: Intervals = field(default_factory=list)
    succeeded_indexes: Intervals = field(default_factory=list)
    new_backoff: BackoffRecord = field(default_factory=BackoffRecord)


def _uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def _selector(job: Obj) -> selectors.LabelSelector:
    return selectors.label_selector_from_dict((job.get("spec") or {}).get("selector"))


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


class JobController(Controller):
    name = "job"
    event_source = "job-controller"
    workers = 5

    def setup(self) -> None:
        extra = self.ctx.config.extra
        self.batch_period = float(extra.get("job_sync_batch_period", 1.0))
        self.backoff_base = float(extra.get("job_pod_failure_backoff", 10.0))
        self.backoff_max = float(extra.get("job_pod_failure_backoff_max", 600.0))
        self.expectations = ControllerExpectations(self.ctx.clock)
        self.finalizer_expectations = UIDTrackingExpectations()
        self.backoff: dict[str, BackoffRecord] = {}
        self.jobs = self.ctx.informers.informer(R.JOBS)
        self.pods = self.ctx.informers.informer(R.PODS)
        self.jobs.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)

    # -- enqueueing ----------------------------------------------------------------------------

    def _enqueue_batched(self, job: Obj) -> None:
        # Pod events arrive in bursts; one sync a batch period later sees them all.
        if self.batch_period > 0:
            self.enqueue_after(key_of(job), self.batch_period)
        else:
            self.enqueue(key_of(job))

    def _enqueue_orphan(self, pod: Obj) -> None:
        self.enqueue(ORPHAN_POD_PREFIX + key_of(pod))

    def _resolve(self, namespace: str, ref: Any) -> Obj | None:
        if ref is None or ref.get("kind") != "Job":
            return None
        job = self.jobs.get(f"{namespace}/{ref.get('name')}")
        if job is None or _uid(job) != ref.get("uid"):
            return None
        return job

    def _jobs_selecting(self, pod: Obj) -> list[Obj]:
        labels = _labels(pod)
        found = []
        for job in self.jobs.list(str(pod["metadata"].get("namespace") or "")):
            try:
                if _selector(job).matches(labels):
                    found.append(job)
            except errors.BadRequest:
                continue
        return found

    # -- event handlers ------------------------------------------------------------------------

    def _on_job(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED":
            job = old if old is not None else new
            if job is not None:
                self.enqueue(key_of(job))
                self._cleanup_pod_finalizers(job)
            return
        if new is None:
            return
        if event == "ADDED" or old is None:
            self.enqueue(key_of(new))
            return
        if new["metadata"].get("generation") == old["metadata"].get("generation"):
            self._enqueue_batched(new)
        else:
            self.enqueue(key_of(new))
        if is_job_finished(new):
            # Backup: a finished Job must not leave finalizers behind on its pods.
            self._cleanup_pod_finalizers(new)
        start = parse_time((new.get("status") or {}).get("startTime"))
        deadline = (new.get("spec") or {}).get("activeDeadlineSeconds")
        old_deadline = (old.get("spec") or {}).get("activeDeadlineSeconds")
        if start is not None and deadline is not None and deadline != old_deadline:
            passed = (self.ctx.clock.now() - start).total_seconds()
            self.enqueue_after(key_of(new), int(deadline) - passed)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "ADDED" and new is not None:
            self._add_pod(new)
        elif event == "MODIFIED" and old is not None and new is not None:
            self._update_pod(old, new)
        elif event == "DELETED":
            pod = old if old is not None else new
            if pod is not None:
                self._delete_pod(pod, final=True)

    def _add_pod(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # A controller restart may find a pod already being deleted: not a creation.
            self._delete_pod(pod, final=False)
            return
        namespace = str(pod["metadata"].get("namespace") or "")
        ref = controller_of(pod)
        if ref is not None:
            job = self._resolve(namespace, ref)
            if job is None:
                return
            self.expectations.creation_observed(key_of(job))
            self._enqueue_batched(job)
            return
        if has_tracking_finalizer(pod):
            self._enqueue_orphan(pod)
        for job in self._jobs_selecting(pod):
            self._enqueue_batched(job)

    def _update_pod(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if cur["metadata"].get("deletionTimestamp"):
            # Graceful deletion: act on it now rather than when the kubelet finally removes it.
            self._delete_pod(cur, final=False)
            return
        namespace = str(cur["metadata"].get("namespace") or "")
        finalizer_removed = not has_tracking_finalizer(cur)
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            job = self._resolve(namespace, old_ref)
            if job is not None:
                if finalizer_removed:
                    self.finalizer_expectations.removal_observed(key_of(job), _uid(cur))
                self._enqueue_batched(job)
        if cur_ref is not None:
            job = self._resolve(namespace, cur_ref)
            if job is None:
                return
            if finalizer_removed:
                self.finalizer_expectations.removal_observed(key_of(job), _uid(cur))
            self._enqueue_batched(job)
            return
        if has_tracking_finalizer(cur):
            self._enqueue_orphan(cur)
        if ref_changed or _labels(cur) != _labels(old):
            for job in self._jobs_selecting(cur):
                self._enqueue_batched(job)

    def _delete_pod(self, pod: Obj, *, final: bool) -> None:
        namespace = str(pod["metadata"].get("namespace") or "")
        ref = controller_of(pod)
        has_finalizer = has_tracking_finalizer(pod)
        if ref is None:
            if has_finalizer:
                self._enqueue_orphan(pod)
            return
        job = self._resolve(namespace, ref)
        if job is None or is_job_finished(job):
            if has_finalizer:
                self._enqueue_orphan(pod)
            return
        key = key_of(job)
        self.expectations.deletion_observed(key)
        if final or not has_finalizer:
            self.finalizer_expectations.removal_observed(key, _uid(pod))
        self._enqueue_batched(job)

    def _cleanup_pod_finalizers(self, job: Obj) -> None:
        try:
            selector = _selector(job)
        except errors.BadRequest:
            return
        for pod in self.pods.list(str(job["metadata"].get("namespace") or "")):
            ref = controller_of(pod)
            if (
                ref is not None
                and ref.get("uid") == _uid(job)
                and has_tracking_finalizer(pod)
                and selector.matches(_labels(pod))
            ):
                self._enqueue_orphan(pod)

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(ORPHAN_POD_PREFIX):
            await self._sync_orphan_pod(key[len(ORPHAN_POD_PREFIX) :])
            return None
        await self._sync_job(key)
        return None

    async def _sync_orphan_pod(self, key: str) -> None:
        """Remove the tracking finalizer from a pod no unfinished Job of ours controls."""
        pod = self.pods.get(key)
        if pod is None:
            return
        ref = controller_of(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._resolve(str(pod["metadata"].get("namespace") or ""), ref)
            if job is not None and (managed_by_external(job) or not is_job_finished(job)):
                return
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> None:
        if not has_tracking_finalizer(pod):
            return
        meta = pod["metadata"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}
        try:
            await self.ctx.client.patch(
                R.PODS, meta["name"], patch, meta.get("namespace"), patch_type=STRATEGIC_MERGE_PATCH
            )
        except errors.NotFound:
            return

    async def _sync_job(self, key: str) -> None:
        shared = self.jobs.get(key)
        if shared is None:
            self.expectations.delete(key)
            self.finalizer_expectations.delete(key)
            self.backoff.pop(key, None)
            return
        if managed_by_external(shared):
            return
        if is_job_finished(shared):
            self.backoff.pop(key, None)
            return
        spec = shared.get("spec") or {}
        mode = spec.get("completionMode")
        if mode and mode not in ("NonIndexed", "Indexed"):
            self.ctx.recorder.event(
                shared,
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            )
            return
        job = copy.deepcopy(shared)
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        status = job.setdefault("status", {})
        ledger = status.get("uncountedTerminatedPods") or {}
        status["uncountedTerminatedPods"] = {
            "succeeded": list(ledger.get("succeeded") or []),
            "failed": list(ledger.get("failed") or []),
        }
        now = self.ctx.clock.now()
        # Read the expectations before the pods: a pod arriving in between defers the sync.
        satisfied = self.expectations.satisfied(key)
        pods = await self._get_pods_for_job(job)
        active_pods = [p for p in pods if is_pod_active(p)]
        sc = _Sync(
            job=job,
            pods=pods,
            active_pods=active_pods,
            ready=sum(1 for p in active_pods if is_pod_ready(p)),
            uncounted_succeeded=set(status["uncountedTerminatedPods"]["succeeded"]),
            uncounted_failed=set(status["uncountedTerminatedPods"]["failed"]),
            expected_rm_finalizers=self.finalizer_expectations.expected(key),
            terminating=sum(1 for p in pods if is_terminating(p)),
        )
        active = len(active_pods)
        new_succeeded, new_failed = self._new_finished_pods(sc)
        policy = spec.get("podFailurePolicy")
        counted_failed = sum(1 for p in new_failed if match_pod_failure_policy(policy, p).count_failed)
        sc.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(sc.uncounted_succeeded)
        sc.failed = int(status.get("failed") or 0) + counted_failed + len(sc.uncounted_failed)
        suspended = bool(spec.get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = rfc3339(now)
        sc.new_backoff = new_backoff_record(self.backoff.get(key), new_succeeded, new_failed)

        conditions = status.setdefault("conditions", [])
        criteria_met = find_condition(conditions, "SuccessCriteriaMet")
        if criteria_met is not None and criteria_met.get("status") == "True":
            sc.finished = criteria_met
        if sc.finished is None:
            failure_target = find_condition(conditions, "FailureTarget")
            fail_message = self._fail_job_message(job, pods)
            if failure_target is not None and failure_target.get("status") == "True":
                sc.finished = new_condition(
                    "Failed", "True", failure_target.get("reason", ""), failure_target.get("message", ""), now
                )
            elif fail_message is not None:
                # Recorded as FailureTarget first, before any finalizer lets a pod go.
                sc.finished = new_condition("FailureTarget", "True", "PodFailurePolicy", fail_message, now)
        if sc.finished is None:
            backoff_limit = _int_or(spec.get("backoffLimit"), 6)
            if sc.failed > backoff_limit or past_backoff_limit_on_failure(job, pods):
                sc.finished = new_condition(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now,
                )
            elif self._past_active_deadline(job):
                sc.finished = new_condition(
                    "FailureTarget",
                    "True",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    now,
                )
            elif spec.get("activeDeadlineSeconds") is not None and not suspended:
                start = parse_time(status.get("startTime")) or now
                remaining = int(spec["activeDeadlineSeconds"]) - (now - start).total_seconds()
                self.enqueue_after(key, remaining)

        if is_indexed(job):
            completions = int(spec.get("completions") or 0)
            sc.prev_succeeded_indexes = parse_intervals(
                str(status.get("completedIndexes") or ""), completions
            )
            sc.succeeded_indexes = with_indexes(
                sc.prev_succeeded_indexes,
                [
                    completion_index(p)
                    for p in pods
                    if (p.get("status") or {}).get("phase") == "Succeeded"
                    and completion_index(p) != UNKNOWN_INDEX
                    and completion_index(p) < completions
                    and has_tracking_finalizer(p)
                ],
            )
            sc.succeeded = total(sc.succeeded_indexes)
            if sc.finished is None:
                message, met = match_success_policy(
                    spec.get("successPolicy"), completions, sc.succeeded_indexes
                )
                if met:
                    sc.finished = new_condition("SuccessCriteriaMet", "True", "SuccessPolicy", message, now)

        suspend_changed = False
        manage_error: Exception | None = None
        if sc.finished is not None:
            deleted_ready, deleted, manage_error = await self._delete_active_pods(job, sc.active_pods)
            if deleted != active or not satisfied:
                # Not finished yet: finalizers to remove, or pods the cache has not shown us.
                sc.finished = None
            active -= deleted
            sc.terminating += deleted
            sc.ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, manage_error = await self._manage_job(key, sc)
                manage_called = True
            completions_spec = spec.get("completions")
            if completions_spec is None:
                # Without completions, any success ends the Job once nothing runs any more.
                complete = sc.succeeded > 0 and active == 0
            else:
                complete = sc.succeeded >= int(completions_spec) and active == 0
            if complete:
                sc.finished = new_condition("SuccessCriteriaMet", "True", *COMPLETIONS_REACHED, now)
            elif manage_called:
                if suspended:
                    if ensure_condition_status(
                        conditions, "Suspended", "True", "JobSuspended", "Job suspended", now
                    ):
                        suspend_changed = True
                        self.ctx.recorder.event(job, "Normal", "Suspended", "Job suspended")
                elif ensure_condition_status(
                    conditions, "Suspended", "False", "JobResumed", "Job resumed", now
                ):
                    suspend_changed = True
                    self.ctx.recorder.event(job, "Normal", "Resumed", "Job resumed")
                    # activeDeadlineSeconds counts continuous activity: a resume restarts it.
                    status["startTime"] = rfc3339(now)

        needs_update = (
            suspend_changed
            or active != int(status.get("active") or 0)
            or status.get("ready") != sc.ready
            or status.get("terminating") != sc.terminating
        )
        status["active"] = active
        status["ready"] = sc.ready
        status["terminating"] = sc.terminating
        await self._track_status_and_remove_finalizers(key, sc, needs_update)
        if manage_error is not None:
            raise manage_error

    # -- pods of a Job -------------------------------------------------------------------------

    async def _get_pods_for_job(self, job: Obj) -> list[Obj]:
        """The pods this Job controls, adopting matching orphans (adding the tracking finalizer)
        and releasing pods whose labels no longer match (upstream ClaimPods)."""
        selector = _selector(job)
        namespace = str(job["metadata"].get("namespace") or "")
        job_uid = _uid(job)
        deleting = bool(job["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        can_adopt: bool | None = None
        for pod in self.pods.list(namespace):
            ref = controller_of(pod)
            matches = selector.matches(_labels(pod))
            if ref is not None:
                if ref.get("uid") != job_uid:
                    continue
                if matches:
                    claimed.append(pod)
                elif not deleting:
                    await self._release(job, pod)
                continue
            if deleting or not matches or pod["metadata"].get("deletionTimestamp"):
                continue
            if can_adopt is None:
                fresh = await self.ctx.client.get(R.JOBS, job["metadata"]["name"], namespace)
                if _uid(fresh) != job_uid:
                    raise errors.Conflict(
                        message=f"original Job {namespace}/{job['metadata']['name']} is gone: "
                        f"got uid {_uid(fresh)}, wanted {job_uid}"
                    )
                can_adopt = not fresh["metadata"].get("deletionTimestamp")
            if not can_adopt:
                continue
            adopted = await self._adopt(job, pod)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, job: Obj, pod: Obj) -> Obj | None:
        meta = pod["metadata"]
        ref = owner_reference(job, JOB_KIND)
        try:
            await adopt(self.ctx.client, R.PODS, ref, pod, [TRACKING_FINALIZER])
        except errors.NotFound:
            return None
        adopted = copy.deepcopy(pod)
        adopted["metadata"]["ownerReferences"] = [*(meta.get("ownerReferences") or []), ref]
        if not has_tracking_finalizer(adopted):
            adopted["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), TRACKING_FINALIZER]
        return adopted

    async def _release(self, job: Obj, pod: Obj) -> None:
        await release(self.ctx.client, R.PODS, _uid(job), pod, [TRACKING_FINALIZER])

    def _new_finished_pods(self, sc: _Sync) -> tuple[list[Obj], list[Obj]]:
        """Finished pods not yet in the ledger nor counted (they still carry the finalizer)."""
        indexed = is_indexed(sc.job)
        completions = int((sc.job.get("spec") or {}).get("completions") or 0)

        def valid(pod: Obj, ledger: set[str]) -> bool:
            uid = _uid(pod)
            if not has_tracking_finalizer(pod) or uid in ledger or uid in sc.expected_rm_finalizers:
                return False
            if indexed:
                index = completion_index(pod)
                return index != UNKNOWN_INDEX and index < completions
            return True

        succeeded = [
            p
            for p in sc.pods
            if valid(p, sc.uncounted_succeeded) and (p.get("status") or {}).get("phase") == "Succeeded"
        ]
        failed = [p for p in sc.pods if valid(p, sc.uncounted_failed) and is_pod_failed(p, sc.job)]
        return succeeded, failed

    @staticmethod
    def _fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
        policy = (job.get("spec") or {}).get("podFailurePolicy")
        if policy is None:
            return None
        for pod in pods:
            if is_pod_failed(pod, job):
                message = match_pod_failure_policy(policy, pod).fail_job_message
                if message is not None:
                    return message
        return None

    def _past_active_deadline(self, job: Obj) -> bool:
        spec = job.get("spec") or {}
        deadline = spec.get("activeDeadlineSeconds")
        start = parse_time((job.get("status") or {}).get("startTime"))
        if deadline is None or start is None or spec.get("suspend"):
            return False
        return self.ctx.clock.now() - start >= timedelta(seconds=int(deadline))

    # -- managing pods -------------------------------------------------------------------------

    def _pods_for_removal(self, job: Obj, pods: list[Obj], at_least: int) -> list[Obj]:
        """Pods to delete: for Indexed Jobs, duplicated and invalid indexes first; then the pods
        in the earliest stage (unscheduled, pending, not ready)."""
        rm: list[Obj] = []
        left: list[Obj] = pods
        if is_indexed(job):
            completions = int((job.get("spec") or {}).get("completions") or 0)
            removed, kept = split_duplicated_index_pods(pods, completions, active_pods_sort_key)
            rm, left = [dict(p) for p in removed], [dict(p) for p in kept]
        if len(rm) < at_least:
            rm.extend(sorted(left, key=active_pods_sort_key)[: at_least - len(rm)])
        return rm

    async def _manage_job(self, key: str, sc: _Sync) -> tuple[int, Exception | None]:
        job = sc.job
        spec = job.get("spec") or {}
        active = len(sc.active_pods)
        parallelism = _int_or(spec.get("parallelism"), 1)
        if spec.get("suspend"):
            to_delete = self._pods_for_removal(job, sc.active_pods, active)
            self.expectations.expect_deletions(key, len(to_delete))
            removed_ready, removed, err = await self._delete_job_pods(key, job, to_delete)
            sc.terminating += removed
            sc.ready -= removed_ready
            return active - removed, err
        completions = spec.get("completions")
        wanted = want_active(
            None if completions is None else int(completions), parallelism, sc.succeeded, active
        )
        to_delete = self._pods_for_removal(job, sc.active_pods, max(active - wanted, 0))
        to_delete = to_delete[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if to_delete:
            # Deletions take precedence: one sync either deletes or creates, never both.
            self.expectations.expect_deletions(key, len(to_delete))
            removed_ready, removed, err = await self._delete_job_pods(key, job, to_delete)
            sc.terminating += removed
            sc.ready -= removed_ready
            return active - removed, err
        terminating = sc.terminating if only_replace_failed_pods(job) else 0
        diff = wanted - terminating - active
        if diff <= 0:
            return active, None
        remaining = remaining_backoff(
            sc.new_backoff, self.ctx.clock.now(), self.backoff_base, self.backoff_max
        )
        if remaining > 0:
            self.enqueue_after(key, max(remaining, self.batch_period))
            # Upstream reports 0 active here; the pods that do run are still active.
            return active, None
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if is_indexed(job):
            terminating_pods = (
                [p for p in sc.pods if is_terminating(p)] if only_replace_failed_pods(job) else []
            )
            indexes = first_pending_indexes(
                sc.active_pods, sc.succeeded_indexes, diff, int(completions or 0), terminating_pods
            )
            diff = len(indexes)
        self.expectations.expect_creations(key, diff)
        template = copy.deepcopy(spec.get("template") or {})
        if is_indexed(job):
            template["spec"] = add_completion_index_env(template.get("spec") or {})
        template_meta = template.setdefault("metadata", {})
        finalizers = list(template_meta.get("finalizers") or [])
        if TRACKING_FINALIZER not in finalizers:
            finalizers.append(TRACKING_FINALIZER)
        template_meta["finalizers"] = finalizers
        active += diff
        first_error: Exception | None = None
        # Slow start: 1, 2, 4, ... so a create that keeps failing (quota) fails once, not 500 times.
        batch = min(diff, SLOW_START_INITIAL_BATCH_SIZE)
        while diff > 0:
            chunk = [indexes.pop(0) if indexes else None for _ in range(batch)]
            results = await asyncio.gather(
                *(self._create_pod(job, template, index) for index in chunk), return_exceptions=True
            )
            failed = 0
            for result in results:
                if isinstance(result, BaseException):
                    if namespace_terminating(result):
                        continue  # every later create would fail the same way
                    if not isinstance(result, Exception):
                        raise result
                    self.expectations.creation_observed(key)
                    active -= 1
                    failed += 1
                    first_error = first_error or result
            skipped = diff - batch
            if failed and skipped > 0:
                active -= skipped
                for _ in range(skipped):
                    self.expectations.creation_observed(key)
                break
            diff -= batch
            batch = min(2 * batch, diff)
        return active, first_error

    async def _create_pod(self, job: Obj, template: Obj, index: int | None) -> None:
        meta = job["metadata"]
        template_meta = template.get("metadata") or {}
        labels = dict(template_meta.get("labels") or {})
        annotations = dict(template_meta.get("annotations") or {})
        pod_spec = copy.deepcopy(template.get("spec") or {})
        generate_name = f"{meta['name']}-"
        if index is not None:
            annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
            labels[COMPLETION_INDEX_ANNOTATION] = str(index)
            pod_spec["hostname"] = f"{meta['name']}-{index}"
            generate_name = pod_generate_name_with_index(meta["name"], index)
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": generate_name,
                "namespace": meta.get("namespace", ""),
                "labels": labels,
                "finalizers": list(template_meta.get("finalizers") or []),
                "ownerReferences": [owner_reference(job, JOB_KIND)],
            },
            "spec": pod_spec,
        }
        if annotations:
            pod["metadata"]["annotations"] = annotations
        if not labels:
            raise ValueError("unable to create pods, no labels")
        await create_pod(self.ctx.client, self.ctx.recorder, job, pod, meta.get("namespace"))

    async def _delete_pod_api(self, job: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        await delete_pod(self.ctx.client, self.ctx.recorder, job, meta["name"], meta.get("namespace"))

    async def _delete_active_pods(self, job: Obj, pods: list[Obj]) -> tuple[int, int, Exception | None]:
        """Delete the pods of a finishing Job, keeping their finalizers: they are counted (as
        failed) and released by the status tracking that follows."""

        async def one(pod: Obj) -> bool:
            try:
                await self._delete_pod_api(job, pod)
            except errors.NotFound:
                return True
            return True

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        return self._tally(pods, results)

    async def _delete_job_pods(
        self, key: str, job: Obj, pods: list[Obj]
    ) -> tuple[int, int, Exception | None]:
        """Delete surplus pods, releasing their finalizers first: they will not be counted."""

        async def one(pod: Obj) -> bool:
            try:
                await self._remove_finalizer(pod)
                await self._delete_pod_api(job, pod)
            except errors.NotFound:
                self.expectations.deletion_observed(key)
                return True
            except Exception:
                self.expectations.deletion_observed(key)
                raise
            return True

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        return self._tally(pods, results)

    @staticmethod
    def _tally(pods: list[Obj], results: list[Any]) -> tuple[int, int, Exception | None]:
        deleted = len(pods)
        deleted_ready = 0
        first_error: Exception | None = None
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                deleted -= 1
                first_error = first_error or result
            if is_pod_ready(pod):
                deleted_ready += 1
        return deleted_ready, deleted, first_error

    # -- counting finished pods ----------------------------------------------------------------

    async def _track_status_and_remove_finalizers(self, key: str, sc: _Sync, needs_flush: bool) -> None:
        """Ledger finished pods, release their finalizers, count them, and finish the Job when
        everything is counted (upstream trackJobStatusAndRemoveFinalizers)."""
        job = sc.job
        status = job["status"]
        spec = job.get("spec") or {}
        policy = spec.get("podFailurePolicy")
        indexed = is_indexed(job)
        completions = int(spec.get("completions") or 0)
        pods = sorted(sc.pods, key=completion_index) if indexed else sc.pods
        with_finalizer = {
            _uid(p) for p in pods if has_tracking_finalizer(p) and _uid(p) not in sc.expected_rm_finalizers
        }
        if clean_uncounted(status, with_finalizer):
            needs_flush = True
        ledger = status["uncountedTerminatedPods"]
        ledger.setdefault("succeeded", [])
        ledger.setdefault("failed", [])
        to_release: list[Obj] = []
        new_indexes: list[int] = []
        reached_max = False
        for pod in pods:
            uid = _uid(pod)
            if not has_tracking_finalizer(pod) or uid in sc.expected_rm_finalizers:
                continue  # handled by an earlier sync
            considered_failed = is_pod_failed(pod, job)
            if not self._can_remove_finalizer(sc, pod, considered_failed):
                continue
            to_release.append(pod)
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded" and uid not in sc.uncounted_failed:
                if indexed:
                    # The index is enough to never count a success twice.
                    index = completion_index(pod)
                    if (
                        index != UNKNOWN_INDEX
                        and index < completions
                        and not has_index(sc.prev_succeeded_indexes, index)
                    ):
                        new_indexes.append(index)
                        needs_flush = True
                elif uid not in sc.uncounted_succeeded:
                    needs_flush = True
                    ledger["succeeded"].append(uid)
            elif considered_failed or (
                sc.finished is not None and sc.finished.get("type") != "SuccessCriteriaMet"
            ):
                # A finishing Job counts every pod it did not see succeed as failed.
                index = completion_index(pod)
                valid_index = not indexed or (index != UNKNOWN_INDEX and index < completions)
                if (
                    uid not in sc.uncounted_failed
                    and valid_index
                    and match_pod_failure_policy(policy, pod).count_failed
                ):
                    needs_flush = True
                    ledger["failed"].append(uid)
            if len(new_indexes) + len(ledger["succeeded"]) + len(ledger["failed"]) >= MAX_UNCOUNTED_PODS:
                # Keep the status small and give other Jobs a turn; the status write requeues us.
                reached_max = True
                break
        if indexed:
            sc.succeeded_indexes = with_indexes(sc.succeeded_indexes, new_indexes)
            text = format_intervals(sc.succeeded_indexes)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = total(sc.succeeded_indexes)
            status["completedIndexes"] = text
        now = self.ctx.clock.now()
        conditions = status.setdefault("conditions", [])
        if sc.finished is not None and sc.finished.get("type") == "FailureTarget":
            conditions.append(sc.finished)
            needs_flush = True
            sc.finished = new_condition(
                "Failed", "True", sc.finished.get("reason", ""), sc.finished.get("message", ""), now
            )
        if sc.finished is not None and sc.finished.get("type") == "SuccessCriteriaMet":
            existing = find_condition(conditions, "SuccessCriteriaMet")
            if existing is None or existing.get("status") != "True":
                conditions.append(sc.finished)
                needs_flush = True
            sc.finished = new_condition(
                "Complete", "True", sc.finished.get("reason", ""), sc.finished.get("message", ""), now
            )
        needs_flush = await self._flush_and_release(key, sc, to_release, with_finalizer, needs_flush)
        finished = not reached_max and self._enact_finished(sc)
        if finished:
            needs_flush = True
        if needs_flush:
            sc.job = await self._update_status(sc.job)
            if finished and sc.finished is not None:
                self._record_finished(sc.job, sc.finished)

    @staticmethod
    def _can_remove_finalizer(sc: _Sync, pod: Obj, considered_failed: bool) -> bool:
        if sc.job["metadata"].get("deletionTimestamp") or sc.finished is not None:
            return True
        if (pod.get("status") or {}).get("phase") == "Succeeded":
            return True
        return considered_failed

    async def _flush_and_release(
        self, key: str, sc: _Sync, to_release: list[Obj], with_finalizer: set[str], needs_flush: bool
    ) -> bool:
        if needs_flush:
            # The ledger reaches the API before any finalizer goes: a crash now loses nothing.
            sc.job = await self._update_status(sc.job)
            self.backoff[key] = sc.new_backoff
            needs_flush = False
        release_error: Exception | None = None
        if to_release:
            uids = [_uid(p) for p in to_release]
            self.finalizer_expectations.expect_removed(key, uids)

            async def one(pod: Obj) -> None:
                try:
                    await self._remove_finalizer(pod)
                except Exception:
                    self.finalizer_expectations.removal_observed(key, _uid(pod))
                    raise

            results = await asyncio.gather(*(one(p) for p in to_release), return_exceptions=True)
            for pod, result in zip(to_release, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result
                    release_error = release_error or result
                else:
                    with_finalizer.discard(_uid(pod))
        if clean_uncounted(sc.job["status"], with_finalizer):
            needs_flush = True
        if release_error is not None:
            if needs_flush:
                await self._update_status(sc.job)
            raise release_error
        return needs_flush

    def _enact_finished(self, sc: _Sync) -> bool:
        if sc.finished is None:
            return False
        status = sc.job["status"]
        ledger = status.get("uncountedTerminatedPods") or {}
        if ledger.get("succeeded") or ledger.get("failed"):
            return False
        if sc.terminating > 0:
            return False  # the terminal condition waits for every pod to be gone (1.31+)
        cond = sc.finished
        conditions = status.setdefault("conditions", [])
        ensure_condition_status(
            conditions,
            str(cond["type"]),
            str(cond["status"]),
            str(cond.get("reason", "")),
            str(cond.get("message", "")),
            self.ctx.clock.now(),
        )
        if cond["type"] == "Complete":
            status["completionTime"] = cond["lastTransitionTime"]
        return True

    def _record_finished(self, job: Obj, cond: Obj) -> None:
        if cond.get("type") == "Complete":
            completions = (job.get("spec") or {}).get("completions")
            succeeded = int((job.get("status") or {}).get("succeeded") or 0)
            if completions is not None and succeeded > int(completions):
                self.ctx.recorder.event(
                    job,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            self.ctx.recorder.event(job, "Normal", "Completed", "Job completed")
        else:
            self.ctx.recorder.event(job, "Warning", str(cond.get("reason", "")), str(cond.get("message", "")))

    async def _update_status(self, job: Obj) -> Obj:
        namespace, name = split_key(key_of(job))
        body = dict(job)
        body["status"] = status_for_write(job.get("status") or {})
        updated: Obj = await self.ctx.client.request("PUT", R.JOBS.url(namespace, name, "status"), body=body)
        updated.setdefault("apiVersion", "batch/v1")
        updated.setdefault("kind", "Job")
        status = updated.setdefault("status", {})
        ledger = status.get("uncountedTerminatedPods") or {}
        status["uncountedTerminatedPods"] = {
            "succeeded": list(ledger.get("succeeded") or []),
            "failed": list(ledger.get("failed") or []),
        }
        return updated
