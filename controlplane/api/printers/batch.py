"""Printers for `batch`: jobs and cron jobs, after upstream `printJob` / `printCronJob`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.durations import human_duration
from controlplane.api.printers.common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_int,
    as_list,
    as_map,
    as_str,
    aware,
    container_cells,
    dig,
    format_label_selector,
    maps,
    name,
    parse_time,
    since,
)

__all__ = ["PRINTERS"]


def _job_condition(conditions: Any, kind: str) -> bool:
    """`hasJobCondition`: the first condition of that type decides."""
    for condition in maps(conditions):
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _job_status(obj: Mapping[str, Any]) -> str:
    conditions = dig(obj, "status", "conditions")
    if _job_condition(conditions, "Complete"):
        return "Complete"
    if _job_condition(conditions, "Failed"):
        return "Failed"
    if dig(obj, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if _job_condition(conditions, "Suspended"):
        return "Suspended"
    if _job_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _completions(spec: Mapping[str, Any], succeeded: int) -> str:
    completions = spec.get("completions")
    if completions is not None:
        return f"{succeeded}/{as_int(completions)}"
    parallelism = as_int(spec.get("parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(status: Mapping[str, Any], now: datetime) -> str:
    start = parse_time(status.get("startTime"))
    if start is None:
        return ""
    completion = parse_time(status.get("completionTime"))
    return human_duration((completion or aware(now)) - start)


def _job_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    names, images = container_cells(dig(spec, "template", "spec", "containers"))
    return [
        name(obj),
        _job_status(obj),
        _completions(spec, as_int(status.get("succeeded"))),
        _job_duration(status, now),
        age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


_JOB = Printer(
    (
        NAME,
        Column("Status", description="Status of the job."),
        Column("Completions", description=Doc("batch.v1.JobStatus", "succeeded")),
        Column("Duration", description="Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("batch.v1.JobSpec", "selector"), priority=1),
    ),
    _job_row,
)


def _bool_pointer(value: Any) -> str:
    """`printBoolPtr`: True/False, `<unset>` when nil."""
    if value is None:
        return "<unset>"
    return "True" if value is True else "False"


def _cron_job_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec, status = as_map(obj.get("spec")), as_map(obj.get("status"))
    job_spec = as_map(dig(spec, "jobTemplate", "spec"))
    names, images = container_cells(dig(job_spec, "template", "spec", "containers"))
    last = status.get("lastScheduleTime")
    return [
        name(obj),
        as_str(spec.get("schedule")),
        as_str(spec.get("timeZone")) if spec.get("timeZone") is not None else "<none>",
        _bool_pointer(spec.get("suspend")),
        len(as_list(status.get("active"))),
        "<none>" if last is None else since(last, now),
        age(obj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


_CRON_JOB = Printer(
    (
        NAME,
        Column("Schedule", description=Doc("batch.v1.CronJobSpec", "schedule")),
        Column("Timezone", description=Doc("batch.v1.CronJobSpec", "timeZone")),
        Column("Suspend", "boolean", Doc("batch.v1.CronJobSpec", "suspend")),
        Column("Active", "integer", Doc("batch.v1.CronJobStatus", "active")),
        Column("Last Schedule", description=Doc("batch.v1.CronJobStatus", "lastScheduleTime")),
        AGE,
        CONTAINERS,
        IMAGES,
        Column("Selector", description=Doc("batch.v1.JobSpec", "selector"), priority=1),
    ),
    _cron_job_row,
)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("batch", "jobs"): _JOB,
    ("batch", "cronjobs"): _CRON_JOB,
}
