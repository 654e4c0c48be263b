"""PodTopologySpread: DoNotSchedule constraints filter nodes whose domain would exceed maxSkew
(matching pods in the domain + the pod itself - the global minimum); ScheduleAnyway constraints
(and, for pods without constraints, the cluster defaults over the pod's Service/ReplicaSet/
StatefulSet selector) score nodes by how few matching pods their domains hold."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, Operator, Requirement, label_selector_from_dict
from controlplane.scheduler.cluster_events import (
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    QueueingHint,
    Resource,
)
from controlplane.scheduler.cycle_state import CycleState, StateData
from controlplane.scheduler.framework import (
    MAX_NODE_SCORE,
    EnqueueExtensions,
    FilterPlugin,
    Framework,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
)
from controlplane.scheduler.gomath import go_round
from controlplane.scheduler.node_columns import NodeWindow
from controlplane.scheduler.node_tally import Contribution, NodeTally, TallyCache
from controlplane.scheduler.nodeaffinity import RequiredNodeAffinity, required_node_affinity
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, PreFilterResult, Status
from controlplane.scheduler.taints import do_not_schedule_taints, find_matching_untolerated_taint

__all__ = [
    "ERR_REASON_CONSTRAINTS_NOT_MATCH",
    "ERR_REASON_NODE_LABEL_NOT_MATCH",
    "PodTopologySpread",
    "default_selector",
]

ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR = "Honor"
IGNORE = "Ignore"

# The cluster-level default constraints (DefaultingType "System").
SYSTEM_DEFAULT_CONSTRAINTS: tuple[Mapping[str, Any], ...] = (
    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY},
    {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY},
)

_PRE_FILTER_KEY = "PreFilterPodTopologySpread"
_PRE_SCORE_KEY = "PreScorePodTopologySpread"
_INVALID_SCORE = -1


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    node_affinity_policy: str = HONOR
    node_taints_policy: str = IGNORE

    def match_node_inclusion_policies(
        self, pod: PodInfo, node: Mapping[str, Any], require: RequiredNodeAffinity
    ) -> bool:
        if self.node_affinity_policy == HONOR and not require.match(node):
            return False
        if self.node_taints_policy == HONOR:
            taints = (node.get("spec") or {}).get("taints") or []
            if find_matching_untolerated_taint(taints, pod.tolerations, do_not_schedule_taints) is not None:
                return False
        return True


def _merge(selector: LabelSelector, labels: Mapping[str, str]) -> LabelSelector:
    reqs = [Requirement.build(k, Operator.EQUALS, [v]) for k, v in labels.items()]
    return LabelSelector(tuple(sorted([*reqs, *selector.requirements], key=lambda r: r.key)))


def filter_constraints(
    raw: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str], action: str
) -> list[Constraint]:
    out: list[Constraint] = []
    for c in raw:
        if c.get("whenUnsatisfiable") != action:
            continue
        selector = label_selector_from_dict(c.get("labelSelector"))
        match_keys = c.get("matchLabelKeys") or []
        if match_keys:
            extra = {k: pod_labels[k] for k in match_keys if k in pod_labels}
            if extra:
                selector = _merge(selector, extra)
        out.append(
            Constraint(
                max_skew=int(c.get("maxSkew") or 1),
                topology_key=str(c.get("topologyKey") or ""),
                selector=selector,
                min_domains=int(c["minDomains"]) if c.get("minDomains") is not None else 1,
                node_affinity_policy=str(c.get("nodeAffinityPolicy") or HONOR),
                node_taints_policy=str(c.get("nodeTaintsPolicy") or IGNORE),
            )
        )
    return out


def _controller_of(pod: PodInfo) -> Mapping[str, Any] | None:
    for ref in (pod.pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def default_selector(pod: PodInfo, fw: Framework) -> LabelSelector:
    """helper.DefaultSelector: the union of the selectors of the Services selecting the pod and
    of its controlling ReplicationController, ReplicaSet or StatefulSet."""
    merged: dict[str, str] = {}
    for service in fw.listers.services(pod.namespace):
        sel = (service.get("spec") or {}).get("selector")
        # A Service without a selector selects nothing, not everything.
        if sel is None:
            continue
        if all(pod.labels.get(k) == v for k, v in sel.items()):
            merged.update(sel)
    selector = _merge(LabelSelector(), merged)
    owner = _controller_of(pod)
    if owner is None:
        return selector
    kind, api_version = owner.get("kind"), owner.get("apiVersion")
    if kind == "ReplicationController" and api_version == "v1":
        rc = fw.listers.owner(kind, pod.namespace, str(owner.get("name")))
        if rc is not None:
            merged.update((rc.get("spec") or {}).get("selector") or {})
            selector = _merge(LabelSelector(), merged)
    elif kind in ("ReplicaSet", "StatefulSet") and api_version == "apps/v1":
        obj = fw.listers.owner(str(kind), pod.namespace, str(owner.get("name")))
        if obj is not None:
            try:
                other = label_selector_from_dict((obj.get("spec") or {}).get("selector"))
            except errors.StatusError:
                return selector
            if not other.nothing:
                selector = LabelSelector(
                    tuple(sorted([*selector.requirements, *other.requirements], key=lambda r: r.key))
                )
    return selector


def _node_labels_match(labels: Mapping[str, str], constraints: Sequence[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


def count_pods_match_selector(pods: Iterable[PodInfo], selector: LabelSelector, namespace: str) -> int:
    # Terminating pods are on their way out (kubernetes#87621).
    return sum(1 for p in pods if not p.deleting and p.namespace == namespace and selector.matches(p.labels))


@dataclass
class _CriticalPaths:
    """The two domains with the fewest matching pods; [0] always holds the minimum."""

    paths: list[list[Any]] = field(default_factory=lambda: [["", math.inf], ["", math.inf]])

    def update(self, value: str, num: int) -> None:
        p = self.paths
        i = 0 if value == p[0][0] else 1 if value == p[1][0] else -1
        if i >= 0:
            p[i][1] = num
            if p[0][1] > p[1][1]:
                p[0], p[1] = p[1], p[0]
        elif num < p[0][1]:
            p[1] = p[0]
            p[0] = [value, num]
        elif num < p[1][1]:
            p[1] = [value, num]

    def copy(self) -> _CriticalPaths:
        return _CriticalPaths([list(self.paths[0]), list(self.paths[1])])


@dataclass
class _PreFilterState(StateData):
    constraints: list[Constraint]
    critical_paths: list[_CriticalPaths]
    tp_value_to_match_num: list[dict[str, int]]

    def clone(self) -> _PreFilterState:
        return _PreFilterState(
            self.constraints,
            [p.copy() for p in self.critical_paths],
            [dict(m) for m in self.tp_value_to_match_num],
        )

    def min_match_num(self, i: int, min_domains: int) -> int:
        # Fewer eligible domains than minDomains: the global minimum counts as 0.
        if len(self.tp_value_to_match_num[i]) < min_domains:
            return 0
        return int(self.critical_paths[i].paths[0][1])


@dataclass
class _PreScoreState:
    constraints: list[Constraint]
    ignored_nodes: set[str]
    counts: list[dict[str, int]]
    weights: list[float]
    # The per-node counts of this cycle's tally, when the pod's counts could be tallied: the
    # hostname constraints' counts are then looked up instead of recounted per scored node.
    tally: NodeTally | None = None


_LABEL_COLUMN = "PodTopologySpread/label"
_NO_LABEL = object()  # a column value may not be None


def _label_values(key: str) -> Callable[[list[NodeInfo]], list[object]]:
    def values(nodes: list[NodeInfo]) -> list[object]:
        return [node.labels.get(key, _NO_LABEL) for node in nodes]

    return values


class PodTopologySpread(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin, EnqueueExtensions):
    name = "PodTopologySpread"
    normalizes = True

    def __init__(self, args: Mapping[str, Any], fw: Framework) -> None:
        self.fw = fw
        self._tallies: TallyCache[tuple[str, tuple[tuple[str, LabelSelector], ...]]] = TallyCache()
        self._score_tallies: TallyCache[tuple[bool, str, tuple[tuple[str, LabelSelector], ...]]] = (
            TallyCache()
        )
        defaulting = args.get("defaultingType") or "System"
        if defaulting == "System":
            self.default_constraints: list[Mapping[str, Any]] = list(SYSTEM_DEFAULT_CONSTRAINTS)
            self.system_defaulted = True
        else:
            self.default_constraints = list(args.get("defaultConstraints") or [])
            self.system_defaulted = False

    def _constraints(self, pod: PodInfo, action: str) -> list[Constraint]:
        own = pod.spec.get("topologySpreadConstraints") or []
        if own:
            return filter_constraints(own, pod.labels, action)
        constraints = filter_constraints(self.default_constraints, pod.labels, action)
        if not constraints:
            return []
        selector = default_selector(pod, self.fw)
        if selector.empty:
            return []
        return [
            Constraint(
                c.max_skew,
                c.topology_key,
                selector,
                c.min_domains,
                c.node_affinity_policy,
                c.node_taints_policy,
            )
            for c in constraints
        ]

    # -- filter --------------------------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        try:
            constraints = self._constraints(pod, DO_NOT_SCHEDULE)
        except errors.StatusError as exc:
            return None, Status.error(f"get constraints from pod: {exc.message}")
        if not constraints:
            return None, Status(Code.SKIP)
        require = required_node_affinity(pod.pod)
        if self._pod_independent(constraints, require) and nodes is self.fw.snapshot.node_info_list:
            counts = self._tallied_counts(pod.namespace, constraints)
        else:
            counts = self._counts(pod, constraints, require, nodes)
        paths = []
        for i in range(len(constraints)):
            cp = _CriticalPaths()
            for value, num in counts[i].items():
                cp.update(value, num)
            paths.append(cp)
        state.write(_PRE_FILTER_KEY, _PreFilterState(constraints, paths, counts))
        return None, None

    @staticmethod
    def _pod_independent(constraints: Sequence[Constraint], require: RequiredNodeAffinity) -> bool:
        """Whether which nodes count depends on nothing but their labels: no node affinity or
        selector to honour, no taints to honour."""
        return (
            not require.node_selector_labels
            and require.node_selector is None
            and all(c.node_taints_policy != HONOR for c in constraints)
        )

    def _counts(
        self,
        pod: PodInfo,
        constraints: Sequence[Constraint],
        require: RequiredNodeAffinity,
        nodes: Iterable[NodeInfo],
    ) -> list[dict[str, int]]:
        counts: list[dict[str, int]] = [{} for _ in constraints]
        for info in nodes:
            node = info.node
            if node is None or not _node_labels_match(info.labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if not c.match_node_inclusion_policies(pod, node, require):
                    continue
                value = info.labels[c.topology_key]
                counts[i][value] = counts[i].get(value, 0) + count_pods_match_selector(
                    info.pods, c.selector, pod.namespace
                )
        return counts

    def _tallied_counts(self, namespace: str, constraints: Sequence[Constraint]) -> list[dict[str, int]]:
        """`_counts` for pods whose node inclusion is by labels only, kept current across cycles
        (see node_tally): the same numbers, recounting only the nodes changed since last time."""
        key = (namespace, tuple((c.topology_key, c.selector) for c in constraints))

        def make() -> NodeTally:
            keys = [c.topology_key for c in constraints]
            selectors = [c.selector for c in constraints]

            def count(info: NodeInfo) -> list[Contribution]:
                labels = info.labels
                if info.node is None or not all(k in labels for k in keys):
                    return []
                return [
                    (i, labels[k], count_pods_match_selector(info.pods, selectors[i], namespace))
                    for i, k in enumerate(keys)
                ]

            return NodeTally(len(constraints), count)

        totals = self._tallies.get(key, make).sync(self.fw.snapshot)
        return [dict(t) for t in totals]

    def pre_filter_extensions(self) -> PodTopologySpread:
        return self

    def add_pod(self, state: CycleState, pod: PodInfo, to_add: PodInfo, node: NodeInfo) -> Status | None:
        self._update_with_pod(state, to_add, pod, node, 1)
        return None

    def remove_pod(
        self, state: CycleState, pod: PodInfo, to_remove: PodInfo, node: NodeInfo
    ) -> Status | None:
        self._update_with_pod(state, to_remove, pod, node, -1)
        return None

    def _update_with_pod(
        self, state: CycleState, updated: PodInfo, preemptor: PodInfo, node: NodeInfo, delta: int
    ) -> None:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None or updated.namespace != preemptor.namespace or node.node is None:
            return
        if not _node_labels_match(node.labels, s.constraints):
            return
        require = required_node_affinity(preemptor.pod)
        for i, c in enumerate(s.constraints):
            if not c.selector.matches(updated.labels):
                continue
            if not c.match_node_inclusion_policies(preemptor, node.node, require):
                continue
            value = node.labels[c.topology_key]
            s.tp_value_to_match_num[i][value] = s.tp_value_to_match_num[i].get(value, 0) + delta
            s.critical_paths[i].update(value, s.tp_value_to_match_num[i][value])

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None or not s.constraints:
            return None
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_NODE_LABEL_NOT_MATCH)
            min_match = s.min_match_num(i, c.min_domains)
            self_match = 1 if c.selector.matches(pod.labels) else 0
            skew = s.tp_value_to_match_num[i].get(value, 0) + self_match - min_match
            if skew > c.max_skew:
                return Status.of(Code.UNSCHEDULABLE, ERR_REASON_CONSTRAINTS_NOT_MATCH)
        return None

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None or not s.constraints:
            return nodes
        # Per constraint: its key, its counts and the most a domain may hold before the pod.
        checks = [
            (
                c.topology_key,
                s.tp_value_to_match_num[i],
                c.max_skew + s.min_match_num(i, c.min_domains) - (1 if c.selector.matches(pod.labels) else 0),
            )
            for i, c in enumerate(s.constraints)
        ]
        # One Status per reason for every node that fails for it in this call.
        missing_label = Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_NODE_LABEL_NOT_MATCH)
        too_skewed = Status.of(Code.UNSCHEDULABLE, ERR_REASON_CONSTRAINTS_NOT_MATCH)
        if len(checks) == 1 and checks[0][2] >= 0:
            # One constraint (the usual case): the domains already full, then one lookup a node.
            key, counts, limit = checks[0]
            full: set[object] = {value for value, count in counts.items() if count > limit}
            full.add(_NO_LABEL)  # no domain
            if isinstance(nodes, NodeWindow):
                values = nodes.values((_LABEL_COLUMN, key), _label_values(key))
                if full.isdisjoint(values):
                    return nodes
            else:
                values = [node.labels.get(key, _NO_LABEL) for node in nodes]
            passed = []
            for node, value in zip(nodes, values, strict=True):
                if value is _NO_LABEL:
                    failed[node.name] = missing_label
                elif value in full:
                    failed[node.name] = too_skewed
                else:
                    passed.append(node)
            return passed
        passed = []
        for node in nodes:
            labels = node.labels
            for key, counts, limit in checks:
                value = labels.get(key)
                if value is None:
                    failed[node.name] = missing_label
                    break
                if counts.get(value, 0) > limit:
                    failed[node.name] = too_skewed
                    break
            else:
                passed.append(node)
        return passed

    # -- score ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        all_nodes = self.fw.snapshot.list()
        if not all_nodes:
            return Status(Code.SKIP)
        try:
            constraints = self._constraints(pod, SCHEDULE_ANYWAY)
        except errors.StatusError as exc:
            return Status.error(f"calculating preScoreState: {exc.message}")
        if not constraints:
            return Status(Code.SKIP)
        # Nodes lacking a topology label are scored 0 only under the pod's own constraints, so
        # that with the system defaults, nodes without a zone label still spread by hostname.
        require_all = bool(pod.spec.get("topologySpreadConstraints")) or not self.system_defaulted
        ignored: set[str] = set()
        counts: list[dict[str, int]] = [{} for _ in constraints]
        sizes = [0] * len(constraints)
        for info in nodes:
            if require_all and not _node_labels_match(info.labels, constraints):
                ignored.add(info.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key == HOSTNAME:
                    continue  # counted per node in score()
                value = info.labels.get(c.topology_key, "")
                if value not in counts[i]:
                    counts[i][value] = 0
                    sizes[i] += 1
        weights = []
        for i, c in enumerate(constraints):
            size = len(nodes) - len(ignored) if c.topology_key == HOSTNAME else sizes[i]
            weights.append(math.log(size + 2))
        require = required_node_affinity(pod.pod)
        if self._pod_independent(constraints, require) and all_nodes is self.fw.snapshot.node_info_list:
            # Which nodes count depends on their labels only: the counts over every node are
            # kept across cycles (node_tally), so a cycle costs the nodes changed since the
            # last one, not a pass over every pod in the cluster (30,000 at density scale).
            tally = self._score_tally(pod.namespace, constraints, require_all)
            totals = tally.sync(self.fw.snapshot)
            for i, c in enumerate(constraints):
                if c.topology_key == HOSTNAME:
                    continue
                found = totals[i]
                for value in counts[i]:
                    counts[i][value] += found.get(value, 0)
            state.write(_PRE_SCORE_KEY, _PreScoreState(constraints, ignored, counts, weights, tally))
            return None
        for info in all_nodes:
            node = info.node
            if node is None:
                continue
            if require_all and not _node_labels_match(info.labels, constraints):
                continue
            for i, c in enumerate(constraints):
                if not c.match_node_inclusion_policies(pod, node, require):
                    continue
                value = info.labels.get(c.topology_key, "")
                if value not in counts[i]:
                    continue
                counts[i][value] += count_pods_match_selector(info.pods, c.selector, pod.namespace)
        state.write(_PRE_SCORE_KEY, _PreScoreState(constraints, ignored, counts, weights))
        return None

    def _score_tally(self, namespace: str, constraints: Sequence[Constraint], require_all: bool) -> NodeTally:
        """PreScore's counts for pods whose node inclusion is by labels only: every node with a
        Node (and, under `require_all`, every topology label) adds its matching pods to its
        domain; a missing label is the domain "" as in PreScore's loop."""
        key = (require_all, namespace, tuple((c.topology_key, c.selector) for c in constraints))

        def make() -> NodeTally:
            keys = [c.topology_key for c in constraints]
            selectors = [c.selector for c in constraints]

            def count(info: NodeInfo) -> list[Contribution]:
                labels = info.labels
                if info.node is None or (require_all and not all(k in labels for k in keys)):
                    return []
                pods = info.pods
                return [
                    (i, labels.get(k, ""), count_pods_match_selector(pods, selectors[i], namespace))
                    for i, k in enumerate(keys)
                ]

            return NodeTally(len(constraints), count)

        return self._score_tallies.get(key, make)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        s: _PreScoreState | None = state.get(_PRE_SCORE_KEY)
        if s is None or node.name in s.ignored_nodes:
            return 0
        total = 0.0
        for i, c in enumerate(s.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                continue
            if c.topology_key == HOSTNAME:
                found = s.tally.contribution(node.name, i) if s.tally is not None else None
                count = (
                    found
                    if found is not None
                    else count_pods_match_selector(node.pods, c.selector, pod.namespace)
                )
            else:
                count = s.counts[i].get(value, 0)
            total += count * s.weights[i] + (c.max_skew - 1)
        return go_round(total)

    def normalize_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], scores: list[int]
    ) -> Status | None:
        s: _PreScoreState | None = state.get(_PRE_SCORE_KEY)
        if s is None:
            return None
        min_score, max_score = math.inf, 0
        for i, node in enumerate(nodes):
            if node.name in s.ignored_nodes:
                scores[i] = _INVALID_SCORE
                continue
            min_score = min(min_score, scores[i])
            max_score = max(max_score, scores[i])
        for i, score in enumerate(scores):
            if score == _INVALID_SCORE:
                scores[i] = 0
            elif max_score == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (max_score + int(min_score) - score) // max_score
        return None

    # -- requeueing ----------------------------------------------------------------------------

    def events_to_register(self) -> list[ClusterEventWithHint]:
        pod_actions = (
            ActionType.ADD
            | ActionType.UPDATE_POD_LABEL
            | ActionType.UPDATE_POD_TOLERATION
            | ActionType.DELETE
        )
        node_actions = (
            ActionType.ADD | ActionType.DELETE | ActionType.UPDATE_NODE_LABEL | ActionType.UPDATE_NODE_TAINT
        )
        return [
            ClusterEventWithHint(ClusterEvent(Resource.POD, pod_actions), self._pod_changed),
            ClusterEventWithHint(ClusterEvent(Resource.NODE, node_actions), self._node_changed),
        ]

    def _hint_constraints(self, pod: PodInfo) -> list[Constraint]:
        try:
            return self._constraints(pod, DO_NOT_SCHEDULE)
        except errors.StatusError:
            return []

    def _pod_changed(self, pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        changed = new if isinstance(new, PodInfo) else old
        if not isinstance(changed, PodInfo):
            return QueueingHint.QUEUE
        if changed.uid == pod.uid:
            return QueueingHint.QUEUE  # e.g. a toleration added, which NodeTaintsPolicy:Honor sees
        if changed.namespace != pod.namespace:
            return QueueingHint.SKIP
        constraints = self._hint_constraints(pod)
        for candidate in (old, new):
            if isinstance(candidate, PodInfo) and any(
                c.selector.matches(candidate.labels) for c in constraints
            ):
                return QueueingHint.QUEUE
        return QueueingHint.SKIP

    def _node_changed(self, pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        constraints = self._hint_constraints(pod)
        node = new if new is not None else old
        labels = (node.get("metadata") or {}).get("labels") or {}
        if old is not None and new is not None:
            old_labels = (old.get("metadata") or {}).get("labels") or {}
            keys_changed = any(
                old_labels.get(c.topology_key) != labels.get(c.topology_key) for c in constraints
            )
            taints_changed = (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")
            if not keys_changed and not (
                taints_changed and any(c.node_taints_policy == HONOR for c in constraints)
            ):
                return QueueingHint.SKIP
            return QueueingHint.QUEUE
        return QueueingHint.QUEUE if _node_labels_match(labels, constraints) else QueueingHint.SKIP


def new(args: Mapping[str, Any], fw: Framework) -> PodTopologySpread:
    return PodTopologySpread(args, fw)
