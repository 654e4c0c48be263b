"""Objects and a framework for placement tests: nodes and pods as API dicts, and helpers that
schedule on a snapshot without any IO."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controlplane.scheduler.cache import Snapshot
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import Framework, PluginSpec, StaticListers
from controlplane.scheduler.plugins import DEFAULT_PLUGINS, registry
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import FitError, NominatingInfo

Obj = dict[str, Any]


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, Any]] = (),
    unschedulable: bool = False,
    zone: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> Obj:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if zone is not None:
        all_labels["topology.kubernetes.io/zone"] = zone
    spec: Obj = {"taints": [dict(t) for t in taints]}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}},
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    labels: Mapping[str, str] | None = None,
    node_name: str = "",
    priority: int | None = None,
    **spec: Any,
) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Obj = {"name": "c", "image": "pause"}
    if requests:
        container["resources"] = {"requests": requests}
    body: Obj = {"containers": [container], "schedulerName": "default-scheduler", **spec}
    if node_name:
        body["nodeName"] = node_name
    if priority is not None:
        body["priority"] = priority
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "labels": dict(labels or {}),
        },
        "spec": body,
        "status": {"phase": "Pending"},
    }


def framework(
    *,
    listers: StaticListers | None = None,
    plugins: Sequence[PluginSpec] = DEFAULT_PLUGINS,
    seed: int = 0,
    percentage: int = 0,
    api: Any = None,
    recorder: Any = None,
    nominator: Any = None,
    now: float = 1_800_000_000.0,
) -> Framework:
    return Framework(
        "default-scheduler",
        plugins,
        registry(),
        percentage_of_nodes_to_score=percentage,
        listers=listers or StaticListers(),
        api=api,
        recorder=recorder,
        nominator=nominator,
        rng=random.Random(seed),
        now=lambda: now,
    )


def snapshot(nodes: Iterable[Obj], pods: Iterable[Obj] = ()) -> Snapshot:
    return Snapshot.build(list(nodes), [PodInfo(p) for p in pods])


def schedule(fw: Framework, p: Obj) -> str:
    """The node `p` goes to, or the FitError message."""
    try:
        return fw.schedule_pod(CycleState(), PodInfo(p)).suggested_host
    except FitError as exc:
        return str(exc)


def place(fw: Framework, p: Obj) -> str:
    """Schedule `p` and account it on its node, as assuming does; returns the node."""
    info = PodInfo(p)
    host = fw.schedule_pod(CycleState(), info).suggested_host
    placed = dict(p)
    placed["spec"] = {**p["spec"], "nodeName": host}
    fw.snapshot.node_info_map[host].add_pod(PodInfo(placed))
    fw.snapshot.record_change(host)
    fw.snapshot._index_affinity()
    return host


def with_snapshot(fw: Framework, snap: Snapshot) -> Framework:
    fw.snapshot = snap
    return fw


def filter_node_by_node(
    fw: Framework, state: CycleState, pod: PodInfo, start: int, want: int = 100
) -> tuple[list[str], dict[str, tuple[Any, ...]]]:
    """Upstream's filter loop one node at a time from `start` round the snapshot's order, stopping
    once `want` nodes are feasible: their names, and (code, reasons, plugin) of each rejection."""
    feasible: list[str] = []
    failed: dict[str, tuple[Any, ...]] = {}
    ordered = fw.snapshot.list()
    for i in range(len(ordered)):
        candidate = ordered[(start + i) % len(ordered)]
        status = fw.run_filter(state, pod, candidate)
        if status is None:
            feasible.append(candidate.name)
            if len(feasible) == want:
                break
        else:
            failed[candidate.name] = (status.code, status.reasons, status.plugin)
    return feasible, failed


class FakeAPI:
    """Records the scheduler's writes."""

    def __init__(self) -> None:
        self.bound: list[tuple[str, str]] = []
        self.preempted: list[str] = []
        self.status_patches: list[tuple[str, Any, NominatingInfo | None]] = []
        self.fail_bind: Exception | None = None

    async def bind(self, pod: Mapping[str, Any], node: str) -> None:
        if self.fail_bind is not None:
            raise self.fail_bind
        self.bound.append((pod["metadata"]["name"], node))

    async def patch_pod_status(
        self, pod: Mapping[str, Any], condition: Any, nominating: NominatingInfo | None
    ) -> None:
        self.status_patches.append((pod["metadata"]["name"], condition, nominating))

    async def preempt(self, victim: Mapping[str, Any], preemptor: Mapping[str, Any]) -> None:
        self.preempted.append(victim["metadata"]["name"])


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))
