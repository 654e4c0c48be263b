"""Job status arithmetic (pure): conditions, the uncounted-terminated-pods ledger and how many
pods a Job wants running. The ledger is what makes counting exact: a finished pod's UID is first
written to `status.uncountedTerminatedPods`, then its tracking finalizer is removed, and only
then is it moved into `succeeded`/`failed`, so a crash between any two steps neither loses nor
double-counts a pod."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.controllers.runtime import rfc3339

__all__ = [
    "COMPLETIONS_REACHED",
    "JOB_CONTROLLER_NAME",
    "clean_uncounted",
    "ensure_condition_status",
    "find_condition",
    "finished_condition",
    "is_job_finished",
    "managed_by_external",
    "new_condition",
    "status_for_write",
    "want_active",
]

Obj = Mapping[str, Any]

JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "lastProbeTime": rfc3339(now),
        "lastTransitionTime": rfc3339(now),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def find_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def ensure_condition_status(
    conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, now: datetime
) -> bool:
    """Set or update a condition in place; a condition that does not exist is never added as
    False. Returns whether the list changed."""
    found = find_condition(conditions, type_)
    if found is not None:
        if (
            found.get("status") != status
            or found.get("reason", "") != reason
            or found.get("message", "") != message
        ):
            found.clear()
            found.update(new_condition(type_, status, reason, message, now))
            return True
        return False
    if status != "False":
        conditions.append(new_condition(type_, status, reason, message, now))
        return True
    return False


def finished_condition(job: Obj) -> dict[str, Any] | None:
    """jobutil.FinishedCondition: the Complete or Failed condition that is True, if any."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return dict(cond)
    return None


def is_job_finished(job: Obj) -> bool:
    return finished_condition(job) is not None


def managed_by_external(job: Obj) -> str | None:
    managed_by = (job.get("spec") or {}).get("managedBy")
    if managed_by and managed_by != JOB_CONTROLLER_NAME:
        return str(managed_by)
    return None


def clean_uncounted(status: dict[str, Any], uids_with_finalizer: set[str]) -> bool:
    """Move ledger entries whose pod no longer has the finalizer into the counters."""
    ledger = status.setdefault("uncountedTerminatedPods", {})
    updated = False
    for field, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        entries = list(ledger.get(field) or [])
        kept = [uid for uid in entries if uid in uids_with_finalizer]
        if len(kept) != len(entries):
            updated = True
            status[counter] = int(status.get(counter) or 0) + len(entries) - len(kept)
            ledger[field] = kept
    return updated


def want_active(completions: int | None, parallelism: int, succeeded: int, active: int) -> int:
    """How many pods should be running: parallelism, never more than the completions left; a
    Job without completions stops starting pods after its first success."""
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(completions - succeeded, parallelism))


def status_for_write(status: dict[str, Any]) -> dict[str, Any]:
    """The status as upstream serialises it: zero counters and empty lists omitted (they are
    `omitempty`), `ready`, `terminating` and the ledger object kept."""
    out = dict(status)
    for key in ("active", "succeeded", "failed"):
        if not out.get(key):
            out.pop(key, None)
    for key in ("completedIndexes", "conditions"):
        if not out.get(key):
            out.pop(key, None)
    ledger = {k: list(v) for k, v in (out.get("uncountedTerminatedPods") or {}).items() if v}
    out["uncountedTerminatedPods"] = ledger
    return out
