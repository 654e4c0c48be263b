"""The controller runtime against a real server: informers list and watch, leader election on a
real Lease hands over when the leader stops, and two `pinnace controller-manager` processes
elect exactly one leader."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from controlplane.api import errors
from controlplane.controllers.runtime import InformerFactory, LeaderElector, R
from tests.integration.conftest import REPO, ServerProcess
from tests.integration.controller_harness import client_for, eventually


async def test_informer_lists_then_follows_changes(bare_server: ServerProcess) -> None:
    ns = f"inf-{uuid.uuid4().hex[:6]}"
    async with client_for(bare_server) as client:
        await client.create(R.NAMESPACES, {"metadata": {"name": ns}})
        await client.create(R.CONFIGMAPS, {"metadata": {"name": "before"}, "data": {"a": "1"}}, ns)
        factory = InformerFactory(client)
        cms = factory.informer(R.CONFIGMAPS)
        events: list[tuple[str, str]] = []
        cms.add_handler(lambda ev, old, new: events.append((ev, (new or old or {})["metadata"]["name"])))
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            factory.start(tg, stop)
            await asyncio.wait_for(factory.wait_synced(), 10)
            assert cms.get(f"{ns}/before") is not None
            assert cms.get(f"{ns}/before")["kind"] == "ConfigMap"  # type: ignore[index]
            await client.create(R.CONFIGMAPS, {"metadata": {"name": "after"}}, ns)
            await client.patch(R.CONFIGMAPS, "before", {"data": {"a": "2"}}, ns)
            await client.delete(R.CONFIGMAPS, "after", ns)

            async def caught_up() -> bool:
                return ("DELETED", "after") in events and cms.get(f"{ns}/before")["data"]["a"] == "2"  # type: ignore[index]

            await eventually(caught_up, timeout=10)
            assert len(cms.by_index("namespace", ns)) == 1
            stop.set()
        assert ("ADDED", "before") in events and ("ADDED", "after") in events


async def test_leader_election_hands_over_when_the_leader_stops(bare_server: ServerProcess) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    async with client_for(bare_server) as client:
        a = LeaderElector(client, name, "a", lease_duration=3, renew_deadline=2, retry_period=0.2)
        b = LeaderElector(client, name, "b", lease_duration=3, renew_deadline=2, retry_period=0.2)
        leading: list[str] = []

        def leader(who: str) -> Callable[[asyncio.Event], Awaitable[None]]:
            async def lead(lost: asyncio.Event) -> None:
                leading.append(who)
                await lost.wait()

            return lead

        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        task_a = asyncio.create_task(a.run(stop_a, leader("a")))
        await eventually(lambda: _true(leading == ["a"]))
        task_b = asyncio.create_task(b.run(stop_b, leader("b")))
        await asyncio.sleep(1.0)
        assert leading == ["a"], "b must not lead while a renews"
        lease = await client.get(R.LEASES, name, "kube-system")
        assert lease["spec"]["holderIdentity"] == "a"
        assert lease["spec"]["leaseDurationSeconds"] == 3
        stop_a.set()
        await task_a  # releases the lease on the way out
        await eventually(lambda: _true(leading == ["a", "b"]), timeout=5)
        lease = await client.get(R.LEASES, name, "kube-system")
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] >= 1
        stop_b.set()
        await task_b


async def _true(value: bool) -> bool:
    return value


def _controller_manager(server: ServerProcess, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlplane",
            "--log-format",
            "text",
            "controller-manager",
            "--kubeconfig",
            str(server.kubeconfig),
            "--leader-elect-lease-duration",
            "3",
            "--leader-elect-renew-deadline",
            "2",
            "--leader-elect-retry-period",
            "0.3",
        ],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def test_two_controller_managers_elect_one_leader(bare_server: ServerProcess, tmp_path: Path) -> None:
    """Done-when 7: exactly one active; killing it hands over within the lease duration, and
    the new leader does not create pods twice."""
    ns = f"cm-{uuid.uuid4().hex[:6]}"
    async with client_for(bare_server) as client:
        await client.create(R.NAMESPACES, {"metadata": {"name": ns}})
        with contextlib.suppress(errors.NotFound):
            await client.delete(R.LEASES, "kube-controller-manager", "kube-system")
        first = _controller_manager(bare_server, tmp_path / "cm1.log")
        second = _controller_manager(bare_server, tmp_path / "cm2.log")
        try:

            async def holder() -> str:
                try:
                    lease = await client.get(R.LEASES, "kube-controller-manager", "kube-system")
                except errors.NotFound:
                    return ""
                return str(lease["spec"].get("holderIdentity") or "")

            leader = await eventually(holder, timeout=20)
            logs = [(tmp_path / "cm1.log"), (tmp_path / "cm2.log")]
            await eventually(
                lambda: _true(any("became the leader" in p.read_text() for p in logs)), timeout=10
            )
            await asyncio.sleep(1.5)
            leaders = [p for p in logs if "became the leader" in p.read_text()]
            assert len(leaders) == 1, "exactly one controller manager leads"
            await client.create(R.DEPLOYMENTS, _deployment("web", 5), ns)

            async def pods() -> list[dict[str, object]]:
                items: list[dict[str, object]] = (await client.list(R.PODS, ns))["items"]
                return items

            await eventually(lambda: _count(pods, 5), timeout=20)
            victim = first if leaders[0].name == "cm1.log" else second
            survivor_log = logs[1] if victim is first else logs[0]
            victim.kill()  # no release: the survivor must wait out the lease, then take over
            victim.wait(10)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await eventually(lambda: _true("became the leader" in survivor_log.read_text()), timeout=15)
            assert loop.time() - killed_at < 3 + 2, "hand-over within lease duration plus a retry"
            assert await holder() != leader
            # The new term starts from fresh caches: the five pods are adopted, not re-created.
            await client.patch(R.DEPLOYMENTS, "web", {"spec": {"replicas": 7}}, ns)
            await eventually(lambda: _count(pods, 7), timeout=20)
            await asyncio.sleep(1.0)
            assert len(await pods()) == 7, "no pod created twice across the hand-over"
            assert len((await client.list(R.REPLICASETS, ns))["items"]) == 1
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()  # never leave a stuck manager behind the test run
                        proc.wait(10)


async def _count(list_pods: Callable[[], Awaitable[list[dict[str, object]]]], expected: int) -> bool:
    return len(await list_pods()) == expected


def _deployment(name: str, replicas: int) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx"}]},
            },
        },
    }


async def test_informers_of_two_clients_share_watched_objects(bare_server: ServerProcess) -> None:
    """The controller manager and the scheduler of one process (two clients, two factories) hold
    one object per watched change, not one each."""
    ns = f"share-{uuid.uuid4().hex[:6]}"
    async with client_for(bare_server) as first, client_for(bare_server) as second:
        await first.create(R.NAMESPACES, {"metadata": {"name": ns}})
        a, b = InformerFactory(first).informer(R.CONFIGMAPS), InformerFactory(second).informer(R.CONFIGMAPS)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            for informer in (a, b):
                tg.create_task(informer.run(stop))
            await asyncio.wait_for(asyncio.gather(a.wait_synced(), b.wait_synced()), 10)
            await first.create(R.CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"k": "v"}}, ns)
            await first.patch(R.CONFIGMAPS, "cm", {"data": {"k": "w"}}, ns)

            async def both_see_the_patch() -> bool:
                return all((i.get(f"{ns}/cm") or {}).get("data") == {"k": "w"} for i in (a, b))

            await eventually(both_see_the_patch, timeout=10)
            assert a.get(f"{ns}/cm") is b.get(f"{ns}/cm")
            assert "managedFields" not in a.get(f"{ns}/cm")["metadata"]  # type: ignore[index]
            stop.set()
