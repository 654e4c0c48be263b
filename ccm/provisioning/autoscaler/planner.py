"""The autoscaler's decisions, as a pure function of what the API server holds and the time.

Scale-up (cluster-autoscaler's ScaleUp, Karpenter's provisioning): the pods the scheduler marked
`PodScheduled=False, reason Unschedulable` are first placed, in the simulation, on existing Ready
nodes (the scheduler may just not have retried yet), then on the nodes already on their way: the
pool's machines still Pending / Provisioning / Bootstrapping or whose node is not Ready yet, and
the replicas its operator has not created a Machine for yet. Only the pods left over may grow a
pool. For each autoscaling pool with room below `maxReplicas`, a template node (see templates.py)
tells which of them would fit a new node of it; those are bin-packed first-fit decreasing onto
as many new nodes as they need, at most up to `maxReplicas`. The pool is chosen by the
"least-waste" expander (cluster-autoscaler's `--expander=least-waste`: the smallest fraction of
CPU and memory left idle on the new nodes; ties go to the option helping more pods, then to the
pool's name); the pods it helps are removed and the remaining pods may grow another pool in the
same pass. Replicas below `minReplicas` are raised to it.

Scale-down (cluster-autoscaler's empty-node removal): a node of an autoscaling pool running no
pod but DaemonSet and mirror pods, and on which no pending pod was simulated to fit, that has been
so for `scaleDownDelay`, gets its Machine annotated for deletion and the pool's replicas lowered
by one (one node per pool per pass, never below `minReplicas`). A pool with nodes on the way does
not scale down: a node is not "unneeded" while capacity for pending pods is still arriving, and
lowering replicas while the operator has replicas to create would cancel one of those instead of
removing the annotated machine. A mark not matched by lowered replicas (left by a pass that
could not lower them: a conflict, a crash in between; or made moot by a later scale-up) is
withdrawn, so the operator never removes a node no pass still means to remove.

When a node became empty is the caller's memory (`empty_since`, returned updated), as in
cluster-autoscaler's unneeded-nodes tracker: a restart starts the clocks over, which errs on the
side of keeping nodes, and no Node is written every pass to remember it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ccm.provisioning.api import ANNOTATION_DELETE_MACHINE, LABEL_MACHINE, LABEL_NODE_POOL, MachinePhase
from ccm.provisioning.autoscaler.predicates import fits, forget
from ccm.provisioning.autoscaler.templates import is_daemonset_pod, is_mirror_pod, is_ready, node_template
from controlplane.controllers.cron import parse_go_duration
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo

__all__ = [
    "DEFAULT_SCALE_DOWN_DELAY",
    "Autoscaling",
    "Plan",
    "PoolPlan",
    "autoscaling_of",
    "is_unschedulable",
    "plan",
]

Obj = Mapping[str, Any]

DEFAULT_SCALE_DOWN_DELAY = timedelta(minutes=10)

REASON_MIN = "MinReplicas"
REASON_SCALE_UP = "TriggeredScaleUp"
REASON_SCALE_DOWN = "ScaleDown"


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    scale_down_delay: timedelta


@dataclass(frozen=True)
class PoolPlan:
    """What to do to one pool; `replicas == current` and no marks means nothing."""

    pool: str
    current: int
    replicas: int
    max_replicas: int
    resource_version: str
    reason: str = ""
    mark: tuple[str, ...] = ()  # Machines to annotate for deletion
    unmark: tuple[str, ...] = ()  # stale annotations to withdraw
    removed_nodes: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()  # namespace/name of the pods a scale-up is for


@dataclass(frozen=True)
class Plan:
    pools: tuple[PoolPlan, ...]
    empty_since: dict[str, datetime]
    # Pending pods no pool can help (cluster-autoscaler's NotTriggerScaleUp).
    unhelped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def autoscaling_of(pool: Obj) -> Autoscaling | str | None:
    """The pool's bounds; None when it does not autoscale, a message when its settings are
    unusable (no maxReplicas, min above max, a malformed delay)."""
    raw = (pool.get("spec") or {}).get("autoscaling") or {}
    if not raw.get("enabled"):
        return None
    if raw.get("maxReplicas") is None:
        return "autoscaling.maxReplicas is required"
    low, high = _int(raw.get("minReplicas"), 0), _int(raw.get("maxReplicas"), -1)
    if low < 0 or high < low:
        return f"autoscaling bounds are invalid: minReplicas {low}, maxReplicas {high}"
    delay = DEFAULT_SCALE_DOWN_DELAY
    if raw.get("scaleDownDelay"):
        try:
            delay = timedelta(microseconds=parse_go_duration(str(raw["scaleDownDelay"])) / 1000)
        except ValueError as exc:
            return f"autoscaling.scaleDownDelay: {exc}"
    return Autoscaling(low, high, delay)


def is_unschedulable(pod: Obj) -> bool:
    """Pending, unbound, and rejected by the scheduler (not merely gated or not yet tried)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("nodeName") or _meta(pod).get("deletionTimestamp"):
        return False
    if status.get("phase") not in (None, "", "Pending"):
        return False
    if status.get("nominatedNodeName"):
        return False  # preemption made room for it; it will bind there
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def _occupies(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _blocks_removal(pod: Obj) -> bool:
    return _occupies(pod) and not is_daemonset_pod(pod) and not is_mirror_pod(pod)


def _request_size(pod: PodInfo) -> tuple[int, int, str]:
    return (pod.requests.milli_cpu, pod.requests.memory, pod.key)


@dataclass
class _Pool:
    obj: Obj
    name: str
    replicas: int
    autoscaling: Autoscaling | None
    nodes: list[Obj] = field(default_factory=list)
    machines: list[Obj] = field(default_factory=list)
    in_flight: int = 0
    marked: list[str] = field(default_factory=list)
    stale_marks: list[str] = field(default_factory=list)
    node_machine: dict[str, str] = field(default_factory=dict)
    target: int = 0


def _machine_node(machine: Obj) -> str:
    return str((machine.get("status") or {}).get("nodeName") or "")


def _pool_of_machine(machine: Obj) -> str:
    labels = _meta(machine).get("labels") or {}
    return str(labels.get(LABEL_NODE_POOL) or (machine.get("spec") or {}).get("nodePool") or "")


def _build_pools(
    pools: Sequence[Obj], machines: Sequence[Obj], nodes: Sequence[Obj], problems: list[str]
) -> dict[str, _Pool]:
    out: dict[str, _Pool] = {}
    for obj in pools:
        if _meta(obj).get("deletionTimestamp"):
            continue
        name = _name(obj)
        settings = autoscaling_of(obj)
        if isinstance(settings, str):
            problems.append(f"NodePool {name}: {settings}")
            settings = None
        replicas = _int((obj.get("spec") or {}).get("replicas"), 0)
        out[name] = _Pool(obj, name, replicas, settings)
    nodes_by_name = {_name(n): n for n in nodes}
    for node in nodes:
        pool = out.get(str((_meta(node).get("labels") or {}).get(LABEL_NODE_POOL) or ""))
        if pool is not None:
            pool.nodes.append(node)
    for machine in machines:
        pool = out.get(_pool_of_machine(machine))
        if pool is not None:
            pool.machines.append(machine)
    for pool in out.values():
        by_label = {
            str((_meta(n).get("labels") or {}).get(LABEL_MACHINE) or ""): _name(n) for n in pool.nodes
        }
        live = 0
        for machine in pool.machines:
            mname = _name(machine)
            phase = (machine.get("status") or {}).get("phase") or MachinePhase.PENDING
            # Counted as the operator counts them (every Machine not being deleted, Failed ones
            # included: remediation deletes those, then replaces them).
            if _meta(machine).get("deletionTimestamp") or phase == MachinePhase.DELETING:
                continue
            live += 1
            node_name = _machine_node(machine) or by_label.get(mname, "")
            if node_name:
                pool.node_machine[node_name] = mname
            if ANNOTATION_DELETE_MACHINE in (_meta(machine).get("annotations") or {}):
                pool.marked.append(mname)
                continue
            # On its way until its node is Ready, whatever phase the operator last wrote: a Ready
            # node is already among the existing nodes and must not count twice.
            joined = nodes_by_name.get(node_name)
            if phase != MachinePhase.FAILED and (joined is None or not _usable(joined)):
                pool.in_flight += 1
        # Marks the operator is acting on are matched by replicas already lowered below the
        # live machines; any beyond that were left by a pass that did not finish.
        acted_on = max(0, live - pool.replicas)
        if len(pool.marked) > acted_on:
            pool.stale_marks = sorted(pool.marked)[: len(pool.marked) - acted_on]
            pool.marked = [m for m in pool.marked if m not in pool.stale_marks]
        counted = live - len(pool.marked)
        pool.target = pool.replicas
        if pool.autoscaling is not None:
            pool.target = max(pool.target, pool.autoscaling.min_replicas)
        # Replicas the operator has not made a Machine for yet are nodes on the way too.
        pool.in_flight += max(0, pool.target - counted)
    return out


STARTUP_TAINTS = frozenset({"node.cloudprovider.kubernetes.io/uninitialized"})


def _usable(node: Obj) -> bool:
    """Ready and past its startup taints (the CCM has yet to initialize it): until then it is
    capacity on its way, not capacity the scheduler can use."""
    taints = (node.get("spec") or {}).get("taints") or []
    return is_ready(node) and not any(t.get("key") in STARTUP_TAINTS for t in taints)


def _first_fit(pods: Sequence[PodInfo], bins: list[NodeInfo]) -> list[PodInfo]:
    """Place each pod on the first bin it fits (adding it there); the pods that fit none."""
    left: list[PodInfo] = []
    for pod in pods:
        for node in bins:
            if fits(pod, node):
                node.add_pod(pod)
                break
        else:
            left.append(pod)
    return left


@dataclass
class _Option:
    pool: _Pool
    nodes: list[NodeInfo]
    pods: list[PodInfo]

    def waste(self) -> float:
        total_cpu = sum(n.allocatable.milli_cpu for n in self.nodes)
        total_mem = sum(n.allocatable.memory for n in self.nodes)
        used_cpu = sum(n.requested.milli_cpu for n in self.nodes)
        used_mem = sum(n.requested.memory for n in self.nodes)
        cpu = (total_cpu - used_cpu) / total_cpu if total_cpu > 0 else 0.0
        mem = (total_mem - used_mem) / total_mem if total_mem > 0 else 0.0
        return (cpu + mem) / 2


def _expand(
    pool: _Pool, pending: Sequence[PodInfo], pods_by_node: Mapping[str, Sequence[PodInfo]]
) -> _Option | None:
    assert pool.autoscaling is not None
    room = pool.autoscaling.max_replicas - pool.target
    if room <= 0:
        return None
    probe = node_template(pool.obj, pool.nodes, pods_by_node)
    if probe is None:
        return None
    candidates = [p for p in pending if fits(p, probe)]
    nodes: list[NodeInfo] = []
    helped: list[PodInfo] = []
    for pod in candidates:
        for node in nodes:
            if fits(pod, node):
                node.add_pod(pod)
                helped.append(pod)
                break
        else:
            if len(nodes) < room:
                fresh = node_template(pool.obj, pool.nodes, pods_by_node, len(nodes))
                if fresh is not None and fits(pod, fresh):
                    fresh.add_pod(pod)
                    nodes.append(fresh)
                    helped.append(pod)
    if not nodes:
        return None
    return _Option(pool, nodes, helped)


def plan(
    pools: Sequence[Obj],
    machines: Sequence[Obj],
    nodes: Sequence[Obj],
    pods: Sequence[Obj],
    *,
    now: datetime,
    empty_since: Mapping[str, datetime],
) -> Plan:
    try:
        return _plan(pools, machines, nodes, pods, now, empty_since)
    finally:
        forget()


def _plan(
    pools: Sequence[Obj],
    machines: Sequence[Obj],
    nodes: Sequence[Obj],
    pods: Sequence[Obj],
    now: datetime,
    empty_since: Mapping[str, datetime],
) -> Plan:
    problems: list[str] = []
    by_pool = _build_pools(pools, machines, nodes, problems)

    bound: dict[str, list[PodInfo]] = {}
    pending: list[PodInfo] = []
    for pod in pods:
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        if node_name:
            if _occupies(pod):
                bound.setdefault(node_name, []).append(PodInfo(dict(pod)))
        elif is_unschedulable(pod):
            pending.append(PodInfo(dict(pod)))
    # First-fit decreasing: the largest requests first, so small pods fill the gaps.
    pending.sort(key=_request_size, reverse=True)

    # Nodes that will be gone soon hold nothing new.
    leaving = {n for p in by_pool.values() for n, m in p.node_machine.items() if m in p.marked}
    existing = [
        NodeInfo(dict(n), *bound.get(_name(n), ()))
        for n in sorted(nodes, key=_name)
        if _usable(n) and not _meta(n).get("deletionTimestamp") and _name(n) not in leaving
    ]
    used_by_pending: set[str] = set()
    remaining: list[PodInfo] = []
    for waiting in pending:
        for info in existing:
            if fits(waiting, info):
                info.add_pod(waiting)
                used_by_pending.add(info.name)
                break
        else:
            remaining.append(waiting)

    arriving: list[NodeInfo] = []
    for pool in sorted(by_pool.values(), key=lambda p: p.name):
        for i in range(pool.in_flight):
            template = node_template(pool.obj, pool.nodes, bound, i)
            if template is not None:
                arriving.append(template)
    remaining = _first_fit(remaining, arriving)

    growth: dict[str, list[PodInfo]] = {}
    scalable = [p for p in sorted(by_pool.values(), key=lambda p: p.name) if p.autoscaling is not None]
    while remaining:
        options = [o for o in (_expand(p, remaining, bound) for p in scalable) if o is not None]
        if not options:
            break
        best = min(options, key=lambda o: (o.waste(), -len(o.pods), o.pool.name))
        best.pool.target += len(best.nodes)
        growth.setdefault(best.pool.name, []).extend(best.pods)
        helped = {p.uid for p in best.pods}
        remaining = [p for p in remaining if p.uid not in helped]

    since: dict[str, datetime] = {}
    plans: list[PoolPlan] = []
    for pool in sorted(by_pool.values(), key=lambda p: p.name):
        settings = pool.autoscaling
        if settings is None:
            continue
        mark: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        candidates: list[tuple[datetime, str]] = []
        for node in pool.nodes:
            node_name = _name(node)
            machine = pool.node_machine.get(node_name)
            if (
                machine is None
                or machine in pool.marked
                or _meta(node).get("deletionTimestamp")
                or node_name in used_by_pending
                or any(_blocks_removal(p.pod) for p in bound.get(node_name, ()))
            ):
                continue
            since[node_name] = first = empty_since.get(node_name, now)
            if now - first >= settings.scale_down_delay:
                candidates.append((first, node_name))
        reason = ""
        if pool.target > pool.replicas:
            reason = REASON_SCALE_UP if pool.name in growth else REASON_MIN
        elif candidates and pool.in_flight == 0 and pool.target > settings.min_replicas:
            _, node_name = min(candidates)
            mark, removed = (pool.node_machine[node_name],), (node_name,)
            pool.target -= 1
            reason = REASON_SCALE_DOWN
            since.pop(node_name, None)
        unmark = tuple(m for m in pool.stale_marks if m not in mark)
        if pool.target != pool.replicas or mark or unmark:
            plans.append(
                PoolPlan(
                    pool=pool.name,
                    current=pool.replicas,
                    replicas=pool.target,
                    max_replicas=settings.max_replicas,
                    resource_version=str(_meta(pool.obj).get("resourceVersion") or ""),
                    reason=reason,
                    mark=mark,
                    unmark=unmark,
                    removed_nodes=removed,
                    pods=tuple(p.key for p in growth.get(pool.name, ())),
                )
            )
    return Plan(
        pools=tuple(plans),
        empty_since=since,
        unhelped=tuple(p.key for p in remaining),
        problems=tuple(problems),
    )
