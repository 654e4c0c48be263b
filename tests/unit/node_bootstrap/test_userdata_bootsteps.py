"""The bootstrap steps an instance plays from its user-data, and their reports to the Machine."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from controlplane.api import errors
from node_bootstrap.agent.bootsteps import (
    MACHINES,
    BootProgress,
    BootState,
    MachineReporter,
    StepFault,
    StepReport,
    StepState,
    boot_instance,
    failure_log,
    log_tail,
    play_steps,
    status_patch,
    success_log,
)
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.agent.userdata import CAPinError, InstanceFacts
from node_bootstrap.cloudinit.joinconfig import MachineRef, Step
from node_bootstrap.cloudinit.read import read_user_data
from tests.unit.node_bootstrap.fakes import FakeApi
from tests.unit.node_bootstrap.userdata_kit import STEPS, make_ca, pin_of, user_data

FACTS = InstanceFacts("i-00000000000000001", "local-1a", "local-1", "10.0.0.5", "local.small")
MACHINE = "pool-a-0"


def fake_api_with_machine() -> FakeApi:
    api = FakeApi()
    api.put_object(
        MACHINES.plural,
        {"apiVersion": "infra.pinnace.dev/v1alpha1", "kind": "Machine", "metadata": {"name": MACHINE}},
    )
    return api


def bootstrap_of(api: FakeApi) -> dict:  # type: ignore[type-arg]
    obj = api.obj(MACHINES.plural, MACHINE)
    assert obj is not None
    return obj["status"]["bootstrap"]


def test_patch_body_is_the_whole_bootstrap_object() -> None:
    done = StepReport("a", StepState.SUCCEEDED, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "ok")
    running = StepReport("b", StepState.RUNNING, "2026-01-01T00:00:01Z")
    # as cloudinit/runner.py sends it: failedStep null (a merge patch then removes any), completed false
    assert status_patch([done, running]) == {
        "status": {
            "bootstrap": {
                "steps": [
                    {
                        "name": "a",
                        "state": "Succeeded",
                        "startedAt": "2026-01-01T00:00:00Z",
                        "finishedAt": "2026-01-01T00:00:01Z",
                        "logTail": "ok",
                    },
                    {"name": "b", "state": "Running", "startedAt": "2026-01-01T00:00:01Z"},
                ],
                "failedStep": None,
                "completed": False,
            }
        }
    }
    failed = status_patch([done], failed_step="a")["status"]["bootstrap"]
    assert failed["failedStep"] == "a" and failed["completed"] is False
    assert status_patch([done], completed=True)["status"]["bootstrap"]["completed"] is True


def test_log_tail_keeps_the_last_lines_and_bytes() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    assert log_tail(text).splitlines() == [f"line {i}" for i in range(80, 100)]
    assert len(log_tail("x" * 5000).encode()) == 2048


async def test_every_step_is_reported_running_then_succeeded() -> None:
    api = fake_api_with_machine()
    join = read_user_data(user_data()).join
    clock = FakeClock()
    seen: list[str] = []
    result = await play_steps(join, MachineReporter(api, join.machine), clock=clock, on_step=seen.append)
    assert result.succeeded and seen == [s.name for s in STEPS]
    status = bootstrap_of(api)
    assert [(s["name"], s["state"]) for s in status["steps"]] == [(s.name, "Succeeded") for s in STEPS]
    assert status["completed"] is True and status.get("failedStep") is None
    patches = api.calls_of("patch", "machines/status")
    assert len(patches) == 2 * len(STEPS) + 1
    first = patches[0][3]["status"]["bootstrap"]["steps"]
    assert [(s["name"], s["state"]) for s in first] == [(STEPS[0].name, "Running")]
    # each report is the whole object: the second step's Running report repeats the first step
    assert [s["state"] for s in patches[2][3]["status"]["bootstrap"]["steps"]] == ["Succeeded", "Running"]
    kubelet = next(s for s in status["steps"] if s["name"] == "install-kubelet")
    assert "Setting up kube-proxy ..." in kubelet["logTail"]
    assert "Setting up conntrack ..." in kubelet["logTail"]


async def test_a_failed_step_stops_the_boot_with_its_log_tail() -> None:
    api = fake_api_with_machine()
    join = read_user_data(user_data()).join
    result = await play_steps(
        join, MachineReporter(api, join.machine), clock=FakeClock(), fault=StepFault("install-kubelet")
    )
    assert not result.succeeded and result.failed_step == "install-kubelet"
    status = bootstrap_of(api)
    assert status["failedStep"] == "install-kubelet"
    assert status["completed"] is False
    assert [(s["name"], s["state"]) for s in status["steps"]] == [
        ("configure-kernel", "Succeeded"),
        ("install-containerd", "Succeeded"),
        ("install-kubelet", "Failed"),
    ]
    assert status["steps"][-1]["logTail"].endswith(
        "E: Unable to locate package kubelet\nstep install-kubelet failed: exit status 100"
    )
    assert status["steps"][-1]["finishedAt"]


async def test_step_timing_runs_on_the_clock() -> None:
    api = fake_api_with_machine()
    join = read_user_data(user_data()).join
    clock = FakeClock()
    task = asyncio.create_task(
        play_steps(join, MachineReporter(api, join.machine), clock=clock, step_seconds=30.0)
    )
    for _ in range(len(STEPS)):
        while clock.sleepers == 0:
            await asyncio.sleep(0)
        clock.advance(30.0)
    result = await task
    steps = result.steps
    assert steps[0].started_at != steps[0].finished_at
    assert steps[1].started_at == steps[0].finished_at


@pytest.mark.parametrize(
    "error",
    [
        errors.NotFound(message='machines "pool-a-0" not found'),
        errors.Unauthorized(message="Unauthorized"),
        errors.Forbidden(message="forbidden"),
    ],
)
async def test_reporting_is_best_effort(error: errors.StatusError, caplog: pytest.LogCaptureFixture) -> None:
    api = fake_api_with_machine()
    api.fail_next["patch machines"] = error
    join = read_user_data(user_data()).join
    reporter = MachineReporter(api, join.machine)
    with caplog.at_level(logging.WARNING):
        result = await play_steps(join, reporter, clock=FakeClock())
    assert result.succeeded
    assert reporter.refused == error.code
    assert f"({error.code})" in caplog.text or str(error.code) in caplog.text
    assert bootstrap_of(api)["completed"] is True  # the later reports went through


async def test_a_missing_machine_does_not_stop_the_boot() -> None:
    api = FakeApi()  # no Machine at all
    join = read_user_data(user_data()).join
    reporter = MachineReporter(api, MachineRef("nobody"))
    result = await play_steps(join, reporter, clock=FakeClock())
    assert result.succeeded and reporter.refused == 404 and reporter.reported == 0


def test_failure_logs_look_like_the_commands() -> None:
    assert failure_log(STEPS[1]) == (
        "Reading package lists...\nBuilding dependency tree...\nReading state information...\n"
        "E: Unable to locate package containerd",
        100,
    )
    assert "Job for kubelet.service failed" in failure_log(STEPS[3])[0]
    curl = Step("fetch-key", "", "curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.33/deb/Release.key -o k\n")
    assert failure_log(curl) == ("curl: (22) The requested URL returned error: 404", 22)
    update = Step("refresh", "", "apt-get update\n")
    assert "E: Failed to fetch" in failure_log(update)[0]
    assert "Created symlink" in success_log(STEPS[3])


async def test_boot_stops_at_a_failed_step_and_stays_failed(tmp_path: Path) -> None:
    api = fake_api_with_machine()
    data = user_data(server="https://127.0.0.1:9")
    progress = BootProgress()
    result = await boot_instance(
        data,
        FACTS,
        data_dir=tmp_path,
        stop=asyncio.Event(),
        clock=FakeClock(),
        fault=StepFault("install-containerd", log="E: Sub-process /usr/bin/dpkg returned an error code (1)"),
        progress=progress,
        reporter_api=api,
    )
    assert not result.succeeded
    assert progress.state is BootState.FAILED and progress.step == "install-containerd"
    assert bootstrap_of(api)["steps"][-1]["logTail"] == (
        "E: Sub-process /usr/bin/dpkg returned an error code (1)\nstep install-containerd failed: exit status 1"
    )
    home = tmp_path / FACTS.instance_id
    assert (home / "rootfs/etc/pinnace/bootstrap.json").exists()  # write_files ran
    assert not (home / "rootfs/var/lib/pinnace/bootstrap-complete").exists()
    assert not (home / "pki").exists()  # never asked for a certificate
    # a second boot of the same instance does not replay the steps (cloud-init runs once)
    before = len(api.calls)
    again = await boot_instance(
        data, FACTS, data_dir=tmp_path, stop=asyncio.Event(), clock=FakeClock(), reporter_api=api
    )
    assert not again.succeeded and again.failed_step == "install-containerd"
    assert len(api.calls) == before


async def test_a_ca_that_is_not_pinned_reports_nothing(tmp_path: Path) -> None:
    api = fake_api_with_machine()
    data = user_data(ca_pem=make_ca("evil"), pins=[pin_of(make_ca("real"))])
    with pytest.raises(CAPinError):
        await boot_instance(
            data, FACTS, data_dir=tmp_path, stop=asyncio.Event(), clock=FakeClock(), reporter_api=api
        )
    assert api.calls == []  # the token never left the instance


async def test_a_stop_during_the_steps_powers_the_instance_off(tmp_path: Path) -> None:
    api = fake_api_with_machine()
    clock = FakeClock()
    stop = asyncio.Event()
    progress = BootProgress()
    task = asyncio.create_task(
        boot_instance(
            user_data(),
            FACTS,
            data_dir=tmp_path,
            stop=stop,
            clock=clock,
            progress=progress,
            step_seconds=60.0,
            reporter_api=api,
        )
    )
    while clock.sleepers == 0:
        await asyncio.sleep(0)
    assert progress.state is BootState.BOOTSTRAPPING and progress.step == STEPS[0].name
    stop.set()
    result = await asyncio.wait_for(task, 5)
    assert not result.succeeded and progress.state is BootState.STOPPED
    root = tmp_path / FACTS.instance_id / "rootfs/var/lib/pinnace"
    assert not (root / "bootstrap-failed").exists() and not (root / "bootstrap-complete").exists()
    assert [s["state"] for s in bootstrap_of(api)["steps"]] == ["Running"]
