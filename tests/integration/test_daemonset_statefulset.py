"""DaemonSets and StatefulSets against a real server, with both controllers running in-process and
this test playing scheduler and kubelet (`FakeKubelet`): it binds pods through pods/binding
(daemon pods to the node their required node affinity names, as the default scheduler would),
marks bound pods Running and Ready unless told to hold them, and finishes graceful deletions.

Ordering claims are checked on a watch of the namespace's pods: the events arrive in
resourceVersion order, so "web-1 was created after web-0 became Ready" is a statement about the
server's history, not about when this test happened to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.daemonset_placement import DAEMON_TOLERATIONS, target_node_name
from controlplane.controllers.podutil import is_pod_ready
from controlplane.controllers.runtime import R, rfc3339
from controlplane.controllers.runtime.clock import RealClock
from controlplane.controllers.statefulset import StatefulSetController
from tests.integration.conftest import ServerProcess
from tests.integration.controller_harness import eventually, running

Obj = dict[str, Any]

CONTROLLERS = [DaemonSetController, StatefulSetController]
STRATEGIC = "application/strategic-merge-patch+json"


# --- the simulated scheduler + kubelet --------------------------------------------------------


def _ready_status() -> Obj:
    now = rfc3339(RealClock().now())
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
        }
    }


@dataclass
class FakeKubelet:
    client: Client
    namespace: str
    default_node: str = ""
    hold: Callable[[Obj], bool] = lambda pod: False
    bound: dict[str, str] = field(default_factory=dict)

    async def step(self) -> None:
        pods = (await self.client.list(R.PODS, self.namespace)).get("items") or []
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            name = meta["name"]
            try:
                if meta.get("deletionTimestamp"):
                    await self.client.delete(R.PODS, name, self.namespace, options={"gracePeriodSeconds": 0})
                    continue
                if not spec.get("nodeName"):
                    node = target_node_name(pod) or self.default_node
                    if not node:
                        continue
                    binding = {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": name},
                        "target": {"kind": "Node", "name": node},
                    }
                    await self.client.request(
                        "POST", R.PODS.url(self.namespace, name, "binding"), body=binding
                    )
                    self.bound[name] = node
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Pending" and not self.hold(pod):
                    await self.client.patch(
                        R.PODS, name, _ready_status(), self.namespace, subresource="status"
                    )
            except (errors.NotFound, errors.Conflict):
                continue

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)


@contextlib.asynccontextmanager
async def kubelet(client: Client, namespace: str, **kwargs: Any) -> AsyncIterator[FakeKubelet]:
    fake = FakeKubelet(client, namespace, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(fake.run(stop))
    try:
        yield fake
    finally:
        stop.set()
        await task


@dataclass
class PodWatch:
    """Every pod event of a namespace, in server order."""

    events: list[tuple[str, Obj]] = field(default_factory=list)

    def first(self, predicate: Callable[[str, Obj], bool]) -> int:
        for i, (kind, obj) in enumerate(self.events):
            if predicate(kind, obj):
                return i
        raise AssertionError("no such pod event was watched")


@contextlib.asynccontextmanager
async def watch_pods(client: Client, namespace: str) -> AsyncIterator[PodWatch]:
    listed = await client.list(R.PODS, namespace)
    watched = PodWatch()

    async def pump() -> None:
        params = {"resourceVersion": listed["metadata"]["resourceVersion"], "timeoutSeconds": "120"}
        async for event in client.watch(R.PODS, namespace, params=params):
            watched.events.append((str(event["type"]), event["object"]))

    task = asyncio.create_task(pump())
    try:
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- helpers ----------------------------------------------------------------------------------


async def _namespace(client: Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await client.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def _node(
    client: Client,
    name: str,
    *,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    labels: dict[str, str] | None = None,
) -> None:
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    await client.create(
        R.NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
        },
    )


async def _pods(client: Client, namespace: str) -> list[Obj]:
    return list((await client.list(R.PODS, namespace)).get("items") or [])


def _kubectl(
    bare_server: ServerProcess, tmp_path: Path, *args: str, timeout: float = 40
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(bare_server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "kube-cache")
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


async def _rollout_status(bare_server: ServerProcess, tmp_path: Path, namespace: str, what: str) -> str:
    result = await asyncio.to_thread(
        _kubectl, bare_server, tmp_path, "rollout", "status", what, "-n", namespace, "--timeout=30s"
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


async def _events(client: Client, namespace: str, involved: str) -> list[Obj]:
    items = (await client.list(R.EVENTS, namespace)).get("items") or []
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == involved]


def _image(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


# --- DaemonSet --------------------------------------------------------------------------------


def _daemonset(name: str, image: str, node_selector: dict[str, str]) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"nodeSelector": node_selector, "containers": [{"name": "agent", "image": image}]},
            },
        },
    }


async def test_daemonset_runs_on_eligible_nodes_and_rolls(bare_server: ServerProcess, tmp_path: Path) -> None:
    async with running(bare_server, CONTROLLERS) as (client, _):
        ns = await _namespace(client, "ds")
        plain, cordoned, tainted, later, other = (
            f"{ns}-{n}" for n in ("plain", "cordoned", "tainted", "later", "other")
        )
        # The DaemonSet selects this test's nodes by label, so nodes other tests leave behind
        # cannot take part; `other` lacks the label and must get nothing.
        mark = {"pinnace.test/owner": ns}
        await _node(client, other)
        await _node(client, plain, labels=mark)
        # Cordoned: daemon pods tolerate node.kubernetes.io/unschedulable, so it still runs one.
        await _node(
            client,
            cordoned,
            unschedulable=True,
            taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
            labels=mark,
        )
        await _node(
            client, tainted, taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], labels=mark
        )
        mine = {plain, cordoned, tainted, later, other}

        def placement(pods: list[Obj]) -> dict[str, list[Obj]]:
            out: dict[str, list[Obj]] = {}
            for pod in pods:
                node = target_node_name(pod)
                if node in mine and not pod["metadata"].get("deletionTimestamp"):
                    out.setdefault(str(node), []).append(pod)
            return out

        hold_image = {"value": ""}
        async with kubelet(client, ns, hold=lambda pod: _image(pod) == hold_image["value"]) as fake:
            await client.create(R.DAEMONSETS, _daemonset("agent", "agent:v1", mark), ns)

            async def on_plain_and_cordoned() -> bool:
                by_node = placement(await _pods(client, ns))
                assert set(by_node) == {plain, cordoned}, by_node
                return all(is_pod_ready(p) for pods in by_node.values() for p in pods)

            await eventually(on_plain_and_cordoned)
            pods = [p for p in await _pods(client, ns) if target_node_name(p) in mine]
            for pod in pods:
                labels = pod["metadata"]["labels"]
                assert labels["controller-revision-hash"] and labels["pod-template-generation"] == "1"
                assert pod["metadata"]["generateName"] == "agent-"
                term = pod["spec"]["affinity"]["nodeAffinity"][
                    "requiredDuringSchedulingIgnoredDuringExecution"
                ]
                assert term["nodeSelectorTerms"] == [
                    {
                        "matchFields": [
                            {
                                "key": "metadata.name",
                                "operator": "In",
                                "values": [fake.bound[pod["metadata"]["name"]]],
                            }
                        ]
                    }
                ]
                keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
                assert {(t["key"], t["effect"]) for t in DAEMON_TOLERATIONS} <= keys

            # A node added later gets its pod.
            await _node(client, later, labels=mark)

            async def on_later() -> bool:
                by_node = placement(await _pods(client, ns))
                return later in by_node and all(is_pod_ready(p) for p in by_node[later])

            await eventually(on_later)
            out = await _rollout_status(bare_server, tmp_path, ns, "daemonset/agent")
            assert 'daemon set "agent" successfully rolled out' in out

            # A NoExecute taint the pods do not tolerate removes the pod from that node.
            taint = {"spec": {"taints": [{"key": "evict", "value": "now", "effect": "NoExecute"}]}}
            await client.patch(R.NODES, later, taint)

            async def gone_from_later() -> bool:
                return later not in placement(await _pods(client, ns))

            await eventually(gone_from_later)

            # Rolling update with maxUnavailable 1: while new pods are held unready, only one
            # node at a time loses its old pod.
            before = {p["metadata"]["name"] for p in await _pods(client, ns)}
            hold_image["value"] = "agent:v2"
            image = {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:v2"}]}}}}
            await client.patch(R.DAEMONSETS, "agent", image, ns, patch_type=STRATEGIC)

            async def one_replaced() -> bool:
                by_node = placement(await _pods(client, ns))
                new = [p for pods in by_node.values() for p in pods if _image(p) == "agent:v2"]
                return len(new) == 1

            await eventually(one_replaced)
            await asyncio.sleep(0.5)
            by_node = placement(await _pods(client, ns))
            images = sorted(_image(p) for pods in by_node.values() for p in pods)
            assert images == ["agent:v1", "agent:v2"], images
            status = (await client.get(R.DAEMONSETS, "agent", ns))["status"]
            assert status["desiredNumberScheduled"] == 2

            hold_image["value"] = ""

            async def all_replaced() -> bool:
                by_node = placement(await _pods(client, ns))
                pods = [p for ps in by_node.values() for p in ps]
                assert set(by_node) == {plain, cordoned}
                return all(_image(p) == "agent:v2" and is_pod_ready(p) for p in pods) and len(pods) == 2

            await eventually(all_replaced)
            after = {p["metadata"]["name"] for p in await _pods(client, ns)}
            assert not (before & after)
            out = await _rollout_status(bare_server, tmp_path, ns, "daemonset/agent")
            assert "successfully rolled out" in out
            ds = await client.get(R.DAEMONSETS, "agent", ns)
            assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"] == 2
            assert ds["status"]["updatedNumberScheduled"] == ds["status"]["desiredNumberScheduled"]
            revisions = (await client.list(R.CONTROLLERREVISIONS, ns)).get("items") or []
            assert sorted(r["revision"] for r in revisions) == [1, 2]

            # A failed daemon pod is deleted (with a FailedDaemonPod event) and replaced.
            victim = placement(await _pods(client, ns))[plain][0]
            await client.patch(
                R.PODS, victim["metadata"]["name"], {"status": {"phase": "Failed"}}, ns, subresource="status"
            )

            async def replaced() -> bool:
                pods = placement(await _pods(client, ns)).get(plain) or []
                return bool(pods) and all(p["metadata"]["name"] != victim["metadata"]["name"] for p in pods)

            await eventually(replaced)

            async def recorded() -> bool:
                reasons = {e["reason"] for e in await _events(client, ns, "agent")}
                return {"SuccessfulCreate", "SuccessfulDelete", "FailedDaemonPod"} <= reasons

            await eventually(recorded)
            created = [
                e["message"] for e in await _events(client, ns, "agent") if e["reason"] == "SuccessfulCreate"
            ]
            assert all(m.startswith("Created pod: agent-") for m in created)
        for name in mine:
            with contextlib.suppress(errors.NotFound):
                await client.delete(R.NODES, name)


# --- StatefulSet ------------------------------------------------------------------------------


def _statefulset(name: str, image: str, *, replicas: int = 3, policy: str = "OrderedReady") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "db", "image": image}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                }
            ],
        },
    }


def _is(name: str) -> Callable[[str, Obj], bool]:
    return lambda kind, obj: obj["metadata"]["name"] == name


def _ready(name: str) -> Callable[[str, Obj], bool]:
    return lambda kind, obj: obj["metadata"]["name"] == name and is_pod_ready(obj)


def _leaving(name: str) -> Callable[[str, Obj], bool]:
    return lambda kind, obj: (
        obj["metadata"]["name"] == name
        and (kind == "DELETED" or bool(obj["metadata"].get("deletionTimestamp")))
    )


async def test_statefulset_ordered_start_claims_partition_and_scale_down(
    bare_server: ServerProcess, tmp_path: Path
) -> None:
    async with running(bare_server, CONTROLLERS) as (client, _):
        ns = await _namespace(client, "sts")
        node = f"{ns}-n1"
        await _node(client, node)
        held = {"web-0"}
        async with (
            watch_pods(client, ns) as watched,
            kubelet(client, ns, default_node=node, hold=lambda pod: pod["metadata"]["name"] in held),
        ):
            await client.create(R.STATEFULSETS, _statefulset("web", "db:v1"), ns)

            async def web0_bound() -> bool:
                pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
                return "web-0" in pods and bool(pods["web-0"]["spec"].get("nodeName"))

            await eventually(web0_bound)
            await asyncio.sleep(0.5)
            names = {p["metadata"]["name"] for p in await _pods(client, ns)}
            assert names == {"web-0"}, "web-1 must not exist before web-0 is Running and Ready"
            held.clear()

            async def all_ready() -> bool:
                pods = await _pods(client, ns)
                return len(pods) == 3 and all(is_pod_ready(p) for p in pods)

            await eventually(all_ready)
            # In the server's own order: each pod was created only after its predecessor was Ready.
            assert watched.first(_ready("web-0")) < watched.first(_is("web-1"))
            assert watched.first(_ready("web-1")) < watched.first(_is("web-2"))

            set_ = await client.get(R.STATEFULSETS, "web", ns)
            for pod in await _pods(client, ns):
                name, ordinal = pod["metadata"]["name"], pod["metadata"]["name"].rsplit("-", 1)[1]
                labels = pod["metadata"]["labels"]
                assert labels["statefulset.kubernetes.io/pod-name"] == name
                assert labels["apps.kubernetes.io/pod-index"] == ordinal
                assert labels["controller-revision-hash"] == set_["status"]["updateRevision"]
                assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
                volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
                assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"data-{name}"
            claims = {c["metadata"]["name"]: c for c in (await client.list(R.PVCS, ns)).get("items") or []}
            assert set(claims) == {"data-web-0", "data-web-1", "data-web-2"}
            assert claims["data-web-1"]["metadata"]["labels"] == {"app": "web"}
            assert not claims["data-web-1"]["metadata"].get("ownerReferences")  # Retain, the default

            out = await _rollout_status(bare_server, tmp_path, ns, "statefulset/web")
            assert "3 new pods have been updated" in out or "rolling update complete" in out
            set_ = await client.get(R.STATEFULSETS, "web", ns)
            status = set_["status"]
            assert status["replicas"] == status["readyReplicas"] == status["availableReplicas"] == 3
            assert status["currentRevision"] == status["updateRevision"]
            assert status["observedGeneration"] == set_["metadata"]["generation"]
            messages = [
                e["message"] for e in await _events(client, ns, "web") if e["reason"] == "SuccessfulCreate"
            ]
            assert "create Pod web-0 in StatefulSet web successful" in messages
            assert "create Claim data-web-0 Pod web-0 in StatefulSet web success" in messages

            # Partitioned rolling update: only ordinals >= 2 move to the new revision.
            old_revision = status["updateRevision"]
            update = {
                "spec": {
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                    "template": {"spec": {"containers": [{"name": "db", "image": "db:v2"}]}},
                }
            }
            await client.patch(R.STATEFULSETS, "web", update, ns, patch_type=STRATEGIC)

            async def web2_updated() -> bool:
                pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
                web2 = pods.get("web-2")
                return web2 is not None and _image(web2) == "db:v2" and is_pod_ready(web2)

            await eventually(web2_updated)
            out = await _rollout_status(bare_server, tmp_path, ns, "statefulset/web")
            assert "partitioned roll out complete: 1 new pods have been updated" in out
            await asyncio.sleep(0.3)
            pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
            assert _image(pods["web-0"]) == _image(pods["web-1"]) == "db:v1"
            assert pods["web-0"]["metadata"]["labels"]["controller-revision-hash"] == old_revision
            status = (await client.get(R.STATEFULSETS, "web", ns))["status"]
            assert status["updatedReplicas"] == 1 and status["currentRevision"] == old_revision
            assert status["updateRevision"] != old_revision
            assert not any(_leaving("web-0")(k, o) or _leaving("web-1")(k, o) for k, o in watched.events)

            # Scale down to 1: web-2 goes first, then web-1; web-0 stays; claims are kept.
            await client.patch(R.STATEFULSETS, "web", {"spec": {"replicas": 1}}, ns)

            async def scaled_down() -> bool:
                return {p["metadata"]["name"] for p in await _pods(client, ns)} == {"web-0"}

            await eventually(scaled_down)
            assert watched.first(_leaving("web-2")) < watched.first(_leaving("web-1"))
            claims = {c["metadata"]["name"] for c in (await client.list(R.PVCS, ns)).get("items") or []}
            assert claims == {"data-web-0", "data-web-1", "data-web-2"}
            revisions = (await client.list(R.CONTROLLERREVISIONS, ns)).get("items") or []
            assert sorted(r["revision"] for r in revisions) == [1, 2]
            assert all(r["metadata"]["name"].startswith("web-") for r in revisions)
            assert all("controller.kubernetes.io/hash" in r["metadata"]["labels"] for r in revisions)
        with contextlib.suppress(errors.NotFound):
            await client.delete(R.NODES, node)


async def test_statefulset_parallel_and_claim_retention(bare_server: ServerProcess) -> None:
    async with running(bare_server, CONTROLLERS) as (client, _):
        ns = await _namespace(client, "stsp")
        node = f"{ns}-n1"
        await _node(client, node)
        manifest = _statefulset("par", "db:v1", policy="Parallel")
        manifest["spec"]["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Delete",
            "whenScaled": "Delete",
        }
        # Nothing becomes Ready: Parallel must not wait for it.
        async with kubelet(client, ns, default_node=node, hold=lambda pod: True):
            created = await client.create(R.STATEFULSETS, manifest, ns)

            async def all_exist() -> bool:
                return {p["metadata"]["name"] for p in await _pods(client, ns)} == {"par-0", "par-1", "par-2"}

            await eventually(all_exist)

            async def owned_by_set() -> bool:
                claims = (await client.list(R.PVCS, ns)).get("items") or []
                refs = [c["metadata"].get("ownerReferences") or [] for c in claims]
                return len(claims) == 3 and all(
                    [(r["kind"], r["uid"], r.get("controller")) for r in rs]
                    == [("StatefulSet", created["metadata"]["uid"], True)]
                    for rs in refs
                )

            await eventually(owned_by_set)
            await client.patch(R.STATEFULSETS, "par", {"spec": {"replicas": 1}}, ns)

            async def scaled_claims_owned_by_pods() -> bool:
                claims = {
                    c["metadata"]["name"]: c for c in (await client.list(R.PVCS, ns)).get("items") or []
                }
                kinds = {
                    name: [r["kind"] for r in c["metadata"].get("ownerReferences") or []]
                    for name, c in claims.items()
                }
                return kinds.get("data-par-0") == ["StatefulSet"] and all(
                    kinds.get(n) == ["Pod"] for n in ("data-par-1", "data-par-2") if n in kinds
                )

            await eventually(scaled_claims_owned_by_pods)

            async def one_left() -> bool:
                return {p["metadata"]["name"] for p in await _pods(client, ns)} == {"par-0"}

            await eventually(one_left)
        with contextlib.suppress(errors.NotFound):
            await client.delete(R.NODES, node)


@pytest.mark.parametrize("strategy", ["OnDelete"])
async def test_statefulset_on_delete_waits_for_users(bare_server: ServerProcess, strategy: str) -> None:
    async with running(bare_server, CONTROLLERS) as (client, _):
        ns = await _namespace(client, "stso")
        node = f"{ns}-n1"
        await _node(client, node)
        manifest = _statefulset("od", "db:v1", replicas=2)
        manifest["spec"]["updateStrategy"] = {"type": strategy}
        async with kubelet(client, ns, default_node=node):
            await client.create(R.STATEFULSETS, manifest, ns)

            async def ready() -> bool:
                pods = await _pods(client, ns)
                return len(pods) == 2 and all(is_pod_ready(p) for p in pods)

            await eventually(ready)
            image = {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:v2"}]}}}}
            await client.patch(R.STATEFULSETS, "od", image, ns, patch_type=STRATEGIC)

            async def observed() -> bool:
                s = await client.get(R.STATEFULSETS, "od", ns)
                return s["status"].get("observedGeneration") == s["metadata"]["generation"]

            await eventually(observed)
            await asyncio.sleep(0.3)
            assert {_image(p) for p in await _pods(client, ns)} == {"db:v1"}
            await client.delete(R.PODS, "od-1", ns)

            async def od1_updated() -> bool:
                pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
                return "od-1" in pods and _image(pods["od-1"]) == "db:v2" and is_pod_ready(pods["od-1"])

            await eventually(od1_updated)
            pods = {p["metadata"]["name"]: p for p in await _pods(client, ns)}
            assert _image(pods["od-0"]) == "db:v1"
            status = (await client.get(R.STATEFULSETS, "od", ns))["status"]
            assert status["updatedReplicas"] == 1 and status["currentReplicas"] == 1
        with contextlib.suppress(errors.NotFound):
            await client.delete(R.NODES, node)
