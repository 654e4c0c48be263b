"""CronJob controller (upstream pkg/controller/cronjob, the v2 controller).

Each CronJob is synced when it or one of its Jobs changes, and again just after its next
scheduled time (the requeue goes through the controller's clock, so tests advance a FakeClock
instead of waiting minutes). A sync removes finished Jobs beyond the history limits, moves
finished Jobs out of `status.active`, and, when an activation is due, creates the Job named
after the activation's minute: a create that raced a crash answers AlreadyExists instead of
running the activation twice.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.controllers.cron import CronError, Schedule, load_location, parse_standard
from controlplane.controllers.cronjob_util import (
    by_job_start_time,
    finished_status,
    format_schedule,
    go_rfc1123z,
    in_active_list,
    in_active_list_by_name,
    job_from_template,
    job_name,
    next_schedule_time,
    next_schedule_time_duration,
    owned_by_name,
)
from controlplane.controllers.job_status import is_job_finished
from controlplane.controllers.podutil import controller_of, parse_time
from controlplane.controllers.runtime import Controller, R, key_of, rfc3339, split_key
from controlplane.controllers.status_causes import namespace_terminating

__all__ = ["CronJobController"]

Obj = dict[str, Any]


class _SyncResult:
    def __init__(self) -> None:
        self.requeue: float | None = None
        self.update_status = False
        self.error: Exception | None = None


class CronJobController(Controller):
    name = "cronjob"
    event_source = "cronjob-controller"
    workers = 5

    def setup(self) -> None:
        self.cronjobs = self.ctx.informers.informer(R.CRONJOBS)
        self.jobs = self.ctx.informers.informer(R.JOBS)
        self.cronjobs.add_handler(self._on_cronjob)
        self.jobs.add_handler(self._on_job)

    # -- event handlers ----------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Any) -> Obj | None:
        if ref is None or ref.get("kind") != "CronJob":
            return None
        cj = self.cronjobs.get(f"{namespace}/{ref.get('name')}")
        if cj is None or cj["metadata"].get("uid") != ref.get("uid"):
            return None
        return cj

    def _on_job(self, event: str, old: Obj | None, new: Obj | None) -> None:
        job = new if new is not None else old
        if job is None:
            return
        namespace = str(job["metadata"].get("namespace") or "")
        if event == "MODIFIED" and old is not None and new is not None:
            if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
                return
            old_ref, new_ref = controller_of(old), controller_of(new)
            if old_ref != new_ref and old_ref is not None:
                self.enqueue_obj(self._resolve(namespace, old_ref))
        self.enqueue_obj(self._resolve(namespace, controller_of(job)))

    def _on_cronjob(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event != "MODIFIED" or old is None or new is None:
            self.enqueue_obj(new if new is not None else old)
            return
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("schedule") == new_spec.get("schedule") and old_spec.get("timeZone") == new_spec.get(
            "timeZone"
        ):
            self.enqueue_obj(new)
            return
        # A new schedule: look again at its next activation (a sooner one replaces a later wait).
        schedule_text, _ = format_schedule(new)
        try:
            schedule = parse_standard(schedule_text)
        except CronError:
            self.ctx.recorder.event(
                new,
                "Warning",
                "UnParseableCronJobSchedule",
                f"unparseable schedule for cronjob: {new_spec.get('schedule', '')}",
            )
            return
        after = next_schedule_time_duration(new, self.ctx.clock.now(), schedule)
        if after is None:
            self.enqueue_obj(new)
        else:
            self.enqueue_after(key_of(new), after)

    # -- sync --------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return None
        namespace, name = split_key(key)
        jobs = [j for j in self.jobs.list(namespace) if owned_by_name(j, name)]
        cj = copy.deepcopy(cached)
        cj.setdefault("apiVersion", "batch/v1")
        cj.setdefault("kind", "CronJob")
        cj.setdefault("status", {})
        cleaned = await self._cleanup_finished_jobs(cj, jobs)
        result = await self._sync_cronjob(cj, jobs)
        if cleaned or result.update_status:
            status = cj["status"]
            if not status.get("active"):
                status.pop("active", None)
            await self.ctx.client.request("PUT", R.CRONJOBS.url(namespace, name, "status"), body=cj)
        if result.requeue is not None:
            return result.requeue
        if result.error is not None:
            raise result.error
        return None

    async def _sync_cronjob(self, cj: Obj, jobs: list[Obj]) -> _SyncResult:
        res = _SyncResult()
        now = self.ctx.clock.now()
        meta = cj["metadata"]
        namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
        children: set[str] = set()
        for job in jobs:
            uid = str(job["metadata"].get("uid"))
            children.add(uid)
            found = in_active_list(cj, uid)
            if not found and not is_job_finished(job):
                fresh = await self.ctx.client.get(R.CRONJOBS, name, namespace)
                if in_active_list(fresh, uid):
                    fresh.setdefault("apiVersion", "batch/v1")
                    fresh.setdefault("kind", "CronJob")
                    cj.clear()
                    cj.update(fresh)
                    continue
                # Ours but not in our list: we crashed after creating it, or someone asked us to
                # adopt it. Upstream reports it and leaves it out.
                self.ctx.recorder.event(
                    cj,
                    "Warning",
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}",
                )
            elif found and is_job_finished(job):
                _delete_from_active(cj, uid)
                self.ctx.recorder.event(
                    cj,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {job['metadata']['name']}, status: {finished_status(job)}",
                )
                res.update_status = True
            elif finished_status(job) == "Complete":
                # A succeeded Job need not be in the active list for its completion time to count.
                completion = (job.get("status") or {}).get("completionTime")
                status = cj["status"]
                last = parse_time(status.get("lastSuccessfulTime"))
                done = parse_time(completion)
                newer = done is not None and last is not None and done > last
                if (last is None and completion) or newer:
                    status["lastSuccessfulTime"] = completion
                    res.update_status = True

        # An active reference whose Job is gone (confirmed with a live GET, the cache may lag).
        for ref in list(cj["status"].get("active") or []):
            if ref.get("uid") in children:
                continue
            try:
                await self.ctx.client.get(
                    R.JOBS, str(ref.get("name")), str(ref.get("namespace") or namespace)
                )
            except errors.NotFound:
                self.ctx.recorder.event(
                    cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
                _delete_from_active(cj, str(ref.get("uid")))
                res.update_status = True

        if meta.get("deletionTimestamp"):
            return res
        spec = cj.get("spec") or {}
        tz = spec.get("timeZone")
        if tz is not None:
            try:
                load_location(str(tz))
            except CronError as exc:
                self.ctx.recorder.event(cj, "Warning", "UnknownTimeZone", f'invalid timeZone: "{tz}": {exc}')
                return res
        if spec.get("suspend"):
            return res
        schedule_text, unsupported_tz = format_schedule(cj)
        if unsupported_tz:
            self.ctx.recorder.event(
                cj,
                "Warning",
                "UnsupportedSchedule",
                f'CRON_TZ or TZ used in schedule "{spec.get("schedule", "")}" is not officially supported, '
                "see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
            )
        try:
            schedule = parse_standard(schedule_text)
        except CronError as exc:
            self.ctx.recorder.event(
                cj,
                "Warning",
                "UnparseableSchedule",
                f'unparseable schedule: "{spec.get("schedule", "")}" : {exc}',
            )
            return res
        try:
            scheduled, many_missed = next_schedule_time(cj, now, schedule)
        except CronError as exc:
            self.ctx.recorder.event(
                cj, "Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule', '')} : {exc}"
            )
            return res
        if many_missed:
            self.ctx.recorder.event(
                cj,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
        if scheduled is None:
            res.requeue = next_schedule_time_duration(cj, now, schedule)
            return res
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and (scheduled - now).total_seconds() + int(deadline) < 0:
            self.ctx.recorder.event(
                cj,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {go_rfc1123z(scheduled)}",
            )
            res.requeue = next_schedule_time_duration(cj, now, schedule)
            return res
        if in_active_list_by_name(cj, namespace, job_name(cj, scheduled)) or _same_time(
            cj["status"].get("lastScheduleTime"), scheduled
        ):
            res.requeue = next_schedule_time_duration(cj, now, schedule)
            return res
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and cj["status"].get("active"):
            self.ctx.recorder.event(
                cj,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            res.requeue = next_schedule_time_duration(cj, now, schedule)
            return res
        if policy == "Replace":
            for ref in list(cj["status"].get("active") or []):
                try:
                    job = await self.ctx.client.get(R.JOBS, str(ref.get("name")), str(ref.get("namespace")))
                except errors.StatusError as exc:
                    self.ctx.recorder.event(cj, "Warning", "FailedGet", f"Get job: {exc}")
                    res.error = exc
                    return res
                if not await self._delete_job(cj, job):
                    res.error = RuntimeError(f"could not replace job {namespace}/{job['metadata']['name']}")
                    return res
                res.update_status = True
        return await self._create_job(cj, scheduled, now, schedule, res)

    async def _create_job(
        self, cj: Obj, scheduled: datetime, now: datetime, schedule: Schedule, res: _SyncResult
    ) -> _SyncResult:
        namespace = str(cj["metadata"].get("namespace") or "")
        request = job_from_template(cj, scheduled)
        already_exists = False
        try:
            created = await self.ctx.client.create(R.JOBS, request, namespace)
        except errors.AlreadyExists:
            already_exists = True
            created = await self.ctx.client.get(R.JOBS, request["metadata"]["name"], namespace)
            ref = controller_of(created)
            if ref is None or ref.get("uid") != cj["metadata"].get("uid"):
                return res  # someone else's Job: assume they keep the status current
            if in_active_list(cj, str(created["metadata"].get("uid"))):
                return res
        except errors.StatusError as exc:
            if namespace_terminating(exc):
                res.error = exc
                return res
            self.ctx.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {exc}")
            res.error = exc
            return res
        if not already_exists:
            self.ctx.recorder.event(
                cj, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}"
            )
        meta = created["metadata"]
        cj["status"].setdefault("active", []).append(
            {
                "kind": "Job",
                "namespace": meta.get("namespace", namespace),
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "apiVersion": "batch/v1",
                "resourceVersion": meta.get("resourceVersion", ""),
            }
        )
        cj["status"]["lastScheduleTime"] = rfc3339(scheduled)
        res.update_status = True
        res.requeue = next_schedule_time_duration(cj, now, schedule)
        return res

    async def _cleanup_finished_jobs(self, cj: Obj, jobs: list[Obj]) -> bool:
        spec = cj.get("spec") or {}
        success_limit = spec.get("successfulJobsHistoryLimit")
        failed_limit = spec.get("failedJobsHistoryLimit")
        if success_limit is None and failed_limit is None:
            return False
        succeeded = [j for j in jobs if finished_status(j) == "Complete"]
        failed = [j for j in jobs if finished_status(j) == "Failed"]
        updated = False
        if success_limit is not None and await self._remove_oldest(cj, succeeded, int(success_limit)):
            updated = True
        if failed_limit is not None and await self._remove_oldest(cj, failed, int(failed_limit)):
            updated = True
        return updated

    async def _remove_oldest(self, cj: Obj, jobs: list[Obj], keep: int) -> bool:
        extra = len(jobs) - keep
        if extra <= 0:
            return False
        updated = False
        for job in sorted(jobs, key=by_job_start_time)[:extra]:
            if await self._delete_job(cj, job):
                updated = True
        return updated

    async def _delete_job(self, cj: Obj, job: Obj) -> bool:
        meta = job["metadata"]
        try:
            await self.ctx.client.delete(
                R.JOBS,
                str(meta["name"]),
                str(meta.get("namespace") or ""),
                options={"propagationPolicy": "Background"},
            )
        except errors.StatusError as exc:
            self.ctx.recorder.event(cj, "Warning", "FailedDelete", f"Deleted job: {exc}")
            self.log.warning("deleting job %s of cronjob %s failed: %s", meta["name"], key_of(cj), exc)
            return False
        _delete_from_active(cj, str(meta.get("uid")))
        self.ctx.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True


def _delete_from_active(cj: Obj, uid: str) -> None:
    status = cj.setdefault("status", {})
    status["active"] = [ref for ref in status.get("active") or [] if ref.get("uid") != uid]


def _same_time(stamp: Any, moment: datetime) -> bool:
    parsed = parse_time(stamp) if isinstance(stamp, str) else None
    return parsed is not None and parsed == moment.replace(microsecond=0)
