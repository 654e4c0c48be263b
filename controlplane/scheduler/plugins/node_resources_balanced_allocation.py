"""NodeResourcesBalancedAllocation: prefer nodes whose CPU and memory would be used in similar
proportions once the pod is placed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import Framework, PreScorePlugin, ScorePlugin
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.resource_allocation import (
    ResourceAllocationScorer,
    balanced_batch,
    balanced_resource_scorer,
    resource_specs,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, Status

__all__ = ["NodeResourcesBalancedAllocation"]

_PRE_SCORE_KEY = "PreScoreNodeResourcesBalancedAllocation"


class NodeResourcesBalancedAllocation(PreScorePlugin, ScorePlugin):
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.allocation = ResourceAllocationScorer(
            resource_specs(args.get("resources")),
            balanced_resource_scorer,
            use_requested=True,
            batch=balanced_batch,
        )

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        requests = self.allocation.pod_request_list(pod)
        if not any(requests):
            # Best-effort pods would all look best on the same node (kubernetes#129138).
            return Status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, requests)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        requests = state.get(_PRE_SCORE_KEY)
        if requests is None:
            requests = self.allocation.pod_request_list(pod)
            if not any(requests):
                return [0] * len(nodes)
        return self.allocation.score_nodes(nodes, requests)


def new(args: Mapping[str, Any], _fw: Framework) -> NodeResourcesBalancedAllocation:
    return NodeResourcesBalancedAllocation(args)
