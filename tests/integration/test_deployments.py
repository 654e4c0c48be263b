"""Deployments, ReplicaSets and ReplicationControllers against a real server, with the three
controllers running in-process and this test playing the kubelet (bind, then Running and Ready).

The rollout limits are checked the way upstream's e2e framework checks them
(test/e2e/framework/deployment checkRollingUpdateStatus): at every observed change, the
ReplicaSets' replicas add up to at most replicas+maxSurge and the Deployment reports at least
replicas-maxUnavailable available; in addition no observed moment has fewer ready pods than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.deployment_util import compute_hash
from controlplane.controllers.podutil import controller_of, is_pod_ready
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.replicationcontroller import ReplicationManager
from controlplane.controllers.runtime import Clock, Controller, Informer, R, rfc3339
from controlplane.controllers.runtime.clock import FakeClock, RealClock
from tests.integration.conftest import ServerProcess, kubectl_binaries
from tests.integration.controller_harness import client_for, eventually, running
from tests.integration.kubectl_helpers import Kubectl

Obj = dict[str, Any]

CONTROLLERS = [DeploymentController, ReplicaSetController, ReplicationManager]


def _dispatcher() -> str:
    found = [b for b in kubectl_binaries() if Path(b).name == "kubectl"]
    if not found:
        pytest.skip("the kubectl dispatcher is not installed")
    return found[0]


@pytest.fixture
def kubectl(bare_server: ServerProcess, tmp_path: Path) -> Kubectl:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(bare_server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return Kubectl(_dispatcher(), env)


@pytest.fixture
async def ns(bare_server: ServerProcess) -> AsyncIterator[str]:
    """A fresh namespace; afterwards (the controllers stopped) everything the test made in it,
    and its fake node, is removed so other tests on the shared server never see them."""
    client = client_for(bare_server)
    name = f"workloads-{uuid.uuid4().hex[:8]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        for rp in (R.DEPLOYMENTS, R.REPLICASETS, R.REPLICATIONCONTROLLERS, R.PODS):
            for item in (await client.list(rp, name))["items"]:
                with contextlib.suppress(errors.NotFound):
                    await client.delete(rp, item["metadata"]["name"], name, options={"gracePeriodSeconds": 0})
        with contextlib.suppress(errors.NotFound):
            await client.delete(R.NODES, f"node-{name}")
        await client.close()


def _ready_status(pod: Obj) -> Obj:
    now = rfc3339(RealClock().now())
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
    }


class FakeKubelet:
    """Runs every pod of one namespace on one node: binds it, then after `ready_delay` seconds
    reports it Running and Ready; finishes graceful deletions at once."""

    def __init__(self, client: Client, namespace: str, node: str, ready_delay: float = 0.2) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node
        self.ready_delay = ready_delay
        self.hold: Callable[[Obj], bool] = lambda pod: False
        # Per pod: the latest version seen, handled by at most one task at a time (a version that
        # arrives while its pod is being handled is handled right after).
        self._latest: dict[str, Obj] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        await self.client.create(
            R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node}}
        )
        informer = Informer(self.client, R.PODS)
        informer.add_handler(self._on_event)
        try:
            await informer.run(stop)
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_event(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is None or new["metadata"].get("namespace") != self.namespace:
            return
        key = new["metadata"]["name"]
        if event == "DELETED":
            self._latest.pop(key, None)
            return
        self._latest[key] = new
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: str) -> None:
        try:
            while (pod := self._latest.pop(key, None)) is not None:
                await self._handle(pod)
        finally:
            self._tasks.pop(key, None)

    async def _handle(self, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            if pod["metadata"].get("deletionTimestamp"):
                await self.client.delete(R.PODS, name, self.namespace, options={"gracePeriodSeconds": 0})
                return
            if not (pod.get("spec") or {}).get("nodeName"):
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                }
                await self.client.request("POST", R.PODS.url(self.namespace, name, "binding"), body=binding)
                return
            if not is_pod_ready(pod) and not self.hold(pod):
                await asyncio.sleep(self.ready_delay)
                await self.client.patch(
                    R.PODS, name, _ready_status(pod), self.namespace, subresource="status"
                )


@contextlib.asynccontextmanager
async def kubelet_for(client: Client, namespace: str, ready_delay: float = 0.2) -> AsyncIterator[FakeKubelet]:
    kubelet = FakeKubelet(client, namespace, f"node-{namespace}", ready_delay)
    stop = asyncio.Event()
    task = asyncio.create_task(kubelet.run(stop))
    try:
        yield kubelet
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def cluster(
    server: ServerProcess,
    controllers: list[type[Controller]],
    namespace: str,
    *,
    clock: Clock | None = None,
    ready_delay: float = 0.2,
) -> AsyncIterator[tuple[Client, FakeKubelet]]:
    """The controllers running in-process, and a fake kubelet running the namespace's pods."""
    async with (
        running(server, controllers, clock=clock) as (client, _),
        kubelet_for(client, namespace, ready_delay) as kubelet,
    ):
        yield client, kubelet


