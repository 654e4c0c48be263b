"""The autoscaler's IO shell against a fake client: what it reads, the patches it sends, and
that a failed scale-down leaves no machine marked."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ccm.provisioning.api import ANNOTATION_DELETE_MACHINE
from ccm.provisioning.autoscaler.loop import MACHINES_PATH, NODEPOOLS_PATH, Autoscaler, run_autoscaler
from controlplane.api import errors
from controlplane.client import Client, ResourcePath
from controlplane.controllers.runtime import FakeClock
from controlplane.controllers.runtime import resources as R
from tests.unit.ccm.provisioning_autoscaler.builders import machine, node, pod, pool

Obj = dict[str, Any]


class FakeClient:
    def __init__(self, objects: dict[ResourcePath, list[Obj]]) -> None:
        self.objects = objects
        self.lists: list[str] = []
        self.patches: list[tuple[str, str, Any]] = []
        self.conflict_on: set[str] = set()

    async def list(self, rp: ResourcePath, namespace: str | None = None, **_: Any) -> Obj:
        self.lists.append(rp.plural)
        return {"items": [dict(o) for o in self.objects.get(rp, [])]}

    async def patch(
        self, rp: ResourcePath, name: str, body: Any, namespace: str | None = None, **_: Any
    ) -> Obj:
        self.patches.append((rp.plural, name, body))
        if (rp.plural, name) in {tuple(c.split("/")) for c in self.conflict_on}:
            raise errors.Conflict(message="the object has been modified")
        return {}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["kind"], reason, message))


def autoscaler(client: FakeClient, clock: FakeClock) -> tuple[Autoscaler, Recorder]:
    recorder = Recorder()
    return Autoscaler(client, recorder, clock), recorder  # type: ignore[arg-type]


async def test_nothing_but_pools_is_read_while_no_pool_autoscales() -> None:
    client = FakeClient({NODEPOOLS_PATH: [pool(enabled=False)]})
    scaler, _ = autoscaler(client, FakeClock())
    assert await scaler.run_once() is None
    assert client.lists == ["nodepools"]
    assert client.patches == []


async def test_scale_up_patches_replicas_under_the_read_resource_version() -> None:
    client = FakeClient(
        {
            NODEPOOLS_PATH: [pool(replicas=1)],
            MACHINES_PATH: [machine("m0", node="n0")],
            R.NODES: [node("n0")],
            R.PODS: [pod("filler", cpu="2", node_name="n0"), pod("web", cpu="1")],
        }
    )
    scaler, recorder = autoscaler(client, FakeClock())
    await scaler.run_once()
    assert client.patches == [
        ("nodepools", "workers", {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 2}})
    ]
    assert ("NodePool", "TriggeredScaleUp") in {(k, r) for k, r, _ in recorder.events}
    assert ("Pod", "TriggeredScaleUp", "pod triggered scale-up: [{workers 1->2 (max: 5)}]") in recorder.events


def _empty_pair() -> dict[ResourcePath, list[Obj]]:
    return {
        NODEPOOLS_PATH: [pool(replicas=2, min_replicas=1, delay="1m")],
        MACHINES_PATH: [machine("m0", node="n0"), machine("m1", node="n1")],
        R.NODES: [node("n0"), node("n1")],
        R.PODS: [pod("busy", node_name="n0")],
    }


async def test_scale_down_marks_the_machine_then_lowers_replicas_after_the_delay() -> None:
    client = FakeClient(_empty_pair())
    clock = FakeClock()
    scaler, recorder = autoscaler(client, clock)
    await scaler.run_once()
    assert client.patches == []
    clock.advance(timedelta(minutes=1).total_seconds())
    await scaler.run_once()
    annotate, lower = client.patches
    assert annotate[:2] == ("machines", "m1")
    assert annotate[2]["metadata"]["annotations"][ANNOTATION_DELETE_MACHINE]
    assert lower == ("nodepools", "workers", {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 1}})
    assert {(k, r) for k, r, _ in recorder.events} == {("NodePool", "ScaleDown"), ("Node", "ScaleDown")}


async def test_a_conflicting_scale_down_withdraws_its_mark() -> None:
    client = FakeClient(_empty_pair())
    client.conflict_on.add("nodepools/workers")
    clock = FakeClock()
    scaler, recorder = autoscaler(client, clock)
    await scaler.run_once()
    clock.advance(120)
    await scaler.run_once()
    assert [(plural, name) for plural, name, _ in client.patches] == [
        ("machines", "m1"),
        ("nodepools", "workers"),
        ("machines", "m1"),
    ]
    assert client.patches[-1][2] == {"metadata": {"annotations": {ANNOTATION_DELETE_MACHINE: None}}}
    assert recorder.events == []


async def test_run_autoscaler_passes_every_interval_until_stopped() -> None:
    client = FakeClient({NODEPOOLS_PATH: []})
    clock = FakeClock()
    stop = asyncio.Event()
    task = asyncio.create_task(run_autoscaler(client, stop, clock=clock, interval=5))  # type: ignore[arg-type]
    for _ in range(50):
        await asyncio.sleep(0)
    assert client.lists == ["nodepools"]
    clock.advance(5)
    for _ in range(50):
        await asyncio.sleep(0)
    assert client.lists == ["nodepools", "nodepools"]
    stop.set()
    await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("failure", [errors.ServiceUnavailable(message="down"), OSError("refused")])
async def test_a_failed_pass_is_logged_and_the_loop_goes_on(failure: Exception) -> None:
    class Failing(FakeClient):
        async def list(self, rp: ResourcePath, namespace: str | None = None, **_: Any) -> Obj:
            self.lists.append(rp.plural)
            raise failure

    client = Failing({})
    clock = FakeClock()
    stop = asyncio.Event()
    task = asyncio.create_task(run_autoscaler(client, stop, clock=clock, interval=5))  # type: ignore[arg-type]
    for _ in range(50):
        await asyncio.sleep(0)
    clock.advance(5)
    for _ in range(50):
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert client.lists == ["nodepools", "nodepools"]


def test_client_type_is_the_real_one() -> None:
    # run_autoscaler's signature is the contract helper C's run_provisioner calls.
    import inspect

    params = inspect.signature(run_autoscaler).parameters
    assert list(params) == ["client", "stop", "clock", "interval"]
    assert params["clock"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["interval"].default == 10.0
    assert Client.__name__ in str(params["client"].annotation)
