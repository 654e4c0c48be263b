"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes; preferred node
affinity terms add their weights to the nodes they match."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from controlplane.scheduler.nodeaffinity import (
    OBJECT_NAME_FIELD,
    PreferredSchedulingTerms,
    RequiredNodeAffinity,
    required_node_affinity,
)
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.helper import default_normalize_score
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, PreFilterResult, Status

__all__ = ["ERR_REASON_POD", "NodeAffinity"]

ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_CONFLICT = "pod affinity terms conflict"
_PRE_FILTER_KEY = "PreFilterNodeAffinity"
_PRE_SCORE_KEY = "PreScoreNodeAffinity"


def _node_affinity(pod: PodInfo) -> Mapping[str, Any]:
    affinity: Mapping[str, Any] = (pod.spec.get("affinity") or {}).get("nodeAffinity") or {}
    return affinity


class NodeAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin, EnqueueExtensions):
    name = "NodeAffinity"
    normalizes = True

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is None and not pod.spec.get("nodeSelector"):
            return None, Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, required_node_affinity(pod.pod))
        if required is None:
            return None, None
        # Terms that pin metadata.name (DaemonSet pods do) narrow the nodes to look at.
        names: set[str] | None = None
        for term in required.get("nodeSelectorTerms") or []:
            term_names: set[str] | None = None
            for expr in term.get("matchFields") or []:
                if expr.get("key") == OBJECT_NAME_FIELD and expr.get("operator") == "In":
                    values = {str(v) for v in expr.get("values") or []}
                    term_names = values if term_names is None else term_names & values
            if term_names is None:
                return None, None  # terms are ORed: this one allows every node
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return None, Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_CONFLICT)
        if names:
            return PreFilterResult(names), None
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        required: RequiredNodeAffinity | None = state.get(_PRE_FILTER_KEY)
        if required is None:
            required = required_node_affinity(pod.pod)
        if node.node is None or required.match(node.node):
            return None
        return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        required: RequiredNodeAffinity | None = state.get(_PRE_FILTER_KEY)
        if required is None:
            required = required_node_affinity(pod.pod)
        match = required.match
        passed = []
        for node in nodes:
            if node.node is None or match(node.node):
                passed.append(node)
            else:
                failed[node.name] = Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_POD)
        return passed

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        if not preferred:
            return Status(Code.SKIP)
        state.write(_PRE_SCORE_KEY, PreferredSchedulingTerms.parse(preferred))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        terms: PreferredSchedulingTerms | None = state.get(_PRE_SCORE_KEY)
        if terms is None:
            terms = PreferredSchedulingTerms.parse(
                _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
            )
        return terms.score(node.node) if node.node is not None else 0

    def normalize_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], scores: list[int]
    ) -> Status | None:
        default_normalize_score(scores, reverse=False)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL), self._node_changed
            )
        ]

    @staticmethod
    def _node_changed(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        required = required_node_affinity(pod.pod)
        if not required.match(new):
            return QueueingHint.SKIP
        if old is not None and required.match(old):
            return QueueingHint.SKIP  # it matched before: the rejection came from elsewhere
        return QueueingHint.QUEUE


def new(_args: Mapping[str, Any], _fw: Framework) -> NodeAffinity:
    return NodeAffinity()