@dataclass
class RolloutLimits:
    """Watches one Deployment's ReplicaSets, the Deployment and its pods; records every moment at
    which the rolling-update limits do not hold while `armed`."""

    namespace: str
    deployment: str
    max_total: int
    min_available: int
    armed: bool = False
    observations: int = 0
    violations: list[str] = field(default_factory=list)
    rss: dict[str, Obj] = field(default_factory=dict)
    pods: dict[str, Obj] = field(default_factory=dict)
    current: Obj | None = None

    def handler(self, store: str) -> Callable[[str, Obj | None, Obj | None], None]:
        def on_event(event: str, old: Obj | None, new: Obj | None) -> None:
            obj = new if new is not None else old
            if obj is None or obj["metadata"].get("namespace") != self.namespace:
                return
            name = obj["metadata"]["name"]
            if store == "deployments":
                if name == self.deployment:
                    self.current = None if event == "DELETED" else obj
            else:
                target = self.rss if store == "rss" else self.pods
                if event == "DELETED":
                    target.pop(name, None)
                else:
                    target[name] = obj
            self.check()

        return on_event

    def check(self) -> None:
        if not self.armed or self.current is None:
            return
        self.observations += 1
        uid = self.current["metadata"]["uid"]
        owned = [rs for rs in self.rss.values() if (controller_of(rs) or {}).get("uid") == uid]
        total = sum(int(rs["spec"].get("replicas") or 0) for rs in owned)
        if total > self.max_total:
            self.violations.append(f"ReplicaSets want {total} pods, more than {self.max_total}")
        available = int((self.current.get("status") or {}).get("availableReplicas") or 0)
        if available < self.min_available:
            self.violations.append(
                f"Deployment reports {available} available, fewer than {self.min_available}"
            )
        ready = sum(
            1 for p in self.pods.values() if is_pod_ready(p) and not p["metadata"].get("deletionTimestamp")
        )
        if ready < self.min_available:
            self.violations.append(f"{ready} ready pods, fewer than {self.min_available}")


@contextlib.asynccontextmanager
async def watching(client: Client, limits: RolloutLimits) -> AsyncIterator[RolloutLimits]:
    stop = asyncio.Event()
    tasks = []
    for rp, store in ((R.REPLICASETS, "rss"), (R.DEPLOYMENTS, "deployments"), (R.PODS, "pods")):
        informer = Informer(client, rp)
        informer.add_handler(limits.handler(store))
        tasks.append(asyncio.create_task(informer.run(stop)))
    try:
        yield limits
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def _deployment(name: str, replicas: int, image: str) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


async def _kubectl(kubectl: Kubectl, *args: str, timeout: float = 90.0) -> str:
    result = await asyncio.to_thread(kubectl.run, *args, timeout=timeout)
    return result.stdout


async def _owned_replica_sets(client: Client, namespace: str, uid: str) -> list[Obj]:
    listing = await client.list(R.REPLICASETS, namespace)
    return [rs for rs in listing["items"] if (controller_of(rs) or {}).get("uid") == uid]


