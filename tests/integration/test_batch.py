"""Jobs, CronJobs, TTL-after-finished, pod GC and PodDisruptionBudgets against a real server
(`bare_server`), with the controllers running in-process. The test plays the kubelet: it marks
Job pods Succeeded or Failed through pods/status. Where time matters the controllers run on a
FakeClock, so a CronJob fires on its schedule without anyone waiting minutes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import Client, load_kubeconfig
from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.garbage_collector import GarbageCollector
from controlplane.controllers.job import JobController
from controlplane.controllers.podgc import PodGCController
from controlplane.controllers.runtime import ControllerConfig, FakeClock, Informer, R, RealClock, rfc3339
from controlplane.controllers.ttlafterfinished import TTLAfterFinishedController
from tests.integration.conftest import ServerProcess, kubectl_binaries
from tests.integration.controller_harness import client_for, eventually, running
from tests.integration.kubectl_helpers import Kubectl

Obj = dict[str, Any]

# Fast test settings: no batching delay, a 50 ms pod re-creation backoff.
FAST = ControllerConfig(extra={"job_sync_batch_period": 0.0, "job_pod_failure_backoff": 0.05})


@pytest.fixture
async def api(bare_server: ServerProcess) -> AsyncIterator[Client]:
    client = client_for(bare_server)
    yield client
    await client.close()


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"batch-{uuid.uuid4().hex[:8]}"
    await api.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def job_manifest(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": "busybox"}],
                }
            },
            **spec,
        },
    }


def _finished_status(pod: Obj, phase: str, exit_code: int) -> Obj:
    now = rfc3339(RealClock().now())
    return {
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                }
                for c in (pod.get("spec") or {}).get("containers") or []
            ],
        }
    }


# What the test kubelet does with a pod: (phase, exit code), or None to leave it running.
Outcome = Callable[[Obj], tuple[str, int] | None]


class JobKubelet:
    """Finishes the pods of one namespace as `outcome` says, and watches how many run at once."""

    def __init__(self, client: Client, namespace: str, outcome: Outcome) -> None:
        self.client = client
        self.namespace = namespace
        self.outcome = outcome
        self.seen: list[Obj] = []
        self.max_running = 0
        self._running: set[str] = set()
        self._done: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        informer = Informer(
            self.client, R.PODS, params={"fieldSelector": f"metadata.namespace={self.namespace}"}
        )
        informer.add_handler(self._on_event)
        try:
            await informer.run(stop)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, event: str, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        if pod is None:
            return
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if event == "DELETED" or phase in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
            self._running.discard(name)
            return
        if event == "ADDED":
            self.seen.append(pod)
        self._running.add(name)
        self.max_running = max(self.max_running, len(self._running))
        if name in self._done:
            return
        result = self.outcome(pod)
        if result is None:
            return
        self._done.add(name)
        task = asyncio.create_task(self._finish(pod, *result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, pod: Obj, phase: str, exit_code: int) -> None:
        await asyncio.sleep(0.05)
        with contextlib.suppress(errors.NotFound):
            await self.client.patch(
                R.PODS,
                pod["metadata"]["name"],
                _finished_status(pod, phase, exit_code),
                self.namespace,
                subresource="status",
            )


@contextlib.asynccontextmanager
async def kubelet(client: Client, namespace: str, outcome: Outcome) -> AsyncIterator[JobKubelet]:
    agent = JobKubelet(client, namespace, outcome)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def job_status(client: Client, ns: str, name: str) -> Obj:
    return dict((await client.get(R.JOBS, name, ns)).get("status") or {})


def condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


async def events(client: Client, ns: str, name: str) -> list[tuple[str, str]]:
    listed = await client.list(R.EVENTS, ns)
    return [
        (e["reason"], e["message"])
        for e in listed["items"]
        if e.get("involvedObject", {}).get("name") == name
    ]


async def pods_of(client: Client, ns: str) -> list[Obj]:
    return list((await client.list(R.PODS, ns))["items"])


# -- Job ----------------------------------------------------------------------------------------


async def test_job_runs_completions_with_parallelism(
    bare_server: ServerProcess, api: Client, ns: str
) -> None:
    async with (
        running(bare_server, [JobController], config=FAST),
        kubelet(api, ns, lambda pod: ("Succeeded", 0)) as agent,
    ):
        await api.create(R.JOBS, job_manifest("pi", completions=3, parallelism=2), ns)

        async def complete() -> Obj | None:
            status = await job_status(api, ns, "pi")
            return status if condition(status, "Complete") else None

        status = await eventually(complete)
        assert status["succeeded"] == 3
        assert "failed" not in status
        assert status["uncountedTerminatedPods"] == {}
        assert status["ready"] == 0
        assert status["terminating"] == 0
        assert status["startTime"] <= status["completionTime"]
        met = condition(status, "SuccessCriteriaMet")
        complete_cond = condition(status, "Complete")
        assert met is not None
        assert complete_cond is not None
        assert (met["reason"], met["message"]) == (
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        )
        assert (complete_cond["reason"], complete_cond["status"]) == ("CompletionsReached", "True")
        assert agent.max_running <= 2
        assert len(agent.seen) == 3

        job = await api.get(R.JOBS, "pi", ns)
        uid = job["metadata"]["uid"]
        pods = await pods_of(api, ns)
        assert len(pods) == 3
        for pod in pods:
            labels = pod["metadata"]["labels"]
            assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == uid
            assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "pi"
            assert pod["metadata"]["generateName"] == "pi-"
            # Counted, so released: no pod keeps the tracking finalizer.
            assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])
            ref = pod["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", uid, True)

        async def recorded() -> bool:
            seen = await events(api, ns, "pi")
            return ("Completed", "Job completed") in seen and sum(
                r == "SuccessfulCreate" for r, _ in seen
            ) == 3

        await eventually(recorded)


async def test_job_fails_past_its_backoff_limit(bare_server: ServerProcess, api: Client, ns: str) -> None:
    async with (
        running(bare_server, [JobController], config=FAST),
        kubelet(api, ns, lambda pod: ("Failed", 1)) as agent,
    ):
        await api.create(R.JOBS, job_manifest("flaky", backoffLimit=1), ns)

        async def failed() -> Obj | None:
            status = await job_status(api, ns, "flaky")
            return status if condition(status, "Failed") else None

        status = await eventually(failed)
        assert status["failed"] == 2
        assert "succeeded" not in status
        cond = condition(status, "Failed")
        target = condition(status, "FailureTarget")
        assert cond is not None
        assert target is not None
        assert (cond["reason"], cond["message"]) == (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        assert target["reason"] == "BackoffLimitExceeded"
        assert "completionTime" not in status
        assert len(agent.seen) == 2  # the first pod and one replacement, no more

        async def recorded() -> bool:
            return ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in await events(
                api, ns, "flaky"
            )

        await eventually(recorded)


async def test_indexed_job_tracks_completed_indexes(bare_server: ServerProcess, api: Client, ns: str) -> None:
    failed_once: set[str] = set()

    def outcome(pod: Obj) -> tuple[str, int]:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        if index == "2" and not failed_once:
            failed_once.add(index)
            return ("Failed", 1)
        return ("Succeeded", 0)

    async with running(bare_server, [JobController], config=FAST), kubelet(api, ns, outcome) as agent:
        await api.create(
            R.JOBS, job_manifest("idx", completions=5, parallelism=3, completionMode="Indexed"), ns
        )

        async def complete() -> Obj | None:
            status = await job_status(api, ns, "idx")
            return status if condition(status, "Complete") else None

        status = await eventually(complete)
        assert status["completedIndexes"] == "0-4"
        assert status["succeeded"] == 5
        assert status["failed"] == 1
        assert agent.max_running <= 3
        by_index: dict[str, list[Obj]] = {}
        for pod in agent.seen:
            meta = pod["metadata"]
            index = meta["annotations"]["batch.kubernetes.io/job-completion-index"]
            assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == index
            assert meta["generateName"] == f"idx-{index}-"
            assert pod["spec"]["hostname"] == f"idx-{index}"
            env = pod["spec"]["containers"][0]["env"]
            assert env[0]["name"] == "JOB_COMPLETION_INDEX"
            by_index.setdefault(index, []).append(pod)
        assert sorted(by_index) == ["0", "1", "2", "3", "4"]
        assert len(by_index["2"]) == 2  # the failed index ran again


async def test_pod_failure_policy_fails_the_job(bare_server: ServerProcess, api: Client, ns: str) -> None:
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]
    }
    async with (
        running(bare_server, [JobController], config=FAST),
        kubelet(api, ns, lambda pod: ("Failed", 42)),
    ):
        await api.create(R.JOBS, job_manifest("policy", backoffLimit=6, podFailurePolicy=policy), ns)

        async def failed() -> Obj | None:
            status = await job_status(api, ns, "policy")
            return status if condition(status, "Failed") else None

        status = await eventually(failed)
        cond = condition(status, "Failed")
        assert cond is not None
        assert cond["reason"] == "PodFailurePolicy"
        assert cond["message"].startswith("Container main for pod ")
        assert cond["message"].endswith("failed with exit code 42 matching FailJob rule at index 0")
        assert status["failed"] == 1


async def test_active_deadline_stops_a_running_job(bare_server: ServerProcess, api: Client, ns: str) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with (
        running(bare_server, [JobController], config=FAST, clock=clock),
        kubelet(api, ns, lambda pod: None),
    ):
        await api.create(
            R.JOBS, job_manifest("slow", parallelism=2, completions=2, activeDeadlineSeconds=30), ns
        )

        async def two_active() -> bool:
            return (await job_status(api, ns, "slow")).get("active") == 2

        await eventually(two_active)
        clock.advance(31)

        async def failed() -> Obj | None:
            status = await job_status(api, ns, "slow")
            return status if condition(status, "Failed") else None

        status = await eventually(failed)
        cond = condition(status, "Failed")
        assert cond is not None
        assert (cond["reason"], cond["message"]) == (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
        assert status["failed"] == 2
        assert "active" not in status
        # The running pods were deleted and, once counted, let go.
        await eventually(lambda: _no_pods(api, ns))


async def test_suspended_job_runs_nothing_until_resumed(
    bare_server: ServerProcess, api: Client, ns: str
) -> None:
    async with running(bare_server, [JobController], config=FAST), kubelet(api, ns, lambda pod: None):
        await api.create(R.JOBS, job_manifest("later", parallelism=2, completions=4, suspend=True), ns)

        async def suspended() -> Obj | None:
            status = await job_status(api, ns, "later")
            cond = condition(status, "Suspended")
            return status if cond and cond["status"] == "True" else None

        status = await eventually(suspended)
        cond = condition(status, "Suspended")
        assert cond is not None
        assert (cond["reason"], cond["message"]) == ("JobSuspended", "Job suspended")
        assert "startTime" not in status
        assert await pods_of(api, ns) == []

        job = await api.get(R.JOBS, "later", ns)
        job["spec"]["suspend"] = False
        await api.request("PUT", R.JOBS.url(ns, "later"), body=job)

        async def resumed() -> Obj | None:
            status = await job_status(api, ns, "later")
            cond = condition(status, "Suspended")
            return status if cond and cond["status"] == "False" and status.get("active") == 2 else None

        status = await eventually(resumed)
        cond = condition(status, "Suspended")
        assert cond is not None
        assert cond["reason"] == "JobResumed"
        assert status["startTime"]
        assert len(await pods_of(api, ns)) == 2


async def _no_pods(api: Client, ns: str) -> bool:
    return not await pods_of(api, ns)


# -- CronJob ------------------------------------------------------------------------------------


async def test_cronjob_fires_on_schedule_and_forbid_waits(
    bare_server: ServerProcess, api: Client, ns: str
) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with running(bare_server, [CronJobController], clock=clock):
        template = job_manifest("unused")
        manifest: Obj = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"metadata": {"labels": {"app": "tick"}}, "spec": template["spec"]},
            },
        }
        created = await api.create(R.CRONJOBS, manifest, ns)

        async def jobs() -> list[Obj]:
            return list((await api.list(R.JOBS, ns))["items"])

        await asyncio.sleep(0.3)
        assert await jobs() == []
        # Ten seconds past the minute after the creation, so that every later step lands at a
        # known second of its minute. (A fixed 61 s step from the real time made the test depend
        # on it: from second 59, the one-second step before the Job completes crossed into a
        # further minute, and the late activation came a minute later than asserted.)
        born = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        target = born.replace(second=10, microsecond=0) + timedelta(minutes=1)
        clock.advance((target - clock.now()).total_seconds())

        async def one_job() -> list[Obj]:
            return await jobs()

        first = (await eventually(one_job))[0]
        scheduled = first["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        assert scheduled == rfc3339(target.replace(second=0))
        minutes = int(target.timestamp()) // 60
        assert first["metadata"]["name"] == f"tick-{minutes}"
        assert first["metadata"]["labels"]["app"] == "tick"
        assert first["metadata"]["ownerReferences"][0]["kind"] == "CronJob"

        async def active_and_scheduled() -> Obj | None:
            status = (await api.get(R.CRONJOBS, "tick", ns)).get("status") or {}
            return status if status.get("active") and status.get("lastScheduleTime") == scheduled else None

        status = await eventually(active_and_scheduled)
        assert [ref["name"] for ref in status["active"]] == [first["metadata"]["name"]]

        # Still running at the next activation: Forbid skips it.
        clock.advance(60)

        async def skipped() -> bool:
            return any(r == "JobAlreadyActive" for r, _ in await events(api, ns, "tick"))

        await eventually(skipped)
        assert len(await jobs()) == 1

        # The first Job completes: the activation Forbid held back is still due (no
        # startingDeadlineSeconds), so it starts now, late, as upstream does. (The clock moves a
        # second first: Event names carry the clock's time, and two Events about one object at
        # the same fake instant would share a name.)
        clock.advance(1)
        done = rfc3339(clock.now())
        first["status"] = {
            "startTime": done,
            "completionTime": done,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": done},
                {"type": "Complete", "status": "True", "lastTransitionTime": done},
            ],
        }
        await api.request("PUT", R.JOBS.url(ns, first["metadata"]["name"], "status"), body=first)

        async def second_started() -> Obj | None:
            status = (await api.get(R.CRONJOBS, "tick", ns)).get("status") or {}
            active = [ref["name"] for ref in status.get("active") or []]
            return (
                status
                if status.get("lastSuccessfulTime") == done
                and active
                and first["metadata"]["name"] not in active
                else None
            )

        status = await eventually(second_started)
        assert len(await jobs()) == 2
        held_back = minutes + 1
        assert [ref["name"] for ref in status["active"]] == [f"tick-{held_back}"]

        async def recorded() -> bool:
            reasons = [r for r, _ in await events(api, ns, "tick")]
            return {"SuccessfulCreate", "JobAlreadyActive", "SawCompletedJob"} <= set(reasons)

        await eventually(recorded)


# -- TTL after finished -------------------------------------------------------------------------


async def test_ttl_deletes_a_finished_job(bare_server: ServerProcess, api: Client, ns: str) -> None:
    clock = FakeClock(datetime.now(UTC))
    # The garbage collector finishes the Foreground deletion the TTL controller asks for.
    async with running(bare_server, [TTLAfterFinishedController, GarbageCollector], clock=clock):
        job = await api.create(R.JOBS, job_manifest("short", ttlSecondsAfterFinished=100), ns)
        finished = rfc3339(clock.now())
        job["status"] = {
            "startTime": finished,
            "completionTime": finished,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": finished},
                {"type": "Complete", "status": "True", "lastTransitionTime": finished},
            ],
        }
        await api.request("PUT", R.JOBS.url(ns, "short", "status"), body=job)
        await asyncio.sleep(0.3)
        clock.advance(60)
        await asyncio.sleep(0.3)
        assert (await api.get(R.JOBS, "short", ns))["metadata"].get("deletionTimestamp") is None
        clock.advance(41)

        async def gone() -> bool:
            try:
                await api.get(R.JOBS, "short", ns)
            except errors.NotFound:
                return True
            return False

        await eventually(gone)


# -- Pod GC ---------------------------------------------------------------------------------------


async def test_podgc_deletes_pods_of_a_node_that_is_gone(
    bare_server: ServerProcess, api: Client, ns: str
) -> None:
    clock = FakeClock(datetime.now(UTC))
    # The threshold is left high: the server is shared, and other tests' finished pods are not ours
    # to collect (the threshold itself is covered by the unit tests).
    config = ControllerConfig(
        terminated_pod_gc_threshold=100_000, pod_gc_period=20.0, orphaned_pod_grace=40.0
    )
    node = f"gone-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": node},
    }
    await api.create(R.PODS, pod, ns)
    async with running(bare_server, [PodGCController], config=config, clock=clock):
        await asyncio.sleep(0.5)
        assert [p["metadata"]["name"] for p in await pods_of(api, ns)] == ["orphan"]
        for step in range(3):  # 20 s, 40 s, 60 s: the quarantine ends at 40 s
            clock.advance(20)
            await asyncio.sleep(0.3)
            if step == 0:
                assert [p["metadata"]["name"] for p in await pods_of(api, ns)] == ["orphan"]

        async def orphan_gone() -> bool:
            return not await pods_of(api, ns)

        await eventually(orphan_gone)


# -- PodDisruptionBudget ------------------------------------------------------------------------


async def _ready_pod(
    api: Client, ns: str, name: str, labels: Obj, owner: Obj | None = None, node: str = ""
) -> None:
    meta: Obj = {"name": name, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox"}]},
    }
    await api.create(R.PODS, pod, ns)
    if node:
        await api.request(
            "POST",
            R.PODS.url(ns, name, "binding"),
            body={
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"kind": "Node", "name": node},
            },
        )
    now = rfc3339(RealClock().now())
    status = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }
    }
    await api.patch(R.PODS, name, status, ns, subresource="status")


def pdb_manifest(name: str, selector: Obj, **spec: Any) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": selector}, **spec},
    }


async def _evict(bare_server: ServerProcess, ns: str, name: str) -> None:
    # No retries: a 429 must reach the test, not be waited out.
    async with Client(load_kubeconfig(bare_server.kubeconfig), max_retries=0) as once:
        await once.request(
            "POST",
            R.PODS.url(ns, name, "eviction"),
            body={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}},
        )


async def test_pdb_status_and_eviction(bare_server: ServerProcess, api: Client, ns: str) -> None:
    async with running(bare_server, [DisruptionController]):
        for i in range(3):
            await _ready_pod(api, ns, f"web-{i}", {"app": "web"})
        await api.create(R.PDBS, pdb_manifest("web", {"app": "web"}, minAvailable=3), ns)

        def status_is(expected: Obj) -> Callable[[], Any]:
            async def check() -> Obj | None:
                pdb = await api.get(R.PDBS, "web", ns)
                status = pdb.get("status") or {}
                got = {k: status.get(k) for k in expected}
                return pdb if got == expected else None

            return check

        pdb = await eventually(
            status_is(
                {
                    "expectedPods": 3,
                    "currentHealthy": 3,
                    "desiredHealthy": 3,
                    "disruptionsAllowed": 0,
                    "observedGeneration": 1,
                }
            )
        )
        cond = condition(pdb["status"], "DisruptionAllowed")
        assert cond is not None
        assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")

        with pytest.raises(errors.TooManyRequests) as info:
            await _evict(bare_server, ns, "web-0")
        assert info.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
        assert "needs 3 healthy pods and has 3 currently" in info.value.causes[0].message

        pdb["spec"]["minAvailable"] = 2
        await api.request("PUT", R.PDBS.url(ns, "web"), body=pdb)
        pdb = await eventually(
            status_is({"desiredHealthy": 2, "disruptionsAllowed": 1, "observedGeneration": 2})
        )
        cond = condition(pdb["status"], "DisruptionAllowed")
        assert cond is not None
        assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")

        await _evict(bare_server, ns, "web-0")
        await eventually(status_is({"expectedPods": 2, "currentHealthy": 2, "disruptionsAllowed": 0}))
        with pytest.raises(errors.TooManyRequests):
            await _evict(bare_server, ns, "web-1")


async def test_pdb_percentages_use_the_controllers_scale(
    bare_server: ServerProcess, api: Client, ns: str
) -> None:
    async with running(bare_server, [DisruptionController]):
        rs = await api.create(
            R.REPLICASETS,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "api"},
                "spec": {
                    "replicas": 4,
                    "selector": {"matchLabels": {"app": "api"}},
                    "template": {
                        "metadata": {"labels": {"app": "api"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            },
            ns,
        )
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "api",
            "uid": rs["metadata"]["uid"],
            "controller": True,
        }
        for i in range(3):  # one of the four replicas is missing
            await _ready_pod(api, ns, f"api-{i}", {"app": "api"}, owner)
        await api.create(R.PDBS, pdb_manifest("api", {"app": "api"}, maxUnavailable="25%"), ns)

        async def computed() -> Obj | None:
            status = (await api.get(R.PDBS, "api", ns)).get("status") or {}
            return status if status.get("expectedPods") == 4 else None

        status = await eventually(computed)
        assert (status["currentHealthy"], status["desiredHealthy"], status["disruptionsAllowed"]) == (3, 3, 0)

        # A percentage minAvailable over an unmanaged pod cannot be computed: fail closed.
        await _ready_pod(api, ns, "stray", {"app": "stray"})
        await api.create(R.PDBS, pdb_manifest("stray", {"app": "stray"}, minAvailable="50%"), ns)

        async def unmanaged_warned() -> bool:
            return any(r == "UnmanagedPods" for r, _ in await events(api, ns, "stray"))

        await eventually(unmanaged_warned)


async def test_kubectl_drain_honours_the_pdb(
    bare_server: ServerProcess, api: Client, ns: str, tmp_path: Path
) -> None:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl installed")
    env = dict(os.environ)
    env["KUBECONFIG"] = str(bare_server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    kubectl = Kubectl(binaries[-1], env)
    node = f"drain-{uuid.uuid4().hex[:6]}"
    await api.create(R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    async with running(bare_server, [DisruptionController]):
        for i in range(2):
            await _ready_pod(api, ns, f"db-{i}", {"app": "db"}, node=node)
        await api.create(R.PDBS, pdb_manifest("db", {"app": "db"}, minAvailable=2), ns)

        async def counted() -> bool:
            status = (await api.get(R.PDBS, "db", ns)).get("status") or {}
            return status.get("currentHealthy") == 2 and status.get("observedGeneration") == 1

        await eventually(counted)
        with pytest.raises(errors.TooManyRequests) as refused:
            await _evict(bare_server, ns, "db-0")
        # Upstream's 429 carries no Retry-After; with one, client-go inside kubectl would retry the
        # eviction ten times at that interval (about 100 s) before drain saw the refusal.
        assert not refused.value.retry_after
        result = await asyncio.to_thread(
            kubectl.run, "drain", node, "--force", "--ignore-daemonsets", "--timeout=3s", check=False
        )
        assert result.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
        assert len(await pods_of(api, ns)) == 2
        assert (await api.get(R.NODES, node))["spec"].get("unschedulable") is True
