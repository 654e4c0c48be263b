"""What the Job controller reads from its pods: failure, termination, finish times, ordering and
the pod-restart backoff (upstream job_controller.go helpers, backoff_utils.go and
controller_utils.go's ActivePods ordering)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.controllers.podutil import condition, is_pod_ready, is_pod_terminal, parse_time

__all__ = [
    "TRACKING_FINALIZER",
    "BackoffRecord",
    "active_pods_sort_key",
    "finished_time",
    "has_tracking_finalizer",
    "is_indexed",
    "is_pod_failed",
    "is_terminating",
    "new_backoff_record",
    "only_replace_failed_pods",
    "past_backoff_limit_on_failure",
    "remaining_backoff",
]

Obj = Mapping[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
_ZERO = datetime(1, 1, 1, tzinfo=UTC)
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def only_replace_failed_pods(job: Obj) -> bool:
    """podReplacementPolicy Failed (the default when a podFailurePolicy is set): a replacement
    waits until the pod it replaces is fully terminated."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    # A deleted pod counts as failed: an orphan may never reach the Failed phase.
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and phase != "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return not is_pod_terminal(pod) and bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _ready_time(pod: Obj) -> datetime:
    cond = condition(pod, "Ready")
    found = parse_time(cond.get("lastTransitionTime")) if cond else None
    return found or _ZERO


def _max_restarts(pod: Obj) -> int:
    return max(
        (int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or []),
        default=0,
    )


def _newer_first(moment: datetime) -> tuple[int, float]:
    """afterOrZero ordering: the zero time first, then later times before earlier ones."""
    if moment == _ZERO:
        return (0, 0.0)
    return (1, -moment.timestamp())


def active_pods_sort_key(pod: Obj) -> tuple[Any, ...]:
    """controller.ActivePods: the pods it is cheapest to lose sort first (unscheduled, pending,
    not ready, ready most recently, restarted most, created most recently)."""
    assigned = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    phase = _PHASE_ORDINAL.get(str((pod.get("status") or {}).get("phase") or ""), 0)
    ready = is_pod_ready(pod)
    ready_key = _newer_first(_ready_time(pod)) if ready else (0, 0.0)
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or _ZERO
    return (assigned, phase, 1 if ready else 0, ready_key, -_max_restarts(pod), _newer_first(created))


def finished_time(pod: Obj) -> datetime:
    """When the pod finished: its last container's finish, else its Ready=False transition,
    else the deletion moment, else its creation."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    latest: datetime | None = None
    complete = bool(statuses)
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated")
        at = parse_time((terminated or {}).get("finishedAt"))
        if at is None:
            complete = False
            break
        if latest is None or at > latest:
            latest = at
    if complete and latest is not None:
        return latest
    ready = condition(pod, "Ready")
    if ready is not None and ready.get("status") == "False":
        at = parse_time(ready.get("lastTransitionTime"))
        if at is not None:
            return at
    meta = pod.get("metadata") or {}
    deleted = parse_time(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
    return parse_time(meta.get("creationTimestamp")) or _ZERO


def past_backoff_limit_on_failure(job: Obj, pods: Iterable[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of running pods count against backoffLimit."""
    spec = job.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Running", "Pending"):
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(int(s.get("restartCount") or 0) for s in status.get(key) or [])
    limit = int(spec.get("backoffLimit") or 0)
    if limit == 0:
        return restarts > 0
    return restarts >= limit


@dataclass(frozen=True)
class BackoffRecord:
    """Failures since the last success, and when the last of them happened."""

    failures_after_last_success: int = 0
    last_failure_time: datetime | None = None


def new_backoff_record(
    old: BackoffRecord | None, new_succeeded: Sequence[Obj], new_failed: Sequence[Obj]
) -> BackoffRecord:
    record = old or BackoffRecord()
    succeeded = sorted(finished_time(p) for p in new_succeeded)
    failed = sorted(finished_time(p) for p in new_failed)
    if not succeeded:
        if not failed:
            return record
        return BackoffRecord(record.failures_after_last_success + len(failed), failed[-1])
    if not failed:
        return BackoffRecord()
    last_success = succeeded[-1]
    count = 0
    last_failure: datetime | None = None
    for at in reversed(failed):
        if at <= last_success:
            break
        if last_failure is None:
            last_failure = at
        count += 1
    return BackoffRecord(count, last_failure)


def remaining_backoff(record: BackoffRecord, now: datetime, base: float, cap: float) -> float:
    """Seconds before a replacement may be created: base, doubled per consecutive failure,
    capped, counted from the last failure."""
    if record.failures_after_last_success == 0 or record.last_failure_time is None:
        return 0.0
    delay = base
    for _ in range(1, record.failures_after_last_success):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = (now - record.last_failure_time).total_seconds()
    return 0.0 if delay < elapsed else delay - elapsed
