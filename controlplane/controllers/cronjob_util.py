"""Pure CronJob logic (upstream pkg/controller/cronjob/utils.go): which scheduled time is due,
when to look again, the Job a schedule creates, and how finished Jobs are ordered for cleanup."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from controlplane.controllers.cron import CronError, Schedule, load_location
from controlplane.controllers.job_status import finished_condition
from controlplane.controllers.podutil import controller_of, parse_time

__all__ = [
    "NEXT_SCHEDULE_DELTA",
    "SCHEDULED_TIMESTAMP_ANNOTATION",
    "Missed",
    "MostRecent",
    "by_job_start_time",
    "finished_status",
    "format_schedule",
    "go_rfc1123z",
    "go_rfc3339",
    "in_active_list",
    "in_active_list_by_name",
    "job_from_template",
    "job_name",
    "most_recent_schedule_time",
    "next_schedule_time",
    "next_schedule_time_duration",
    "owned_by_name",
]

Obj = Mapping[str, Any]

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Padding on every requeue so that a slightly early wake-up still finds the schedule due.
NEXT_SCHEDULE_DELTA = 0.1
_MANY = 100


class Missed(Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


@dataclass(frozen=True)
class MostRecent:
    earliest: datetime
    most_recent: datetime | None
    missed: Missed


def _creation(cj: Obj) -> datetime:
    found = parse_time((cj.get("metadata") or {}).get("creationTimestamp"))
    return found or datetime(1, 1, 1, tzinfo=UTC)


def most_recent_schedule_time(
    cj: Obj, now: datetime, schedule: Schedule, include_starting_deadline: bool
) -> MostRecent:
    """The last schedule (or creation) time, the most recent activation at or before `now`
    (None if none), and how many were missed. Raises CronError for a schedule that parses but
    never makes sense (less than a second between two activations, e.g. `59 23 31 2 *`)."""
    spec = cj.get("spec") or {}
    status = cj.get("status") or {}
    earliest = _creation(cj)
    last = parse_time(status.get("lastScheduleTime"))
    if last is not None:
        earliest = last
    deadline = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        scheduling_deadline = now - timedelta(seconds=int(deadline))
        earliest = max(earliest, scheduling_deadline)
    t1 = schedule.next(earliest)
    if t1 is not None and now < t1:
        return MostRecent(earliest, None, Missed.NONE)
    t2 = schedule.next(t1) if t1 is not None else None
    if t1 is not None and t2 is not None and now < t2:
        return MostRecent(earliest, t1, Missed.NONE)
    # A schedule that parses but never fires (`59 23 31 2 *`): robfig's zero times make the
    # interval between two activations non-positive, which upstream reports as this error.
    between = round((t2 - t1).total_seconds()) if t1 is not None and t2 is not None else 0
    if t1 is None or between < 1:
        raise CronError("time difference between two schedules is less than 1 second")
    elapsed = math.trunc((now - t1).total_seconds())
    missed_count = elapsed // between + 1
    # Start a little before the estimate and let the schedule find the exact last activation
    # (schedules like `30 6-16/4 * * 1-5` are not evenly spaced).
    potential_earliest = t1 + timedelta(seconds=(missed_count - 2) * between)
    most_recent: datetime | None = None
    t = schedule.next(potential_earliest)
    while t is not None and t <= now:
        most_recent = t
        t = schedule.next(t)
    missed = Missed.MANY if missed_count > _MANY else Missed.FEW
    return MostRecent(earliest, most_recent, missed)


def next_schedule_time_duration(cj: Obj, now: datetime, schedule: Schedule) -> float | None:
    """Seconds until the next activation after the most recent one, plus a small padding;
    None for a schedule that never fires again."""
    try:
        found = most_recent_schedule_time(cj, now, schedule, include_starting_deadline=False)
    except CronError:
        base = now
    else:
        if found.most_recent is not None:
            base = found.most_recent
        elif found.missed is Missed.NONE:
            base = found.earliest
        else:
            base = now
    nxt = schedule.next(base)
    if nxt is None:
        return None
    return (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA


def next_schedule_time(cj: Obj, now: datetime, schedule: Schedule) -> tuple[datetime | None, bool]:
    """The activation to run now (None if none is due) and whether more than 100 were missed.
    Raises CronError like most_recent_schedule_time."""
    found = most_recent_schedule_time(cj, now, schedule, include_starting_deadline=True)
    if found.most_recent is None or found.most_recent > now:
        return None, False
    return found.most_recent, found.missed is Missed.MANY


def job_name(cj: Obj, scheduled: datetime) -> str:
    """`<cronjob>-<scheduled time in minutes since the epoch>`: one name per activation, so a
    retried create after a crash can never start the same activation twice."""
    return f"{cj['metadata']['name']}-{math.floor(scheduled.timestamp()) // 60}"


def go_rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339 layout: `Z` for UTC, `±hh:mm` otherwise."""
    offset = moment.utcoffset() or timedelta(0)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if offset == timedelta(0):
        return base + "Z"
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{base}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def go_rfc1123z(moment: datetime) -> str:
    """Go's time.RFC1123Z layout of a UTC time: `Mon, 02 Jan 2006 15:04:05 -0700`."""
    utc = moment.astimezone(UTC)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return f"{days[utc.weekday()]}, {utc.day:02d} {months[utc.month - 1]} {utc:%Y %H:%M:%S} +0000"


def job_from_template(cj: Obj, scheduled: datetime) -> dict[str, Any]:
    """upstream getJobFromTemplate2 (with the CronJobsScheduledAnnotation feature, GA in 1.32)."""
    template = cj.get("spec", {}).get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {})
    tz = load_location(str((cj.get("spec") or {}).get("timeZone") or ""))
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = go_rfc3339(scheduled.astimezone(tz))
    meta = cj["metadata"]
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cj, scheduled),
            "namespace": meta.get("namespace", ""),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if not labels:
        del job["metadata"]["labels"]
    return job


def format_schedule(cj: Obj) -> tuple[str, bool]:
    """The schedule handed to the parser (with `TZ=` from spec.timeZone) and whether it carries
    an unsupported TZ/CRON_TZ of its own (upstream warns with UnsupportedSchedule)."""
    spec = cj.get("spec") or {}
    schedule = str(spec.get("schedule") or "")
    if "TZ" in schedule:
        return schedule, True
    tz = spec.get("timeZone")
    if tz is not None:
        try:
            load_location(str(tz))
        except CronError:
            return schedule, False
        return f"TZ={tz} {schedule}", False
    return schedule, False


def finished_status(job: Obj) -> str:
    """ "Complete" or "Failed" for a finished Job, "" otherwise (getFinishedStatus)."""
    cond = finished_condition(job)
    return "" if cond is None else str(cond["type"])


def in_active_list(cj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (cj.get("status") or {}).get("active") or [])


def in_active_list_by_name(cj: Obj, namespace: str, name: str) -> bool:
    return any(
        ref.get("name") == name and ref.get("namespace") == namespace
        for ref in (cj.get("status") or {}).get("active") or []
    )


def by_job_start_time(job: Obj) -> tuple[int, datetime, str]:
    """Sort key: Jobs with a start time first, oldest first, then by name."""
    start = parse_time((job.get("status") or {}).get("startTime"))
    if start is None:
        return (1, datetime.max.replace(tzinfo=UTC), str(job["metadata"]["name"]))
    return (0, start, str(job["metadata"]["name"]))


def owned_by_name(job: Obj, cronjob_name: str) -> bool:
    ref = controller_of(job)
    return ref is not None and ref.get("name") == cronjob_name
