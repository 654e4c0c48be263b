"""NodeResourcesFit: the pod's requests must fit in the node's allocatable minus what its pods
request ("Insufficient cpu", "Too many pods", ...); nodes are scored by a strategy:
LeastAllocated (default, spreads), MostAllocated (packs) or RequestedToCapacityRatio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.scheduler.cluster_events import (
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    QueueingHint,
    Resource,
)
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import (
    EnqueueExtensions,
    FilterPlugin,
    Framework,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
)
from controlplane.scheduler.node_columns import NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.resource_allocation import (
    ResourceAllocationScorer,
    least_allocated_batch,
    least_resource_scorer,
    most_allocated_batch,
    most_resource_scorer,
    requested_to_capacity_ratio_scorer,
    resource_specs,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.resources import Resource as Res
from controlplane.scheduler.resources import is_extended_resource_name
from controlplane.scheduler.status import Code, PreFilterResult, Status

__all__ = ["InsufficientResource", "NodeResourcesFit", "fits_request"]

_PRE_FILTER_KEY = "PreFilterNodeResourcesFit"
_PRE_SCORE_KEY = "PreScoreNodeResourcesFit"

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"


@dataclass(frozen=True)
class InsufficientResource:
    resource: str
    reason: str
    requested: int
    used: int
    capacity: int
    # Even an empty node is too small: preempting its pods cannot help.
    unresolvable: bool = False


def fits_request(
    request: Res,
    node: NodeInfo,
    ignored: frozenset[str] = frozenset(),
    ignored_groups: frozenset[str] = frozenset(),
) -> list[InsufficientResource]:
    out: list[InsufficientResource] = []
    allowed = node.allocatable.allowed_pod_number
    if len(node.pods) + 1 > allowed:
        out.append(InsufficientResource("pods", "Too many pods", 1, len(node.pods), allowed))
    if request.is_zero_request():
        return out
    alloc, used = node.allocatable, node.requested
    if request.milli_cpu > 0 and request.milli_cpu > alloc.milli_cpu - used.milli_cpu:
        out.append(
            InsufficientResource(
                "cpu",
                "Insufficient cpu",
                request.milli_cpu,
                used.milli_cpu,
                alloc.milli_cpu,
                request.milli_cpu > alloc.milli_cpu,
            )
        )
    if request.memory > 0 and request.memory > alloc.memory - used.memory:
        out.append(
            InsufficientResource(
                "memory",
                "Insufficient memory",
                request.memory,
                used.memory,
                alloc.memory,
                request.memory > alloc.memory,
            )
        )
    if (
        request.ephemeral_storage > 0
        and request.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    ):
        out.append(
            InsufficientResource(
                "ephemeral-storage",
                "Insufficient ephemeral-storage",
                request.ephemeral_storage,
                used.ephemeral_storage,
                alloc.ephemeral_storage,
                request.ephemeral_storage > alloc.ephemeral_storage,
            )
        )
    for name, quantity in request.scalar.items():
        if quantity == 0:
            continue
        if is_extended_resource_name(name) and (name in ignored or name.split("/")[0] in ignored_groups):
            continue
        have, taken = alloc.scalar.get(name, 0), used.scalar.get(name, 0)
        if quantity > have - taken:
            out.append(
                InsufficientResource(name, f"Insufficient {name}", quantity, taken, have, quantity > have)
            )
    return out


class NodeResourcesFit(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin, EnqueueExtensions):
    name = "NodeResourcesFit"

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.ignored = frozenset(args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(args.get("ignoredResourceGroups") or ())
        strategy = args.get("scoringStrategy") or {}
        kind = strategy.get("type") or LEAST_ALLOCATED
        resources = resource_specs(strategy.get("resources"))
        weights = tuple(spec.weight for spec in resources)
        batch = None
        if kind == LEAST_ALLOCATED:
            scorer = least_resource_scorer(resources)
            batch = least_allocated_batch(*weights) if len(weights) == 2 else None
        elif kind == MOST_ALLOCATED:
            scorer = most_resource_scorer(resources)
            batch = most_allocated_batch(*weights) if len(weights) == 2 else None
        elif kind == REQUESTED_TO_CAPACITY_RATIO:
            shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or [
                {"utilization": 0, "score": 10},
                {"utilization": 100, "score": 0},
            ]
            scorer = requested_to_capacity_ratio_scorer(resources, shape)
        else:
            raise ValueError(f"scoring strategy {kind} is not supported")
        self.strategy = kind
        self.allocation = ResourceAllocationScorer(resources, scorer, use_requested=False, batch=batch)

    # -- filter --------------------------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        state.write(_PRE_FILTER_KEY, pod.requests)
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        request: Res | None = state.get(_PRE_FILTER_KEY)
        if request is None:
            request = pod.requests
        insufficient = fits_request(request, node, self.ignored, self.ignored_groups)
        if not insufficient:
            return None
        code = (
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE
            if any(r.unresolvable for r in insufficient)
            else Code.UNSCHEDULABLE
        )
        return Status.of(code, *(r.reason for r in insufficient))

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        request: Res | None = state.get(_PRE_FILTER_KEY)
        if request is None:
            request = pod.requests
        if request.scalar or request.ephemeral_storage:
            return super().filter_nodes(state, pod, nodes, failed)
        # The common request (cpu, memory, a pod slot), checked inline and remembered per node
        # (see NodeInfo.memo); a node that fails goes through fits_request for the reasons.
        cpu, memory = request.milli_cpu, request.memory
        key = (self, cpu, memory)
        if isinstance(nodes, NodeWindow):
            verdicts: list[bool | None] = list(
                nodes.values(key, lambda missing: [_fits(node, cpu, memory) for node in missing])
            )
        else:
            verdicts = [node.memo.get(key) for node in nodes]
            for i, fits in enumerate(verdicts):
                if fits is None:
                    verdicts[i] = nodes[i].memo[key] = _fits(nodes[i], cpu, memory)
        if all(verdicts):
            return nodes
        passed = []
        for node, fits in zip(nodes, verdicts, strict=True):
            if fits:
                passed.append(node)
                continue
            status = self.filter(state, pod, node)
            if status is None:
                passed.append(node)
            else:
                failed[node.name] = status
        return passed

    # -- score ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        state.write(_PRE_SCORE_KEY, self.allocation.pod_request_list(pod))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.allocation.pod_request_list(pod)
        return self.allocation.score_nodes(nodes, requests)

    # -- requeueing ----------------------------------------------------------------------------

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.POD, ActionType.DELETE | ActionType.UPDATE_POD_SCALE_DOWN),
                self._pod_event,
            ),
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.ADD | ActionType.UPDATE_NODE_ALLOCATABLE),
                self._node_changed,
            ),
        ]

    @staticmethod
    def _pod_event(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            if isinstance(old, PodInfo) and not old.node_name and not old.nominated_node_name:
                return QueueingHint.SKIP  # an unscheduled pod held nothing
            return QueueingHint.QUEUE
        if isinstance(new, PodInfo) and (new.uid == pod.uid or new.node_name):
            return QueueingHint.QUEUE
        return QueueingHint.SKIP

    def _node_changed(self, pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        if fits_request(pod.requests, NodeInfo(new), self.ignored, self.ignored_groups):
            return QueueingHint.SKIP  # does not fit even an empty copy of the node
        if old is None:
            return QueueingHint.QUEUE
        before, after = NodeInfo(old).allocatable, NodeInfo(new).allocatable
        request = pod.requests
        if after.allowed_pod_number > before.allowed_pod_number:
            return QueueingHint.QUEUE
        grew = (
            (request.milli_cpu > 0 and after.milli_cpu > before.milli_cpu)
            or (request.memory > 0 and after.memory > before.memory)
            or (request.ephemeral_storage > 0 and after.ephemeral_storage > before.ephemeral_storage)
            or any(q and after.scalar.get(n, 0) > before.scalar.get(n, 0) for n, q in request.scalar.items())
        )
        return QueueingHint.QUEUE if grew else QueueingHint.SKIP


def _fits(node: NodeInfo, cpu: int, memory: int) -> bool:
    """The common request (cpu, memory, a pod slot) against the node: fits_request's verdict
    without its reasons."""
    alloc, used = node.allocatable, node.requested
    return (
        len(node.pods) < alloc.allowed_pod_number
        and (cpu <= 0 or cpu <= alloc.milli_cpu - used.milli_cpu)
        and (memory <= 0 or memory <= alloc.memory - used.memory)
    )


def new(args: Mapping[str, Any], _fw: Framework) -> NodeResourcesFit:
    return NodeResourcesFit(args)
