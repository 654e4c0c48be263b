"""Scoring by resource allocation (noderesources/resource_allocation.go and the strategies in
least_allocated.go, most_allocated.go, requested_to_capacity_ratio.go), shared by
NodeResourcesFit and NodeResourcesBalancedAllocation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.scheduler.framework import MAX_NODE_SCORE
from controlplane.scheduler.gomath import go_div, go_round
from controlplane.scheduler.node_columns import NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.resources import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    NON_MISSING_DEFAULTS,
    is_scalar_resource_name,
    pod_requests,
)

__all__ = [
    "DEFAULT_RESOURCES",
    "ResourceAllocationScorer",
    "ResourceSpec",
    "balanced_resource_scorer",
    "least_resource_scorer",
    "most_resource_scorer",
    "requested_to_capacity_ratio_scorer",
    "resource_specs",
]

MAX_UTILIZATION = 100
_MEMO_LIMIT = 64
MAX_CUSTOM_PRIORITY_SCORE = 10

Scorer = Callable[[Sequence[int], Sequence[int]], int]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    weight: int = 1


DEFAULT_RESOURCES = (ResourceSpec(CPU, 1), ResourceSpec(MEMORY, 1))


def resource_specs(raw: Sequence[Mapping[str, Any]] | None) -> tuple[ResourceSpec, ...]:
    if not raw:
        return DEFAULT_RESOURCES
    return tuple(ResourceSpec(str(r["name"]), int(r.get("weight") or 1)) for r in raw)


def _weighted_average(
    per_resource: Callable[[int, int], int], resources: Sequence[ResourceSpec], skip_zero: bool = False
) -> Callable[[Sequence[int], Sequence[int]], tuple[int, int]]:
    def run(requested: Sequence[int], allocatable: Sequence[int]) -> tuple[int, int]:
        node_score = weight_sum = 0
        for i, spec in enumerate(resources):
            if allocatable[i] == 0:
                continue
            score = per_resource(requested[i], allocatable[i])
            if skip_zero and score <= 0:
                continue
            node_score += score * spec.weight
            weight_sum += spec.weight
        return node_score, weight_sum

    return run


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    # Pods without requests count the defaults, so requested may exceed capacity.
    requested = min(requested, capacity)
    return requested * MAX_NODE_SCORE // capacity


def least_resource_scorer(resources: Sequence[ResourceSpec]) -> Scorer:
    average = _weighted_average(least_requested_score, resources)

    def score(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total, weights = average(requested, allocatable)
        return total // weights if weights else 0

    return score


def most_resource_scorer(resources: Sequence[ResourceSpec]) -> Scorer:
    average = _weighted_average(most_requested_score, resources)

    def score(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total, weights = average(requested, allocatable)
        return total // weights if weights else 0

    return score


def broken_linear_function(shape: Sequence[tuple[int, int]]) -> Callable[[int], int]:
    """helper.BuildBrokenLinearFunction over (utilization, score) points sorted by utilization."""

    def fn(p: int) -> int:
        for i, (utilization, score) in enumerate(shape):
            if p <= utilization:
                if i == 0:
                    return shape[0][1]
                prev_u, prev_s = shape[i - 1]
                return prev_s + go_div((score - prev_s) * (p - prev_u), utilization - prev_u)
        return shape[-1][1]

    return fn


def requested_to_capacity_ratio_scorer(
    resources: Sequence[ResourceSpec], shape: Sequence[Mapping[str, Any]]
) -> Scorer:
    points = [
        (
            int(p.get("utilization") or 0),
            int(p.get("score") or 0) * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE),
        )
        for p in shape
    ]
    raw = broken_linear_function(points)

    def per_resource(requested: int, capacity: int) -> int:
        if capacity == 0 or requested > capacity:
            return raw(MAX_UTILIZATION)
        return raw(requested * MAX_UTILIZATION // capacity)

    average = _weighted_average(per_resource, resources, skip_zero=True)

    def score(requested: Sequence[int], allocatable: Sequence[int]) -> int:
        total, weights = average(requested, allocatable)
        if weights == 0:
            return 0
        return go_round(total / weights)

    return score


def balanced_resource_scorer(requested: Sequence[int], allocatable: Sequence[int]) -> int:
    fractions: list[float] = []
    total = 0.0
    for req, alloc in zip(requested, allocatable, strict=True):
        if alloc == 0:
            continue
        fraction = min(req / alloc, 1.0)
        total += fraction
        fractions.append(fraction)
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = total / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


# Scores of many nodes at once for the default resources (cpu, memory), given the pod's cpu and
# memory requests: the per-resource functions above, inlined, without a call per node.
BatchScorer = Callable[[Sequence[NodeInfo], bool, int, int], list[int]]


def _cpu_memory(node: NodeInfo, use_requested: bool) -> tuple[int, int, int, int]:
    base = node.requested if use_requested else node.non_zero_requested
    return base.milli_cpu, base.memory, node.allocatable.milli_cpu, node.allocatable.memory


def least_allocated_batch(cpu_weight: int, memory_weight: int) -> BatchScorer:
    def run(nodes: Sequence[NodeInfo], use_requested: bool, cpu: int, memory: int) -> list[int]:
        out = []
        for node in nodes:
            used_cpu, used_memory, alloc_cpu, alloc_memory = _cpu_memory(node, use_requested)
            total = weights = 0
            if alloc_cpu:
                requested = used_cpu + cpu
                if requested <= alloc_cpu:
                    total += (alloc_cpu - requested) * MAX_NODE_SCORE // alloc_cpu * cpu_weight
                weights += cpu_weight
            if alloc_memory:
                requested = used_memory + memory
                if requested <= alloc_memory:
                    total += (alloc_memory - requested) * MAX_NODE_SCORE // alloc_memory * memory_weight
                weights += memory_weight
            out.append(total // weights if weights else 0)
        return out

    return run


def most_allocated_batch(cpu_weight: int, memory_weight: int) -> BatchScorer:
    def run(nodes: Sequence[NodeInfo], use_requested: bool, cpu: int, memory: int) -> list[int]:
        out = []
        for node in nodes:
            used_cpu, used_memory, alloc_cpu, alloc_memory = _cpu_memory(node, use_requested)
            total = weights = 0
            if alloc_cpu:
                total += min(used_cpu + cpu, alloc_cpu) * MAX_NODE_SCORE // alloc_cpu * cpu_weight
                weights += cpu_weight
            if alloc_memory:
                total += (
                    min(used_memory + memory, alloc_memory) * MAX_NODE_SCORE // alloc_memory * memory_weight
                )
                weights += memory_weight
            out.append(total // weights if weights else 0)
        return out

    return run


def balanced_batch(nodes: Sequence[NodeInfo], use_requested: bool, cpu: int, memory: int) -> list[int]:
    out = []
    for node in nodes:
        used_cpu, used_memory, alloc_cpu, alloc_memory = _cpu_memory(node, use_requested)
        if alloc_cpu and alloc_memory:
            cpu_fraction = min((used_cpu + cpu) / alloc_cpu, 1.0)
            memory_fraction = min((used_memory + memory) / alloc_memory, 1.0)
            out.append(int((1 - abs((cpu_fraction - memory_fraction) / 2)) * MAX_NODE_SCORE))
        else:
            out.append(MAX_NODE_SCORE)  # fewer than two fractions: no spread to penalise
    return out


class ResourceAllocationScorer:
    def __init__(
        self,
        resources: Sequence[ResourceSpec],
        scorer: Scorer,
        *,
        use_requested: bool,
        batch: BatchScorer | None = None,
    ) -> None:
        self.resources = tuple(resources)
        self.scorer = scorer
        self.use_requested = use_requested
        self._default_resources = [spec.name for spec in self.resources] == [CPU, MEMORY]
        # `batch` computes what `scorer` does, for the default resources only.
        self.batch = batch if self._default_resources else None

    def pod_request_list(self, pod: PodInfo) -> list[int]:
        """The pod's requests for each scored resource; when scoring against NonZeroRequested
        the defaults stand in for requests a container leaves out."""
        if self._default_resources:
            if self.use_requested:
                return [pod.requests.milli_cpu, pod.requests.memory]
            return list(pod.non_zero_requests)
        reqs = pod_requests(pod.pod, non_missing=None if self.use_requested else NON_MISSING_DEFAULTS)
        return [reqs.get(spec.name, 0) for spec in self.resources]

    def score(self, node: NodeInfo, pod_request: Sequence[int]) -> int:
        return self.score_nodes([node], pod_request)[0]

    def score_nodes(self, nodes: Sequence[NodeInfo], pod_request: Sequence[int]) -> list[int]:
        names = [spec.name for spec in self.resources]
        scorer = self.scorer
        if self.batch is not None:
            return self._memoized_batch(self.batch, nodes, pod_request[0], pod_request[1])
        if self._default_resources:
            # The default resources, without a call per resource per node.
            cpu, memory = pod_request
            out = []
            for node in nodes:
                base = node.requested if self.use_requested else node.non_zero_requested
                capacity = node.allocatable
                out.append(
                    scorer(
                        (base.milli_cpu + cpu, base.memory + memory), (capacity.milli_cpu, capacity.memory)
                    )
                )
            return out
        result = []
        for node in nodes:
            requested = [0] * len(names)
            allocatable = [0] * len(names)
            for i, name in enumerate(names):
                alloc, req = self._allocatable_and_requested(node, name, pod_request[i])
                if alloc == 0:
                    continue
                allocatable[i] = alloc
                requested[i] = req
            result.append(scorer(requested, allocatable))
        return result

    def _memoized_batch(
        self, batch: BatchScorer, nodes: Sequence[NodeInfo], cpu: int, memory: int
    ) -> list[int]:
        """A node's score changes only with the node (a new NodeInfo, or a cleared memo): between
        cycles most nodes are the same objects, so their scores are looked up, not recomputed."""
        key = (self, cpu, memory)
        if isinstance(nodes, NodeWindow):
            return nodes.values(key, lambda missing: batch(missing, self.use_requested, cpu, memory))
        scores: list[int | None] = [node.memo.get(key) for node in nodes]
        if None not in scores:
            return scores  # type: ignore[return-value]  # no None left
        missing = [i for i, score in enumerate(scores) if score is None]
        computed = batch([nodes[i] for i in missing], self.use_requested, cpu, memory)
        for i, score in zip(missing, computed, strict=True):
            scores[i] = score
            memo = nodes[i].memo
            if len(memo) > _MEMO_LIMIT:
                memo.clear()
            memo[key] = score
        return scores  # type: ignore[return-value]  # all filled

    def _allocatable_and_requested(self, node: NodeInfo, name: str, pod_request: int) -> tuple[int, int]:
        requested = node.requested if self.use_requested else node.non_zero_requested
        # An extended resource the pod does not ask for is not scored at all.
        if pod_request == 0 and is_scalar_resource_name(name):
            return 0, 0
        if name == CPU:
            return node.allocatable.milli_cpu, requested.milli_cpu + pod_request
        if name == MEMORY:
            return node.allocatable.memory, requested.memory + pod_request
        if name == EPHEMERAL_STORAGE:
            return node.allocatable.ephemeral_storage, node.requested.ephemeral_storage + pod_request
        if name in node.allocatable.scalar:
            return node.allocatable.scalar[name], node.requested.scalar.get(name, 0) + pod_request
        return 0, 0