async def _events(client: Client, namespace: str, reason: str) -> list[str]:
    listing = await client.list(R.EVENTS, namespace)
    return [e["message"] for e in listing["items"] if e.get("reason") == reason]


async def test_deployment_rolls_out_updates_undoes_and_scales(
    bare_server: ServerProcess, kubectl: Kubectl, ns: str
) -> None:
    async with cluster(bare_server, CONTROLLERS, ns) as (client, _kubelet):
        created = await client.create(R.DEPLOYMENTS, _deployment("web", 10, "nginx:1.0"), ns)
        out = await _kubectl(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in out

        first_rs = await _owned_replica_sets(client, ns, created["metadata"]["uid"])
        assert len(first_rs) == 1
        first_name = first_rs[0]["metadata"]["name"]
        pod_hash = first_rs[0]["metadata"]["labels"]["pod-template-hash"]
        assert first_name == f"web-{pod_hash}"
        assert first_rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        assert first_rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "10"
        assert first_rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "13"
        assert first_rs[0]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
        d = await client.get(R.DEPLOYMENTS, "web", ns)
        status = d["status"]
        assert status["observedGeneration"] == d["metadata"]["generation"]
        assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 10
        assert status["readyReplicas"] == 10
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert (
            conditions["Progressing"]["message"] == f'ReplicaSet "{first_name}" has successfully progressed.'
        )
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        pods = (await client.list(R.PODS, ns))["items"]
        assert len(pods) == 10
        assert all(p["metadata"]["name"].startswith(f"{first_name}-") for p in pods)
        assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods)
        assert f"Scaled up replica set {first_name} from 0 to 10" in await _events(
            client, ns, "ScalingReplicaSet"
        )
        assert len(await _events(client, ns, "SuccessfulCreate")) >= 1

        # An image change rolls over within maxSurge 25% (3) and maxUnavailable 25% (2).
        limits = RolloutLimits(ns, "web", max_total=13, min_available=8)
        async with watching(client, limits):
            await eventually(lambda: _seen(limits, 10), timeout=10)
            limits.armed = True
            await _kubectl(kubectl, "-n", ns, "set", "image", "deployment/web", "web=nginx:2.0")
            out = await _kubectl(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
            limits.armed = False
        assert 'deployment "web" successfully rolled out' in out
        assert limits.observations > 20, limits.observations
        assert limits.violations == []

        rss = await _owned_replica_sets(client, ns, created["metadata"]["uid"])
        by_name = {rs["metadata"]["name"]: rs for rs in rss}
        assert len(rss) == 2
        second = next(rs for name, rs in by_name.items() if name != first_name)
        assert second["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert second["spec"]["replicas"] == 10
        assert by_name[first_name]["spec"]["replicas"] == 0
        scaling = await _events(client, ns, "ScalingReplicaSet")
        second_name = second["metadata"]["name"]
        # Surge first (3 over 10), then give up the 2 that maxUnavailable allows.
        assert f"Scaled up replica set {second_name} from 0 to 3" in scaling
        assert f"Scaled down replica set {first_name} from 10 to 8" in scaling
        assert f"Scaled up replica set {second_name} from 3 to 5" in scaling

        # kubectl rollout undo (client side: it patches the template back) returns to revision 1's template.
        await _kubectl(kubectl, "-n", ns, "rollout", "undo", "deployment/web")
        out = await _kubectl(kubectl, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
        assert 'deployment "web" successfully rolled out' in out
        first_again = await client.get(R.REPLICASETS, first_name, ns)
        annotations = first_again["metadata"]["annotations"]
        assert annotations["deployment.kubernetes.io/revision"] == "3"
        assert annotations["deployment.kubernetes.io/revision-history"] == "1"
        assert first_again["spec"]["replicas"] == 10
        d = await client.get(R.DEPLOYMENTS, "web", ns)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.0"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        history = await _kubectl(kubectl, "-n", ns, "rollout", "history", "deployment/web")
        assert "2" in history and "3" in history

        # kubectl scale converges both ways.
        await _kubectl(kubectl, "-n", ns, "scale", "deployment/web", "--replicas=14")
        await eventually(lambda: _converged(client, ns, "web", 14), timeout=30)
        await _kubectl(kubectl, "-n", ns, "scale", "deployment/web", "--replicas=3")
        await eventually(lambda: _converged(client, ns, "web", 3), timeout=30)
        rs = await client.get(R.REPLICASETS, first_name, ns)
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
        assert "SuccessfulDelete" in {e["reason"] for e in (await client.list(R.EVENTS, ns))["items"]}


async def _seen(limits: RolloutLimits, ready: int) -> bool:
    return limits.current is not None and sum(1 for p in limits.pods.values() if is_pod_ready(p)) >= ready


async def _converged(client: Client, ns: str, name: str, replicas: int) -> bool:
    d = await client.get(R.DEPLOYMENTS, name, ns)
    status = d.get("status") or {}
    pods = [
        p
        for p in (await client.list(R.PODS, ns))["items"]
        if not p["metadata"].get("deletionTimestamp") and is_pod_ready(p)
    ]
    return (
        status.get("observedGeneration") == d["metadata"]["generation"]
        and status.get("replicas") == replicas
        and status.get("updatedReplicas") == replicas
        and status.get("availableReplicas") == replicas
        and len(pods) == replicas
    )


def _pod_template(app: str, image: str = "busybox:1") -> Obj:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": image}]}}


async def _pods(client: Client, ns: str, *, include_terminating: bool = False) -> list[Obj]:
    items = (await client.list(R.PODS, ns))["items"]
    return [p for p in items if include_terminating or not p["metadata"].get("deletionTimestamp")]


def _owned_by(pod: Obj, owner: Obj) -> bool:
    return (controller_of(pod) or {}).get("uid") == owner["metadata"]["uid"]


async def test_replicaset_adopts_releases_and_deletes_unready_first(
    bare_server: ServerProcess, ns: str
) -> None:
    async with cluster(bare_server, [ReplicaSetController], ns, ready_delay=0.05) as (client, kubelet):
        orphan_pod = {"apiVersion": "v1", "kind": "Pod", **_pod_template("adopt")}
        orphan_pod["metadata"]["name"] = "orphan"
        orphan = await client.create(R.PODS, orphan_pod, ns)
        rs = await client.create(
            R.REPLICASETS,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "front"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "adopt"}},
                    "template": _pod_template("adopt"),
                },
            },
            ns,
        )

        async def adopted_and_filled() -> bool:
            pods = await _pods(client, ns)
            fresh = await client.get(R.REPLICASETS, "front", ns)
            status = fresh.get("status") or {}
            return (
                len(pods) == 2
                and all(_owned_by(p, rs) for p in pods)
                and status.get("readyReplicas") == 2
                and status.get("availableReplicas") == 2
                and status.get("fullyLabeledReplicas") == 2
                and status.get("observedGeneration") == fresh["metadata"]["generation"]
            )

        await eventually(adopted_and_filled)
        adopted = await client.get(R.PODS, "orphan", ns)
        assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
        (ref,) = adopted["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "front",
            "uid": rs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        created = await _events(client, ns, "SuccessfulCreate")
        assert len(created) == 1 and created[0].startswith("Created pod: front-")

        # A pod relabelled out of the selector is released and replaced.
        await client.patch(R.PODS, "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, ns)

        async def released_and_replaced() -> bool:
            pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
            return (
                len(pods) == 3
                and not pods["orphan"]["metadata"].get("ownerReferences")
                and sum(_owned_by(p, rs) for p in pods.values()) == 2
            )

        await eventually(released_and_replaced)
        await eventually(lambda: _status_is(client, ns, "front", replicas=2, ready=2))

        # Scaling down deletes a pod that is not ready before any ready one.
        ready = {
            p["metadata"]["name"] for p in await _pods(client, ns) if _owned_by(p, rs) and is_pod_ready(p)
        }
        assert len(ready) == 2
        kubelet.hold = lambda pod: pod["metadata"]["name"] not in ready
        await client.patch(R.REPLICASETS, "front", {"spec": {"replicas": 3}}, ns)

        async def three_owned() -> list[Obj]:
            pods = [p for p in await _pods(client, ns) if _owned_by(p, rs)]
            return pods if len(pods) == 3 and (pods[0].get("spec") or {}).get("nodeName") else []

        pods = await eventually(three_owned)
        (unready,) = [p["metadata"]["name"] for p in pods if p["metadata"]["name"] not in ready]
        await eventually(lambda: _status_is(client, ns, "front", replicas=3, ready=2))
        await client.patch(R.REPLICASETS, "front", {"spec": {"replicas": 2}}, ns)
        await eventually(lambda: _status_is(client, ns, "front", replicas=2, ready=2))
        remaining = {p["metadata"]["name"] for p in await _pods(client, ns) if _owned_by(p, rs)}
        assert remaining == ready
        assert f"Deleted pod: {unready}" in await _events(client, ns, "SuccessfulDelete")


async def _status_is(
    client: Client, ns: str, name: str, *, replicas: int, ready: int, rp: Any = R.REPLICASETS
) -> bool:
    obj = await client.get(rp, name, ns)
    status = obj.get("status") or {}
    return status.get("replicas", 0) == replicas and status.get("readyReplicas", 0) == ready


async def test_replication_controller_scales(bare_server: ServerProcess, kubectl: Kubectl, ns: str) -> None:
    async with cluster(bare_server, [ReplicationManager], ns, ready_delay=0.05) as (client, _kubelet):
        rc = await client.create(
            R.REPLICATIONCONTROLLERS,
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "legacy"},
                "spec": {
                    "replicas": 3,
                    "selector": {"app": "legacy"},
                    "template": _pod_template("legacy"),
                },
            },
            ns,
        )
        await eventually(
            lambda: _status_is(client, ns, "legacy", replicas=3, ready=3, rp=R.REPLICATIONCONTROLLERS)
        )
        pods = await _pods(client, ns)
        assert len(pods) == 3 and all(_owned_by(p, rc) for p in pods)
        assert all(p["metadata"]["generateName"] == "legacy-" for p in pods)
        assert controller_of(pods[0]) == {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "name": "legacy",
            "uid": rc["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        await _kubectl(kubectl, "-n", ns, "scale", "rc/legacy", "--replicas=5")
        await eventually(
            lambda: _status_is(client, ns, "legacy", replicas=5, ready=5, rp=R.REPLICATIONCONTROLLERS)
        )
        await _kubectl(kubectl, "-n", ns, "scale", "rc/legacy", "--replicas=1")
        await eventually(
            lambda: _status_is(client, ns, "legacy", replicas=1, ready=1, rp=R.REPLICATIONCONTROLLERS)
        )
        assert len(await _pods(client, ns)) == 1
        events = (await client.list(R.EVENTS, ns))["items"]
        kinds = {(e["involvedObject"]["kind"], e["reason"]) for e in events}
        assert ("ReplicationController", "SuccessfulCreate") in kinds
        assert ("ReplicationController", "SuccessfulDelete") in kinds
        fresh = await client.get(R.REPLICATIONCONTROLLERS, "legacy", ns)
        assert fresh["status"]["observedGeneration"] == fresh["metadata"]["generation"]
        assert fresh["status"]["availableReplicas"] == fresh["status"]["fullyLabeledReplicas"] == 1


def _image(obj: Obj) -> str:
    return str(((obj.get("spec") or {}).get("template") or obj)["spec"]["containers"][0]["image"])


async def _replica_sets_by_image(client: Client, ns: str, uid: str) -> dict[str, Obj]:
    return {_image(rs): rs for rs in await _owned_replica_sets(client, ns, uid)}


async def test_paused_deployment_scales_proportionally_and_resumes(
    bare_server: ServerProcess, ns: str
) -> None:
    async with cluster(bare_server, [DeploymentController, ReplicaSetController], ns, ready_delay=0.05) as (
        client,
        kubelet,
    ):
        # Pods of busybox:2 never become ready: the rollout stops halfway.
        kubelet.hold = lambda pod: _image(pod) == "busybox:2"
        body = _deployment("prop", 10, "busybox:1")
        d = await client.create(R.DEPLOYMENTS, body, ns)
        uid = d["metadata"]["uid"]
        await eventually(lambda: _converged(client, ns, "prop", 10))
        await client.patch(
            R.DEPLOYMENTS, "prop", {"spec": {"template": _pod_template("prop", "busybox:2")}}, ns
        )

        async def stuck_halfway() -> bool:
            rss = await _replica_sets_by_image(client, ns, uid)
            sizes = {image: rs["spec"]["replicas"] for image, rs in rss.items()}
            return sizes == {"busybox:1": 8, "busybox:2": 5}

        await eventually(stuck_halfway)
        await client.patch(R.DEPLOYMENTS, "prop", {"spec": {"paused": True}}, ns)

        async def paused_condition() -> bool:
            fresh = await client.get(R.DEPLOYMENTS, "prop", ns)
            cond = {c["type"]: c for c in fresh["status"].get("conditions", [])}.get("Progressing", {})
            return cond.get("reason") == "DeploymentPaused" and cond.get("status") == "Unknown"

        await eventually(paused_condition)
        # Paused: a template change starts no rollout, but a resize is spread over the
        # ReplicaSets in proportion to their size (13 -> 25 pods: 8 -> 15 and 5 -> 10).
        await client.patch(
            R.DEPLOYMENTS, "prop", {"spec": {"template": _pod_template("prop", "busybox:3")}}, ns
        )
        await client.patch(R.DEPLOYMENTS, "prop", {"spec": {"replicas": 20}}, ns)

        async def proportional() -> bool:
            fresh = await client.get(R.DEPLOYMENTS, "prop", ns)
            if fresh["status"].get("observedGeneration") != fresh["metadata"]["generation"]:
                return False
            rss = await _replica_sets_by_image(client, ns, uid)
            sizes = {image: rs["spec"]["replicas"] for image, rs in rss.items()}
            return sizes == {"busybox:1": 15, "busybox:2": 10}

        await eventually(proportional)
        for rs in (await _replica_sets_by_image(client, ns, uid)).values():
            annotations = rs["metadata"]["annotations"]
            assert annotations["deployment.kubernetes.io/desired-replicas"] == "20"
            assert annotations["deployment.kubernetes.io/max-replicas"] == "25"

        await client.patch(R.DEPLOYMENTS, "prop", {"spec": {"paused": False}}, ns)
        await eventually(lambda: _converged(client, ns, "prop", 20), timeout=30)
        rss = await _replica_sets_by_image(client, ns, uid)
        assert {image: rs["spec"]["replicas"] for image, rs in rss.items()} == {
            "busybox:1": 0,
            "busybox:2": 0,
            "busybox:3": 20,
        }
        assert rss["busybox:3"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

        async def complete() -> bool:
            # The counts can reach 20 a sync before the Progressing condition says so.
            fresh = await client.get(R.DEPLOYMENTS, "prop", ns)
            cond = {c["type"]: c for c in fresh["status"]["conditions"]}
            return cond["Progressing"]["reason"] == "NewReplicaSetAvailable"

        await eventually(complete)


async def test_recreate_never_overlaps_and_history_is_limited(bare_server: ServerProcess, ns: str) -> None:
    async with cluster(bare_server, [DeploymentController, ReplicaSetController], ns, ready_delay=0.05) as (
        client,
        _kubelet,
    ):
        body = _deployment("re", 3, "busybox:1")
        body["spec"]["strategy"] = {"type": "Recreate"}
        body["spec"]["revisionHistoryLimit"] = 1
        d = await client.create(R.DEPLOYMENTS, body, ns)
        uid = d["metadata"]["uid"]
        await eventually(lambda: _converged(client, ns, "re", 3))

        overlaps: list[set[str]] = []
        seen: dict[str, str] = {}

        def on_pod(event: str, old: Obj | None, new: Obj | None) -> None:
            pod = new if new is not None else old
            if pod is None or pod["metadata"].get("namespace") != ns:
                return
            if event == "DELETED":
                seen.pop(pod["metadata"]["name"], None)
            else:
                seen[pod["metadata"]["name"]] = _image(pod)
            if len(set(seen.values())) > 1:
                overlaps.append(set(seen.values()))

        stop = asyncio.Event()
        informer = Informer(client, R.PODS)
        informer.add_handler(on_pod)
        watch = asyncio.create_task(informer.run(stop))
        try:
            for image in ("busybox:2", "busybox:3"):
                await client.patch(
                    R.DEPLOYMENTS, "re", {"spec": {"template": _pod_template("re", image)}}, ns
                )

                async def rolled(image: str = image) -> bool:
                    pods = await _pods(client, ns, include_terminating=True)
                    return await _converged(client, ns, "re", 3) and {_image(p) for p in pods} == {image}

                await eventually(rolled, timeout=30)
        finally:
            stop.set()
            await watch
        assert overlaps == []
        assert set(seen.values()) == {"busybox:3"}

        async def history_trimmed() -> bool:
            return set(await _replica_sets_by_image(client, ns, uid)) == {"busybox:2", "busybox:3"}

        await eventually(history_trimmed)
        scaling = await _events(client, ns, "ScalingReplicaSet")
        assert any(m.endswith("from 3 to 0") and m.startswith("Scaled down replica set re-") for m in scaling)
        assert (
            sum(m.startswith("Scaled up replica set re-") and m.endswith(" from 0 to 3") for m in scaling)
            == 3
        )


async def test_progress_deadline_exceeded(bare_server: ServerProcess, kubectl: Kubectl, ns: str) -> None:
    clock = FakeClock(RealClock().now())
    async with cluster(bare_server, [DeploymentController, ReplicaSetController], ns, clock=clock) as (
        client,
        kubelet,
    ):
        kubelet.hold = lambda pod: True
        body = _deployment("slow", 2, "busybox:1")
        body["spec"]["progressDeadlineSeconds"] = 60
        await client.create(R.DEPLOYMENTS, body, ns)

        async def progressing(*reasons: str) -> Obj | None:
            fresh = await client.get(R.DEPLOYMENTS, "slow", ns)
            cond = {c["type"]: c for c in fresh["status"].get("conditions", [])}.get("Progressing")
            return cond if cond is not None and cond["reason"] in reasons else None

        # NewReplicaSetCreated, then ReplicaSetUpdated as soon as the pods are counted: a poll may
        # see either, depending on how quickly the two syncs follow each other.
        started = await eventually(lambda: progressing("NewReplicaSetCreated", "ReplicaSetUpdated"))
        assert started["status"] == "True"
        await eventually(lambda: _status_is(client, ns, "slow", replicas=2, ready=0, rp=R.DEPLOYMENTS))

        async def timed_out() -> Obj | None:
            clock.advance(10)
            return await progressing("ProgressDeadlineExceeded")

        cond = await eventually(timed_out, interval=0.1)
        assert cond["status"] == "False"
        assert cond["message"].startswith('ReplicaSet "slow-') and cond["message"].endswith(
            '" has timed out progressing.'
        )
        result = await asyncio.to_thread(
            kubectl.run, "-n", ns, "rollout", "status", "deployment/slow", "--timeout=20s", check=False
        )
        assert result.returncode != 0
        assert 'deployment "slow" exceeded its progress deadline' in result.stderr


async def test_replicaset_reports_quota_failures(bare_server: ServerProcess, ns: str) -> None:
    async with cluster(bare_server, [ReplicaSetController], ns, ready_delay=0.05) as (client, _kubelet):
        quota = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "pods-quota"},
            "spec": {"hard": {"pods": "2"}},
        }
        await client.create(R.RESOURCEQUOTAS, quota, ns)
        await client.create(
            R.REPLICASETS,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "capped"},
                "spec": {
                    "replicas": 4,
                    "selector": {"matchLabels": {"app": "capped"}},
                    "template": _pod_template("capped"),
                },
            },
            ns,
        )

        async def failure_reported() -> Obj | None:
            rs = await client.get(R.REPLICASETS, "capped", ns)
            conditions = (rs.get("status") or {}).get("conditions") or []
            found = [c for c in conditions if c["type"] == "ReplicaFailure"]
            return found[0] if found and rs["status"].get("replicas") == 2 else None

        cond = await eventually(failure_reported)
        assert (cond["status"], cond["reason"]) == ("True", "FailedCreate")
        assert "exceeded quota: pods-quota" in cond["message"]
        failed = await _events(client, ns, "FailedCreate")
        assert failed and all(m.startswith("Error creating: ") and "exceeded quota" in m for m in failed)
        assert len(await _pods(client, ns)) == 2

        await client.patch(R.RESOURCEQUOTAS, "pods-quota", {"spec": {"hard": {"pods": "10"}}}, ns)

        async def recovered() -> bool:
            rs = await client.get(R.REPLICASETS, "capped", ns)
            status = rs.get("status") or {}
            return status.get("readyReplicas") == 4 and not status.get("conditions")

        await eventually(recovered)


