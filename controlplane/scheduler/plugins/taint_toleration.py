"""TaintToleration: NoSchedule/NoExecute taints a pod does not tolerate exclude the node;
untolerated PreferNoSchedule taints count against it when scoring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
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
    PreScorePlugin,
    ScorePlugin,
)
from controlplane.scheduler.node_columns import NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.helper import default_normalize_score
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, Status
from controlplane.scheduler.taints import (
    PREFER_NO_SCHEDULE,
    do_not_schedule_taints,
    find_matching_untolerated_taint,
    tolerations_tolerate_taint,
)

_TAINTS = attrgetter("taints")
_TAINTED_COLUMN = ("TaintToleration", "tainted")
__all__ = ["TaintToleration", "untolerated_taint_reason"]

_PRE_SCORE_KEY = "PreScoreTaintToleration"


def untolerated_taint_reason(taint: Mapping[str, Any]) -> str:
    # v1.33 wording. v1.35 (and 1.34.x patch releases) print "node(s) had untolerated taint(s)"
    # instead, so as not to leak taint values; pinnace reports 1.33.
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '') or ''}}}"


def _tainted(nodes: list[NodeInfo]) -> list[bool]:
    return [bool(node.taints) for node in nodes]


def _any_tainted(nodes: Sequence[NodeInfo]) -> bool:
    if isinstance(nodes, NodeWindow):
        tainted: list[bool] = nodes.values(_TAINTED_COLUMN, _tainted)
        return any(tainted)
    return any(map(_TAINTS, nodes))


class TaintToleration(FilterPlugin, PreScorePlugin, ScorePlugin, EnqueueExtensions):
    name = "TaintToleration"
    normalizes = True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = find_matching_untolerated_taint(node.taints, pod.tolerations, do_not_schedule_taints)
        if taint is None:
            return None
        return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, untolerated_taint_reason(taint))

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        if not _any_tainted(nodes):
            return nodes
        return super().filter_nodes(state, pod, nodes, failed)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        # Tolerations without an effect tolerate every effect, PreferNoSchedule included.
        prefer = [t for t in pod.tolerations if not t.get("effect") or t.get("effect") == PREFER_NO_SCHEDULE]
        state.write(_PRE_SCORE_KEY, prefer)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations = state.get(_PRE_SCORE_KEY)
        if tolerations is None:
            tolerations = pod.tolerations
        return sum(
            1
            for taint in node.taints
            if taint.get("effect") == PREFER_NO_SCHEDULE
            and not tolerations_tolerate_taint(tolerations, taint)
        )

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        if not _any_tainted(nodes):
            return [0] * len(nodes)
        return [self.score(state, pod, node) if node.taints else 0 for node in nodes]

    def normalize_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], scores: list[int]
    ) -> Status | None:
        default_normalize_score(scores, reverse=True)
        return None

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.ADD | ActionType.UPDATE_NODE_TAINT), self._node_changed
            ),
            ClusterEventWithHint(
                ClusterEvent(Resource.POD, ActionType.UPDATE_POD_TOLERATION), self._pod_changed
            ),
        ]

    @staticmethod
    def _node_changed(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        was_untolerated = old is None or (
            find_matching_untolerated_taint(
                (old.get("spec") or {}).get("taints") or [], pod.tolerations, do_not_schedule_taints
            )
            is not None
        )
        is_untolerated = (
            find_matching_untolerated_taint(
                (new.get("spec") or {}).get("taints") or [], pod.tolerations, do_not_schedule_taints
            )
            is not None
        )
        return QueueingHint.QUEUE if was_untolerated and not is_untolerated else QueueingHint.SKIP

    @staticmethod
    def _pod_changed(pod: PodInfo, _old: Any, new: Any) -> QueueingHint:
        return QueueingHint.QUEUE if isinstance(new, PodInfo) and new.uid == pod.uid else QueueingHint.SKIP


def new(_args: Mapping[str, Any], _fw: Framework) -> TaintToleration:
    return TaintToleration()
