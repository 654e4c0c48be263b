"""CronJob scheduling arithmetic and the controller's decisions, against an in-memory client."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.cron import CronError, parse_standard
from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.cronjob_util import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    Missed,
    by_job_start_time,
    go_rfc1123z,
    go_rfc3339,
    job_from_template,
    job_name,
    most_recent_schedule_time,
    next_schedule_time,
    next_schedule_time_duration,
)
from controlplane.controllers.runtime import (
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    R,
    rfc3339,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def cronjob(
    schedule: str = "*/5 * * * *",
    *,
    created: datetime = T0,
    last: datetime | None = None,
    deadline: int | None = None,
    **spec: Any,
) -> dict[str, Any]:
    cj: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "cj",
            "namespace": "ns",
            "uid": "cj-uid",
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(created),
        },
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Allow",
            "suspend": False,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"app": "x"}, "annotations": {"a": "b"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}},
            },
            **spec,
        },
        "status": {},
    }
    if deadline is not None:
        cj["spec"]["startingDeadlineSeconds"] = deadline
    if last is not None:
        cj["status"]["lastScheduleTime"] = rfc3339(last)
    return cj


# -- arithmetic ---------------------------------------------------------------------------------


def test_nothing_due_before_the_first_activation() -> None:
    found = most_recent_schedule_time(
        cronjob(), T0 + timedelta(minutes=4), parse_standard("*/5 * * * *"), True
    )
    assert found.most_recent is None
    assert found.missed is Missed.NONE


def test_the_activation_just_passed_is_due() -> None:
    now = T0 + timedelta(minutes=5, seconds=3)
    scheduled, many = next_schedule_time(cronjob(), now, parse_standard("*/5 * * * *"))
    assert scheduled == T0 + timedelta(minutes=5)
    assert not many


def test_several_missed_activations_run_only_the_most_recent() -> None:
    now = T0 + timedelta(minutes=23)
    found = most_recent_schedule_time(cronjob(), now, parse_standard("*/5 * * * *"), True)
    assert found.most_recent == T0 + timedelta(minutes=20)
    assert found.missed is Missed.FEW


def test_more_than_a_hundred_missed_is_many() -> None:
    now = T0 + timedelta(hours=200, minutes=30)
    scheduled, many = next_schedule_time(cronjob("0 * * * *"), now, parse_standard("0 * * * *"))
    assert scheduled == T0 + timedelta(hours=200)
    assert many


def test_starting_deadline_limits_how_far_back_to_look() -> None:
    cj = cronjob("0 * * * *", deadline=600)
    schedule = parse_standard("0 * * * *")
    # 200 hours late, but only the last ten minutes count: nothing due, nothing "many".
    scheduled, many = next_schedule_time(cj, T0 + timedelta(hours=200, minutes=30), schedule)
    assert (scheduled, many) == (None, False)
    scheduled, many = next_schedule_time(cj, T0 + timedelta(hours=200, minutes=5), schedule)
    assert (scheduled, many) == (T0 + timedelta(hours=200), False)


def test_last_schedule_time_is_the_starting_point() -> None:
    cj = cronjob(last=T0 + timedelta(minutes=10))
    schedule = parse_standard("*/5 * * * *")
    assert next_schedule_time(cj, T0 + timedelta(minutes=12), schedule) == (None, False)
    assert next_schedule_time(cj, T0 + timedelta(minutes=15), schedule)[0] == T0 + timedelta(minutes=15)


def test_a_schedule_that_never_fires_is_invalid() -> None:
    with pytest.raises(CronError, match="less than 1 second"):
        most_recent_schedule_time(cronjob("59 23 31 2 *"), T0, parse_standard("59 23 31 2 *"), True)
    assert next_schedule_time_duration(cronjob("59 23 31 2 *"), T0, parse_standard("59 23 31 2 *")) is None


def test_requeue_lands_just_after_the_next_activation() -> None:
    schedule = parse_standard("*/5 * * * *")
    after = next_schedule_time_duration(cronjob(last=T0), T0 + timedelta(minutes=2), schedule)
    assert after == pytest.approx(180.1)
    # Missed activations since the last one: count from now.
    after = next_schedule_time_duration(cronjob(last=T0), T0 + timedelta(minutes=12), schedule)
    assert after == pytest.approx(180.1)


def test_job_from_template() -> None:
    cj = cronjob(timeZone="Europe/Berlin")
    job = job_from_template(cj, T0)
    assert job["metadata"]["name"] == f"cj-{int(T0.timestamp()) // 60}" == job_name(cj, T0)
    assert job["metadata"]["labels"] == {"app": "x"}
    assert job["metadata"]["annotations"] == {
        "a": "b",
        SCHEDULED_TIMESTAMP_ANNOTATION: "2026-03-01T11:00:00+01:00",
    }
    ref = job["metadata"]["ownerReferences"][0]
    assert ref == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "cj",
        "uid": "cj-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job["spec"] == cj["spec"]["jobTemplate"]["spec"]
    assert job_from_template(cronjob(), T0)["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == (
        "2026-03-01T10:00:00Z"
    )


def test_go_time_formats() -> None:
    assert go_rfc3339(T0) == "2026-03-01T10:00:00Z"
    assert go_rfc1123z(T0) == "Sun, 01 Mar 2026 10:00:00 +0000"


def test_jobs_sort_by_start_time_then_name() -> None:
    def job(name: str, start: str | None) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"startTime": start} if start else {}}

    jobs = [
        job("c", None),
        job("b", "2026-01-01T00:00:01Z"),
        job("a", "2026-01-01T00:00:01Z"),
        job("d", "2025-01-01T00:00:00Z"),
    ]
    assert [j["metadata"]["name"] for j in sorted(jobs, key=by_job_start_time)] == ["d", "a", "b", "c"]


# -- the controller against an in-memory API ------------------------------------------------------


class FakeClient:
    """Just the calls the CronJob controller makes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.rv = 100

    def put(self, rp: ResourcePath, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        self.objects[(rp.plural, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", rp.plural, name))
        found = self.objects.get((rp.plural, namespace or "", name))
        if found is None:
            raise errors.NotFound(message=f'{rp.plural} "{name}" not found')
        return copy.deepcopy(found)

    async def create(
        self, rp: ResourcePath, obj: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("create", rp.plural, obj["metadata"]["name"]))
        if (rp.plural, namespace or "", obj["metadata"]["name"]) in self.objects:
            raise errors.AlreadyExists(message="exists")
        return self.put(rp, obj)

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> None:
        self.calls.append(("delete", rp.plural, name))
        self.objects.pop((rp.plural, namespace or "", name), None)

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, ""))
        assert method == "PUT"
        assert path.endswith("/status")
        return self.put(R.CRONJOBS, body)


class Harness:
    def __init__(self, now: datetime) -> None:
        self.client = FakeClient()
        self.clock = FakeClock(now)
        self.broadcaster = EventBroadcaster(self.client, clock=self.clock)  # type: ignore[arg-type]
        ctx = ControllerContext(
            client=self.client,  # type: ignore[arg-type]
            informers=InformerFactory(self.client),  # type: ignore[arg-type]
            recorder=self.broadcaster.recorder("cronjob"),
            clock=self.clock,
        )
        self.controller = CronJobController(ctx)

    def add(self, rp: ResourcePath, obj: dict[str, Any]) -> dict[str, Any]:
        stored = self.client.put(rp, obj)
        informer = self.controller.jobs if rp == R.JOBS else self.controller.cronjobs
        informer.apply("ADDED", stored)
        return stored

    def sync_informers(self) -> None:
        for (plural, _ns, _name), obj in self.client.objects.items():
            informer = self.controller.jobs if plural == "jobs" else self.controller.cronjobs
            informer.apply("MODIFIED", copy.deepcopy(obj))
        for key in list(self.controller.jobs.keys()):
            ns, name = key.split("/")
            if ("jobs", ns, name) not in self.client.objects:
                self.controller.jobs.apply("DELETED", {"metadata": {"name": name, "namespace": ns}})

    def reasons(self) -> list[str]:
        out = []
        while not self.broadcaster._queue.empty():
            out.append(self.broadcaster._queue.get_nowait()["reason"])
        return out

    def cj(self) -> dict[str, Any]:
        return self.client.objects[("cronjobs", "ns", "cj")]

    def jobs(self) -> list[str]:
        return sorted(name for (plural, _ns, name) in self.client.objects if plural == "jobs")


def finished(job: dict[str, Any], kind: str, start: datetime) -> dict[str, Any]:
    job = copy.deepcopy(job)
    job["status"] = {
        "startTime": rfc3339(start),
        "conditions": [{"type": kind, "status": "True", "lastTransitionTime": rfc3339(start)}],
    }
    if kind == "Complete":
        job["status"]["completionTime"] = rfc3339(start + timedelta(seconds=30))
    return job


async def test_controller_creates_the_due_job_once_and_requeues() -> None:
    h = Harness(T0 + timedelta(minutes=5, seconds=1))
    h.add(R.CRONJOBS, cronjob())
    after = await h.controller.reconcile("ns/cj")
    assert after == pytest.approx(299.1)
    name = job_name(h.cj(), T0 + timedelta(minutes=5))
    assert h.jobs() == [name]
    status = h.cj()["status"]
    assert status["lastScheduleTime"] == rfc3339(T0 + timedelta(minutes=5))
    assert [ref["name"] for ref in status["active"]] == [name]
    assert h.reasons() == ["SuccessfulCreate"]
    h.sync_informers()
    # The same activation again: nothing new.
    await h.controller.reconcile("ns/cj")
    assert h.jobs() == [name]


async def test_forbid_skips_while_a_job_runs_and_replace_replaces_it() -> None:
    h = Harness(T0 + timedelta(minutes=5, seconds=1))
    h.add(R.CRONJOBS, cronjob(concurrencyPolicy="Forbid"))
    await h.controller.reconcile("ns/cj")
    first = h.jobs()
    h.sync_informers()
    h.reasons()
    h.clock.advance(300)
    await h.controller.reconcile("ns/cj")
    assert h.jobs() == first
    assert h.reasons() == ["JobAlreadyActive"]

    cj = copy.deepcopy(h.cj())
    cj["spec"]["concurrencyPolicy"] = "Replace"
    h.add(R.CRONJOBS, cj)
    await h.controller.reconcile("ns/cj")
    assert len(h.jobs()) == 1
    assert h.jobs() != first
    assert h.reasons() == ["SuccessfulDelete", "SuccessfulCreate"]


async def test_finished_jobs_leave_active_and_history_is_trimmed() -> None:
    h = Harness(T0 + timedelta(hours=1, seconds=1))
    h.add(R.CRONJOBS, cronjob(last=T0 + timedelta(hours=1)))
    for i in range(5):
        start = T0 + timedelta(minutes=5 * i)
        job = job_from_template(h.cj(), start)
        h.add(R.JOBS, finished(job, "Complete", start))
    failed_start = T0 + timedelta(minutes=40)
    for i in range(2):
        job = job_from_template(h.cj(), failed_start + timedelta(minutes=5 * i))
        h.add(R.JOBS, finished(job, "Failed", failed_start + timedelta(minutes=5 * i)))
    await h.controller.reconcile("ns/cj")
    remaining = h.jobs()
    # Three newest successes and the newest failure stay.
    assert len(remaining) == 4
    assert job_name(h.cj(), T0) not in remaining
    assert job_name(h.cj(), failed_start + timedelta(minutes=5)) in remaining
    assert h.cj()["status"]["lastSuccessfulTime"] == rfc3339(T0 + timedelta(minutes=20, seconds=30))
    assert h.reasons().count("SuccessfulDelete") == 3


async def test_missed_deadline_suspend_and_bad_time_zone() -> None:
    h = Harness(T0 + timedelta(minutes=7))
    # The 10:05 activation is two minutes late with a one-minute deadline: it is not run, and
    # the controller waits for 10:10.
    h.add(R.CRONJOBS, cronjob(deadline=60))
    assert await h.controller.reconcile("ns/cj") == pytest.approx(180.1)
    assert h.jobs() == []

    h.add(R.CRONJOBS, cronjob(suspend=True))
    assert await h.controller.reconcile("ns/cj") is None
    assert h.jobs() == []

    h.add(R.CRONJOBS, cronjob(timeZone="Mars/Olympus"))
    assert await h.controller.reconcile("ns/cj") is None
    assert h.jobs() == []
    assert h.reasons() == ["UnknownTimeZone"]


async def test_a_job_that_went_missing_leaves_the_active_list() -> None:
    h = Harness(T0 + timedelta(minutes=6))
    cj = cronjob(last=T0 + timedelta(minutes=5))
    cj["status"]["active"] = [{"kind": "Job", "name": "gone", "namespace": "ns", "uid": "gone-uid"}]
    h.add(R.CRONJOBS, cj)
    await h.controller.reconcile("ns/cj")
    assert "active" not in h.cj()["status"]
    assert h.reasons() == ["MissingJob"]


async def test_requeue_runs_through_the_fake_clock() -> None:
    h = Harness(T0 + timedelta(seconds=30))
    h.add(R.CRONJOBS, cronjob())
    key = await h.controller.queue.get()
    await h.controller.process(key)
    h.controller.queue.done(key)
    assert h.jobs() == []
    delays = asyncio.create_task(h.controller.queue.run_delays())
    try:
        h.clock.advance(269)
        await asyncio.sleep(0.01)
        assert len(h.controller.queue) == 0
        h.clock.advance(1.2)  # 10:05:00 plus the 100 ms padding
        for _ in range(100):
            await asyncio.sleep(0)
            if len(h.controller.queue):
                break
        assert len(h.controller.queue) == 1
    finally:
        h.controller.queue.shutdown()
        await delays