async def test_hash_collision_bumps_collision_count(bare_server: ServerProcess, ns: str) -> None:
    async with cluster(bare_server, [DeploymentController, ReplicaSetController], ns, ready_delay=0.05) as (
        client,
        _kubelet,
    ):
        body = _deployment("clash", 2, "busybox:1")
        body["spec"]["paused"] = True  # paused: no ReplicaSet is created yet
        d = await client.create(R.DEPLOYMENTS, body, ns)
        taken = f"clash-{compute_hash(d['spec']['template'], None)}"
        # A namesake with another template, owned by nobody the Deployment selects.
        await client.create(
            R.REPLICASETS,
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": taken},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "other"}},
                    "template": _pod_template("other"),
                },
            },
            ns,
        )
        await client.patch(R.DEPLOYMENTS, "clash", {"spec": {"paused": False}}, ns)
        await eventually(lambda: _converged(client, ns, "clash", 2))
        fresh = await client.get(R.DEPLOYMENTS, "clash", ns)
        assert fresh["status"]["collisionCount"] == 1
        (rs,) = await _owned_replica_sets(client, ns, d["metadata"]["uid"])
        assert rs["metadata"]["name"] == f"clash-{compute_hash(d['spec']['template'], 1)}" != taken


async def test_deprecated_rollback_annotation(bare_server: ServerProcess, ns: str) -> None:
    async with cluster(bare_server, [DeploymentController, ReplicaSetController], ns, ready_delay=0.05) as (
        client,
        _kubelet,
    ):
        await client.create(R.DEPLOYMENTS, _deployment("back", 2, "busybox:1"), ns)
        await eventually(lambda: _converged(client, ns, "back", 2))
        await client.patch(
            R.DEPLOYMENTS, "back", {"spec": {"template": _pod_template("back", "busybox:2")}}, ns
        )

        async def revision(rev: str) -> bool:
            fresh = await client.get(R.DEPLOYMENTS, "back", ns)
            annotations = fresh["metadata"].get("annotations") or {}
            return annotations.get("deployment.kubernetes.io/revision") == rev and await _converged(
                client, ns, "back", 2
            )

        await eventually(lambda: revision("2"))
        # What extensions/v1beta1's spec.rollbackTo becomes in apps/v1.
        patch = {"metadata": {"annotations": {"deprecated.deployment.rollback.to": "1"}}}
        await client.patch(R.DEPLOYMENTS, "back", patch, ns)
        await eventually(lambda: revision("3"))
        fresh = await client.get(R.DEPLOYMENTS, "back", ns)
        assert "deprecated.deployment.rollback.to" not in fresh["metadata"]["annotations"]
        assert _image(fresh) == "busybox:1"
        assert 'Rolled back deployment "back" to revision 1' in await _events(
            client, ns, "DeploymentRollback"
        )
