"""The event recorder (client-go tools/record/event.go): what reaches the API server, against an
in-memory client and a FakeClock."""

from __future__ import annotations

import asyncio
import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.runtime import EventBroadcaster, FakeClock, R, rfc3339
from controlplane.controllers.runtime.event_correlator import AGGREGATE_MESSAGE_PREFIX
from controlplane.controllers.runtime.events import MAX_QUEUED_EVENTS, STRATEGIC_MERGE_PATCH

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class FakeEvents:
    """Just enough of Client for events: create and patch, with injectable failures."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.failures: list[BaseException] = []
        self._rv = itertools.count(1)

    def _fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def create(
        self, rp: ResourcePath, obj: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        assert rp == R.EVENTS
        self.calls.append(("create", obj["metadata"]["name"], copy.deepcopy(obj)))
        self._fail()
        key = (str(namespace), obj["metadata"]["name"])
        if key in self.objects:
            raise errors.AlreadyExists.for_object("events", "", key[1])
        assert "resourceVersion" not in obj["metadata"]
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def patch(
        self, rp: ResourcePath, name: str, patch: Any, namespace: str | None = None, *, patch_type: str = ""
    ) -> dict[str, Any]:
        assert rp == R.EVENTS
        assert patch_type == STRATEGIC_MERGE_PATCH
        self.calls.append(("patch", name, copy.deepcopy(patch)))
        self._fail()
        key = (str(namespace), name)
        if key not in self.objects:
            raise errors.NotFound.for_object("events", "", name)
        self.objects[key].update(patch)
        self.objects[key]["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(self.objects[key])

    def stored(self) -> list[dict[str, Any]]:
        return list(self.objects.values())


def rs(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "3"},
    }


def setup() -> tuple[FakeEvents, FakeClock, EventBroadcaster]:
    client = FakeEvents()
    clock = FakeClock(T0)
    return client, clock, EventBroadcaster(client, clock=clock, host="cp-1")  # type: ignore[arg-type]


async def test_an_event_is_created_as_upstream_makes_it() -> None:
    client, clock, b = setup()
    clock.advance(0.25)
    b.recorder("replicaset-controller").event(rs(), "Normal", "SuccessfulCreate", "Created pod: web-a")
    await b.flush()
    ((op, name, body),) = client.calls
    nanos = int((T0 + timedelta(seconds=0.25)).timestamp() * 10**6) * 1000
    assert (op, name) == ("create", f"web.{nanos:x}")
    assert body["metadata"] == {"name": name, "namespace": "ns"}
    assert body["involvedObject"] == {
        "kind": "ReplicaSet",
        "namespace": "ns",
        "name": "web",
        "uid": "uid-web",
        "apiVersion": "apps/v1",
        "resourceVersion": "3",
    }
    assert body["source"] == {"component": "replicaset-controller", "host": "cp-1"}
    assert (body["reportingComponent"], body["reportingInstance"]) == ("replicaset-controller", "cp-1")
    assert body["count"] == 1
    assert body["firstTimestamp"] == body["lastTimestamp"] == rfc3339(clock.now())


async def test_timestamps_are_taken_when_recorded_not_when_written() -> None:
    client, clock, b = setup()
    b.recorder("c").event(rs(), "Normal", "R", "m")
    clock.advance(5)
    await b.flush()
    assert client.calls[0][2]["firstTimestamp"] == rfc3339(T0)


async def test_cluster_scoped_objects_events_go_to_default_without_host() -> None:
    client = FakeEvents()
    b = EventBroadcaster(client, clock=FakeClock(T0))  # type: ignore[arg-type]
    b.recorder("node-controller").event({"kind": "Node", "metadata": {"name": "n1"}}, "Normal", "R", "m")
    await b.flush()
    ((_, _, body),) = client.calls
    assert body["metadata"]["namespace"] == "default"
    assert body["source"] == {"component": "node-controller"}
    assert "reportingInstance" not in body


async def test_a_repeat_is_a_strategic_patch_of_count_last_timestamp_and_message() -> None:
    client, clock, b = setup()
    rec = b.recorder("kubelet")
    rec.event(rs(), "Warning", "BackOff", "Back-off restarting")
    await b.flush()
    clock.advance(20)
    rec.event(rs(), "Warning", "BackOff", "Back-off restarting")
    rec.event(rs(), "Warning", "BackOff", "Back-off restarting")
    await b.flush()
    first_name = client.calls[0][1]
    assert [c[:2] for c in client.calls] == [
        ("create", first_name),
        ("patch", first_name),
        ("patch", first_name),
    ]
    assert client.calls[2][2] == {
        "count": 3,
        "lastTimestamp": rfc3339(clock.now()),
        "message": "Back-off restarting",
    }
    (stored,) = client.stored()
    assert stored["count"] == 3
    assert stored["firstTimestamp"] == rfc3339(T0)


async def test_a_patch_of_a_vanished_event_recreates_it_with_name_and_count() -> None:
    client, _, b = setup()
    rec = b.recorder("c")
    rec.event(rs(), "Normal", "R", "m")
    await b.flush()
    name = client.calls[0][1]
    client.objects.clear()  # compacted away or deleted
    rec.event(rs(), "Normal", "R", "m")
    await b.flush()
    assert [c[:2] for c in client.calls[1:]] == [("patch", name), ("create", name)]
    (stored,) = client.stored()
    assert stored["count"] == 2


async def test_a_replicaset_creating_100_pods_writes_25_times() -> None:
    client, clock, b = setup()
    rec = b.recorder("replicaset-controller")
    for i in range(100):
        rec.event(rs(), "Normal", "SuccessfulCreate", f"Created pod: web-{i:03}")
    await b.flush()
    creates = [c for c in client.calls if c[0] == "create"]
    patches = [c for c in client.calls if c[0] == "patch"]
    # 9 plain events, the 10th starts the aggregate, the 15 next patch it; the spam filter's
    # burst of 25 per object drops the other 75
    assert (len(creates), len(patches)) == (10, 15)
    assert b.spam_filtered == 75
    assert b.dropped == 0
    events = sorted(client.stored(), key=lambda e: e["metadata"]["name"])
    combined = [e for e in events if e["message"].startswith(AGGREGATE_MESSAGE_PREFIX)]
    (agg,) = combined
    assert agg["count"] == 16
    assert agg["message"] == AGGREGATE_MESSAGE_PREFIX + "Created pod: web-024"
    assert sorted(e["message"] for e in events if e is not agg) == [
        f"Created pod: web-{i:03}" for i in range(9)
    ]
    # five minutes later one token is back: the aggregate's count catches up with every pod
    clock.advance(300)
    rec.event(rs(), "Normal", "SuccessfulCreate", "Created pod: web-100")
    await b.flush()
    assert client.calls[-1][:2] == ("patch", agg["metadata"]["name"])
    assert (
        client.objects[("ns", agg["metadata"]["name"])]["count"] == 92
    )  # the 91 aggregated before, and this one


async def test_server_rejections_are_not_retried() -> None:
    client, _, b = setup()
    client.failures.append(errors.Forbidden(message="no"))
    b.recorder("c").event(rs(), "Normal", "R", "m")
    stop = asyncio.Event()
    task = asyncio.create_task(b.run(stop))
    while not client.calls:
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(client.calls) == 1
    assert b.abandoned == 1
    assert client.stored() == []


async def test_transport_errors_are_retried_on_the_clock() -> None:
    client, clock, b = setup()
    client.failures += [OSError("connection refused"), ConnectionResetError("reset")]
    b.recorder("c").event(rs(), "Normal", "R", "m")
    stop = asyncio.Event()
    task = asyncio.create_task(b.run(stop))
    for tries in (1, 2):
        while clock.sleepers == 0:
            await asyncio.sleep(0)
        assert len(client.calls) == tries
        clock.advance(10)  # the first wait is a random part of 10 s, the next ones 10 s
    while not client.stored():
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [c[0] for c in client.calls] == ["create"] * 3
    assert len({c[1] for c in client.calls}) == 1
    assert b.abandoned == 0


async def test_retries_stop_after_twelve_tries() -> None:
    client, clock, b = setup()
    client.failures += [OSError("down")] * 20
    b.recorder("c").event(rs(), "Normal", "R", "m")
    stop = asyncio.Event()
    task = asyncio.create_task(b.run(stop))
    while b.abandoned == 0:
        while clock.sleepers == 0 and b.abandoned == 0:
            await asyncio.sleep(0)
        clock.advance(10)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(client.calls) == 12


async def test_stopping_ends_a_retry_wait() -> None:
    client, clock, b = setup()
    client.failures.append(OSError("down"))
    b.recorder("c").event(rs(), "Normal", "R", "m")
    stop = asyncio.Event()
    task = asyncio.create_task(b.run(stop))
    while clock.sleepers == 0:
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert b.abandoned == 1
    assert len(client.calls) == 1


async def test_flush_tries_once() -> None:
    client, _, b = setup()
    client.failures.append(OSError("down"))
    b.recorder("c").event(rs(), "Normal", "R", "m")
    await b.flush()
    assert len(client.calls) == 1
    assert b.abandoned == 1


async def test_a_full_queue_drops_events() -> None:
    client, _, b = setup()
    rec = b.recorder("c")
    for i in range(MAX_QUEUED_EVENTS + 5):
        rec.event(rs(f"o{i}"), "Normal", "R", "m")
    assert b.dropped == 5
    await b.flush()
    assert len(client.stored()) == MAX_QUEUED_EVENTS
