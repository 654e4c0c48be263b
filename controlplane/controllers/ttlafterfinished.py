"""TTL-after-finished controller (upstream pkg/controller/ttlafterfinished): deletes a finished
Job `ttlSecondsAfterFinished` seconds after its Complete/Failed condition's transition.

A Job is looked at when it changes and again when its TTL is due (through the controller's
clock). Before deleting, the Job is read fresh from the API server: a TTL the cache has not seen
change yet must not delete it. The delete carries the Job's UID as a precondition and
Foreground propagation, as upstream: the garbage collector removes the pods first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.controllers.job_status import finished_condition
from controlplane.controllers.podutil import parse_time
from controlplane.controllers.runtime import Controller, R, split_key

__all__ = ["TTLAfterFinishedController", "expire_time", "needs_cleanup"]

Obj = Mapping[str, Any]


def needs_cleanup(job: Obj) -> bool:
    """Finished, with a TTL, and not already being deleted."""
    return (
        (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None
        and finished_condition(job) is not None
        and not (job.get("metadata") or {}).get("deletionTimestamp")
    )


def expire_time(job: Obj) -> datetime:
    """When the TTL runs out; raises ValueError when the finish time cannot be known."""
    cond = finished_condition(job)
    meta = job.get("metadata") or {}
    if cond is None:
        raise ValueError(f"job {meta.get('namespace')}/{meta.get('name')} should not be cleaned up")
    finished = parse_time(cond.get("lastTransitionTime"))
    if finished is None:
        raise ValueError(
            f"unable to find the time when the Job {meta.get('namespace')}/{meta.get('name')} finished"
        )
    return finished + timedelta(seconds=int(job["spec"]["ttlSecondsAfterFinished"]))


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"
    event_source = "ttl-after-finished-controller"
    workers = 5

    def setup(self) -> None:
        self.jobs = self.ctx.informers.informer(R.JOBS)
        self.jobs.add_handler(self._on_job)

    def _on_job(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event in ("ADDED", "MODIFIED") and new is not None and needs_cleanup(new):
            self.enqueue_obj(dict(new))

    def _time_left(self, key: str, job: Obj) -> float | None:
        """processTTL: seconds until the TTL expires (<= 0: expired), or None if no cleanup is
        due or the finish time cannot be known."""
        if not needs_cleanup(job):
            return None
        try:
            return (expire_time(job) - self.ctx.clock.now()).total_seconds()
        except ValueError as exc:
            self.log.warning("%s: %s", key, exc)
            return None

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        left = self._time_left(key, job)
        if left is None or left > 0:
            return left
        # Expired by the cache: check the live Job, which may have been updated meanwhile.
        namespace, name = split_key(key)
        try:
            fresh = await self.ctx.client.get(R.JOBS, name, namespace)
        except errors.NotFound:
            return None
        left = self._time_left(key, fresh)
        if left is None or left > 0:
            return left
        self.log.info("cleaning up job %s", key)
        try:
            await self.ctx.client.delete(
                R.JOBS,
                name,
                namespace,
                options={
                    "propagationPolicy": "Foreground",
                    "preconditions": {"uid": fresh["metadata"]["uid"]},
                },
            )
        except errors.NotFound:
            return None
        return None
