"""Fleet: which instances boot, which stay down, and how failures are held back (no server here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from node_bootstrap.agent.bootsteps import BootState
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.fleet import BootFault, BootFaults, BootTarget, Fleet
from tests.unit.node_bootstrap.fakes import settle, tick
from tests.unit.node_bootstrap.userdata_kit import make_ca, pin_of, user_data


def target(instance_id: str, name: str = "", state: str = "running") -> BootTarget:
    return BootTarget(
        instance_id, "local-1a", "local-1", "10.0.0.9", "local.small", state, name or instance_id
    )


class FakeSource:
    def __init__(self) -> None:
        self.instances: dict[str, BootTarget] = {}
        self.data: dict[str, bytes] = {}
        self.user_data_calls: list[str] = []
        self.fail_list = 0

    def add(self, t: BootTarget, data: bytes) -> None:
        self.instances[t.instance_id] = t
        self.data[t.instance_id] = data

    async def list_instances(self) -> list[BootTarget]:
        if self.fail_list:
            self.fail_list -= 1
            raise ConnectionError("the cloud is down")
        return list(self.instances.values())

    async def user_data(self, instance_id: str) -> bytes:
        self.user_data_calls.append(instance_id)
        return self.data[instance_id]


def test_boot_fault_parse() -> None:
    assert BootFault.parse("install-kubelet") == BootFault("install-kubelet", "*", 1)
    assert BootFault.parse("install-kubelet@workers-*") == BootFault("install-kubelet", "workers-*", 1)
    assert BootFault.parse("sysctl@w-*:3") == BootFault("sysctl", "w-*", 3)
    assert BootFault.parse("sysctl:2") == BootFault("sysctl", "*", 2)
    with pytest.raises(ValueError, match="STEP"):
        BootFault.parse("@w-*")


def test_faults_hit_the_first_matching_instances_once_each() -> None:
    faults = BootFaults([BootFault("install-kubelet", "pool-a-*", count=2)])
    assert faults.for_instance(target("i-1", "pool-b-0")) is None
    first = faults.for_instance(target("i-2", "pool-a-0"))
    assert first is not None and first.step == "install-kubelet"
    assert faults.for_instance(target("i-2", "pool-a-0")) == first  # the same instance, the same fate
    assert faults.for_instance(target("i-3", "pool-a-1")) is not None
    assert faults.for_instance(target("i-4", "pool-a-2")) is None  # two used up


async def run_fleet(fleet: Fleet) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    await settle()
    return stop, task


async def finish(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_bad_user_data_is_retried_with_backoff_not_in_a_hot_loop(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource()
    source.add(target("i-bad"), b"#!/bin/sh\necho not ours\n")
    fleet = Fleet(
        source, data_dir=tmp_path, clock=clock, poll_interval=1.0, retry_initial=10.0, retry_max=40.0
    )
    stop, task = await run_fleet(fleet)
    try:
        assert fleet.state("i-bad") is BootState.ERROR
        assert "#cloud-config" in fleet.booted["i-bad"].message
        await tick(clock, 9)
        assert source.user_data_calls == ["i-bad"]  # nine polls, no retry yet
        await tick(clock, 2)
        assert source.user_data_calls == ["i-bad"] * 2
        await tick(clock, 18)  # the retry at t=10 failed: the next waits 20 s, until t=30
        assert len(source.user_data_calls) == 2
        await tick(clock, 2)
        assert len(source.user_data_calls) == 3
    finally:
        await finish(stop, task)


async def test_a_refused_ca_is_an_error_of_that_instance_only(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource()
    ca = make_ca()
    source.add(target("i-evil"), user_data(ca_pem=ca, pins=[pin_of(make_ca("other"))], machine=None))
    source.add(
        target("i-failing", "pool-a-0"), user_data(ca_pem=ca, machine=None, server="https://127.0.0.1:9")
    )
    source.add(target("i-stopped", state="stopped"), user_data(machine=None))
    faults = BootFaults([BootFault("install-containerd", "pool-a-*")])
    fleet = Fleet(source, data_dir=tmp_path, clock=clock, poll_interval=1.0, faults=faults)
    stop, task = await run_fleet(fleet)
    try:
        for _ in range(20):
            await settle()
            if fleet.state("i-failing") is BootState.FAILED:
                break
            await asyncio.sleep(0.01)
        assert fleet.state("i-evil") is BootState.ERROR
        assert "refusing to join" in fleet.booted["i-evil"].message
        assert fleet.state("i-failing") is BootState.FAILED
        assert fleet.booted["i-failing"].step == "install-containerd"
        assert fleet.state("i-stopped") is None  # not running: not booted
        await tick(clock, 30)
        # a failed bootstrap is not replayed; the refused CA is retried after its backoff
        assert source.user_data_calls.count("i-failing") == 1
        assert source.user_data_calls.count("i-evil") > 1
        assert "i-stopped" not in source.user_data_calls
    finally:
        await finish(stop, task)
    assert (
        tmp_path / "i-failing/rootfs/var/lib/pinnace/bootstrap-failed"
    ).read_text() == "install-containerd\n"


async def test_the_fleet_survives_a_cloud_that_does_not_answer(tmp_path: Path) -> None:
    clock = FakeClock()
    source = FakeSource()
    source.fail_list = 2
    source.add(target("i-x"), b"garbage")
    fleet = Fleet(source, data_dir=tmp_path, clock=clock, poll_interval=1.0)
    stop, task = await run_fleet(fleet)
    try:
        assert fleet.state("i-x") is None
        await tick(clock, 2)
        assert fleet.state("i-x") is BootState.ERROR
    finally:
        await finish(stop, task)
