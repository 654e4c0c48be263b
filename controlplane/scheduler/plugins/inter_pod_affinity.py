"""InterPodAffinity: required pod affinity needs a matching pod in the node's topology domain,
required anti-affinity (the pod's own, and that of pods already placed) forbids one; preferred
terms, both the incoming pod's and existing pods', score domains by their weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from controlplane.scheduler.node_tally import Contribution, NodeTally, TallyCache
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import AffinityTerm, PodInfo, WeightedAffinityTerm
from controlplane.scheduler.status import Code, PreFilterResult, Status

__all__ = [
    "ERR_REASON_AFFINITY_RULES_NOT_MATCH",
    "ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH",
    "ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH",
    "InterPodAffinity",
]

ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY_RULES_NOT_MATCH = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH = "node(s) didn't match pod anti-affinity rules"

_PRE_FILTER_KEY = "PreFilterInterPodAffinity"
_PRE_SCORE_KEY = "PreScoreInterPodAffinity"

TopologyPair = tuple[str, str]


class _Counts(dict[TopologyPair, int]):
    def bump(self, labels: Mapping[str, str], key: str, value: int) -> None:
        tv = labels.get(key)
        if tv is None:
            return
        pair = (key, tv)
        total = self.get(pair, 0) + value
        if total == 0:
            self.pop(pair, None)
        else:
            self[pair] = total

    def with_affinity_terms(
        self, terms: Sequence[AffinityTerm], pod: PodInfo, labels: Mapping[str, str], value: int
    ) -> None:
        """Count the pod in every term's domain when it matches ALL the terms (a single pod
        must satisfy the whole affinity of the incoming pod)."""
        if terms and all(t.matches(pod, None) for t in terms):
            for t in terms:
                self.bump(labels, t.topology_key, value)

    def with_anti_affinity_terms(
        self,
        terms: Sequence[AffinityTerm],
        pod: PodInfo,
        ns_labels: Mapping[str, str] | None,
        labels: Mapping[str, str],
        value: int,
    ) -> None:
        for t in terms:
            if t.matches(pod, ns_labels):
                self.bump(labels, t.topology_key, value)


@dataclass
class _PreFilterState(StateData):
    pod: PodInfo
    required_affinity: tuple[AffinityTerm, ...]
    required_anti_affinity: tuple[AffinityTerm, ...]
    namespace_labels: Mapping[str, str] | None
    existing_anti_affinity_counts: _Counts = field(default_factory=_Counts)
    affinity_counts: _Counts = field(default_factory=_Counts)
    anti_affinity_counts: _Counts = field(default_factory=_Counts)

    def clone(self) -> _PreFilterState:
        return _PreFilterState(
            self.pod,
            self.required_affinity,
            self.required_anti_affinity,
            self.namespace_labels,
            _Counts(self.existing_anti_affinity_counts),
            _Counts(self.affinity_counts),
            _Counts(self.anti_affinity_counts),
        )

    def update_with_pod(self, other: PodInfo, node_labels: Mapping[str, str], multiplier: int) -> None:
        self.existing_anti_affinity_counts.with_anti_affinity_terms(
            other.required_anti_affinity_terms, self.pod, self.namespace_labels, node_labels, multiplier
        )
        self.affinity_counts.with_affinity_terms(self.required_affinity, other, node_labels, multiplier)
        # The incoming pod's namespace selectors are already merged into its namespaces.
        self.anti_affinity_counts.with_anti_affinity_terms(
            self.required_anti_affinity, other, None, node_labels, multiplier
        )


@dataclass
class _PreScoreState:
    topology_score: dict[str, dict[str, int]]


class InterPodAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin, EnqueueExtensions):
    name = "InterPodAffinity"
    normalizes = True

    def __init__(self, args: Mapping[str, Any], fw: Framework) -> None:
        self.fw = fw
        weight = args.get("hardPodAffinityWeight")
        self.hard_pod_affinity_weight = 1 if weight is None else int(weight)
        self.ignore_preferred_terms_of_existing_pods = bool(args.get("ignorePreferredTermsOfExistingPods"))
        self._filter_tallies: TallyCache[tuple[tuple[AffinityTerm, ...], tuple[AffinityTerm, ...]]] = (
            TallyCache()
        )
        self._score_tallies: TallyCache[tuple[Any, ...]] = TallyCache()

    def _merge_namespaces(self, term: AffinityTerm) -> AffinityTerm:
        """Resolve a term's namespaceSelector into namespace names once per cycle."""
        if term.namespace_selector.empty:
            return term
        names = {
            str(ns["metadata"]["name"])
            for ns in self.fw.listers.namespaces()
            if term.namespace_selector.matches((ns.get("metadata") or {}).get("labels") or {})
        }
        return term.with_namespaces(names)

    # -- filter --------------------------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        if pod.parse_error:
            return None, Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, f"parsing pod: {pod.parse_error}")
        s = _PreFilterState(
            pod=pod,
            required_affinity=tuple(self._merge_namespaces(t) for t in pod.required_affinity_terms),
            required_anti_affinity=tuple(self._merge_namespaces(t) for t in pod.required_anti_affinity_terms),
            namespace_labels=self.fw.listers.namespace_labels(pod.namespace),
        )
        for info in self.fw.snapshot.have_pods_with_required_anti_affinity:
            for existing in info.pods_with_required_anti_affinity:
                s.existing_anti_affinity_counts.with_anti_affinity_terms(
                    existing.required_anti_affinity_terms, pod, s.namespace_labels, info.labels, 1
                )
        if s.required_affinity or s.required_anti_affinity:
            if nodes is self.fw.snapshot.node_info_list:
                affinity, anti = self._tallied_counts(s.required_affinity, s.required_anti_affinity)
                s.affinity_counts, s.anti_affinity_counts = _Counts(affinity), _Counts(anti)
            else:
                for info in nodes:
                    for existing in info.pods:
                        s.affinity_counts.with_affinity_terms(s.required_affinity, existing, info.labels, 1)
                        s.anti_affinity_counts.with_anti_affinity_terms(
                            s.required_anti_affinity, existing, None, info.labels, 1
                        )
        if not s.existing_anti_affinity_counts and not s.required_affinity and not s.required_anti_affinity:
            return None, Status(Code.SKIP)
        state.write(_PRE_FILTER_KEY, s)
        return None, None

    def _tallied_counts(
        self, affinity: tuple[AffinityTerm, ...], anti: tuple[AffinityTerm, ...]
    ) -> tuple[dict[TopologyPair, int], dict[TopologyPair, int]]:
        """The pre-filter's affinity and anti-affinity counts over every node, kept current
        across cycles (see node_tally): the same numbers, recounting changed nodes only."""

        def make() -> NodeTally:
            def count(info: NodeInfo) -> list[Contribution]:
                labels = info.labels
                out: dict[tuple[int, TopologyPair], int] = {}
                for existing in info.pods:
                    if affinity and all(t.matches(existing, None) for t in affinity):
                        for t in affinity:
                            value = labels.get(t.topology_key)
                            if value is not None:
                                key = (0, (t.topology_key, value))
                                out[key] = out.get(key, 0) + 1
                    for t in anti:
                        if t.matches(existing, None):
                            value = labels.get(t.topology_key)
                            if value is not None:
                                key = (1, (t.topology_key, value))
                                out[key] = out.get(key, 0) + 1
                return [(slot, pair, n) for (slot, pair), n in out.items()]

            return NodeTally(2, count)

        totals = self._filter_tallies.get((affinity, anti), make).sync(self.fw.snapshot)
        return dict(totals[0]), dict(totals[1])

    def pre_filter_extensions(self) -> InterPodAffinity:
        return self

    def add_pod(self, state: CycleState, pod: PodInfo, to_add: PodInfo, node: NodeInfo) -> Status | None:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(to_add, node.labels, 1)
        return None

    def remove_pod(
        self, state: CycleState, pod: PodInfo, to_remove: PodInfo, node: NodeInfo
    ) -> Status | None:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(to_remove, node.labels, -1)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None:
            return None
        if not _satisfy_pod_affinity(s, node):
            return Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_AFFINITY_RULES_NOT_MATCH)
        if not _satisfy_pod_anti_affinity(s, node):
            return Status.of(Code.UNSCHEDULABLE, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
        if not _satisfy_existing_pods_anti_affinity(s, node):
            return Status.of(Code.UNSCHEDULABLE, ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
        return None

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        s: _PreFilterState | None = state.get(_PRE_FILTER_KEY)
        if s is None:
            return nodes
        # filter() per node, inlined: the same three checks in the same order.
        affinity_keys = [t.topology_key for t in s.required_affinity]
        counts = s.affinity_counts
        # The first pod of a group with affinity to itself may go where no matching pod is.
        first_of_group = not counts and all(t.matches(s.pod, None) for t in s.required_affinity)
        anti_keys = [t.topology_key for t in s.required_anti_affinity] if s.anti_affinity_counts else []
        anti_counts = s.anti_affinity_counts
        existing = s.existing_anti_affinity_counts
        no_affinity = Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_AFFINITY_RULES_NOT_MATCH)
        anti = Status.of(Code.UNSCHEDULABLE, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
        existing_anti = Status.of(Code.UNSCHEDULABLE, ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
        passed = []
        for node in nodes:
            labels = node.labels
            if affinity_keys:
                pods_exist = True
                labelled = True
                for key in affinity_keys:
                    value = labels.get(key)
                    if value is None:
                        labelled = False
                        break
                    if counts.get((key, value), 0) <= 0:
                        pods_exist = False
                if not labelled or not (pods_exist or first_of_group):
                    failed[node.name] = no_affinity
                    continue
            if anti_keys and any(
                (value := labels.get(key)) is not None and anti_counts.get((key, value), 0) > 0
                for key in anti_keys
            ):
                failed[node.name] = anti
                continue
            if existing and not all(existing.get(pair, 0) <= 0 for pair in labels.items()):
                failed[node.name] = existing_anti
                continue
            passed.append(node)
        return passed

    # -- score ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        if not nodes:
            return None
        has_constraints = bool(pod.preferred_affinity_terms or pod.preferred_anti_affinity_terms)
        if self.ignore_preferred_terms_of_existing_pods and not has_constraints:
            return Status(Code.SKIP)
        preferred = [
            WeightedAffinityTerm(self._merge_namespaces(w.term), w.weight)
            for w in pod.preferred_affinity_terms
        ]
        preferred_anti = [
            WeightedAffinityTerm(self._merge_namespaces(w.term), w.weight)
            for w in pod.preferred_anti_affinity_terms
        ]
        ns_labels = self.fw.listers.namespace_labels(pod.namespace)
        hard_weight = self.hard_pod_affinity_weight

        def count(info: NodeInfo) -> list[Contribution]:
            node_labels = info.labels
            if not node_labels:
                return []
            out: dict[TopologyPair, int] = {}

            def process(
                term: AffinityTerm, weight: int, target: PodInfo, labels: Mapping[str, str] | None, sign: int
            ) -> None:
                if term.matches(target, labels):
                    value = node_labels.get(term.topology_key)
                    if value is not None:
                        pair = (term.topology_key, value)
                        out[pair] = out.get(pair, 0) + weight * sign

            for existing in info.pods if has_constraints else info.pods_with_affinity:
                for w in preferred:
                    process(w.term, w.weight, existing, None, 1)
                for w in preferred_anti:
                    process(w.term, w.weight, existing, None, -1)
                if hard_weight > 0:
                    for t in existing.required_affinity_terms:
                        process(t, hard_weight, pod, ns_labels, 1)
                for w in existing.preferred_affinity_terms:
                    process(w.term, w.weight, pod, ns_labels, 1)
                for w in existing.preferred_anti_affinity_terms:
                    process(w.term, w.weight, pod, ns_labels, -1)
            return [(0, pair, n) for pair, n in out.items()]

        # Sums over every node, kept across cycles for pods that ask the same question (nodes
        # without pods with affinity add nothing when the pod has no preferred terms).
        key = (
            has_constraints,
            tuple(preferred),
            tuple(preferred_anti),
            pod.namespace,
            frozenset(pod.labels.items()),
            frozenset(ns_labels.items()) if ns_labels is not None else None,
            hard_weight,
        )
        totals = self._score_tallies.get(key, lambda: NodeTally(1, count)).sync(self.fw.snapshot)[0]
        if not totals:
            return Status(Code.SKIP)
        scores: dict[str, dict[str, int]] = {}
        for pair, weight in totals.items():
            topology_key, value = pair
            scores.setdefault(topology_key, {})[value] = weight
        state.write(_PRE_SCORE_KEY, _PreScoreState(scores))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        s: _PreScoreState | None = state.get(_PRE_SCORE_KEY)
        if s is None:
            return 0
        total = 0
        for key, values in s.topology_score.items():
            value = node.labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return total

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        s: _PreScoreState | None = state.get(_PRE_SCORE_KEY)
        if s is None:
            return [0] * len(nodes)
        items = list(s.topology_score.items())
        out = []
        for node in nodes:
            labels = node.labels
            total = 0
            for key, values in items:
                value = labels.get(key)
                if value is not None:
                    total += values.get(value, 0)
            out.append(total)
        return out

    def normalize_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], scores: list[int]
    ) -> Status | None:
        s: _PreScoreState | None = state.get(_PRE_SCORE_KEY)
        if s is None or not s.topology_score or not scores:
            return None
        lo = min(scores)
        diff = max(scores) - lo
        scores[:] = [int(MAX_NODE_SCORE * ((v - lo) / diff)) if diff > 0 else 0 for v in scores]
        return None

    # -- requeueing ----------------------------------------------------------------------------

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(
                ClusterEvent(Resource.POD, ActionType.ADD | ActionType.UPDATE_POD_LABEL | ActionType.DELETE),
                self._pod_changed,
            ),
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.ADD | ActionType.UPDATE_NODE_LABEL), self._node_changed
            ),
        ]

    @staticmethod
    def _pod_changed(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if (isinstance(new, PodInfo) and not new.node_name) or (
            isinstance(old, PodInfo) and not old.node_name
        ):
            return QueueingHint.SKIP  # only placed pods count for affinity
        terms = pod.required_affinity_terms
        anti = pod.required_anti_affinity_terms
        if isinstance(old, PodInfo) and isinstance(new, PodInfo):
            if (
                terms
                and not all(t.matches(old, None) for t in terms)
                and all(t.matches(new, None) for t in terms)
            ):
                return QueueingHint.QUEUE
            if any(t.matches(old, None) and not t.matches(new, None) for t in anti):
                return QueueingHint.QUEUE
            return QueueingHint.SKIP
        if isinstance(new, PodInfo):
            return (
                QueueingHint.QUEUE
                if terms and all(t.matches(new, None) for t in terms)
                else QueueingHint.SKIP
            )
        if isinstance(old, PodInfo):
            if any(t.matches(old, None) for t in anti) or old.required_anti_affinity_terms:
                return QueueingHint.QUEUE
            return QueueingHint.SKIP
        return QueueingHint.QUEUE

    @staticmethod
    def _node_changed(pod: PodInfo, old: Any, new: Any) -> QueueingHint:
        if new is None:
            return QueueingHint.SKIP
        if old is None:
            return QueueingHint.QUEUE
        keys = {t.topology_key for t in (*pod.required_affinity_terms, *pod.required_anti_affinity_terms)}
        old_labels = (old.get("metadata") or {}).get("labels") or {}
        new_labels = (new.get("metadata") or {}).get("labels") or {}
        if not keys or any(old_labels.get(k) != new_labels.get(k) for k in keys):
            return QueueingHint.QUEUE
        return QueueingHint.SKIP


def _satisfy_pod_affinity(s: _PreFilterState, node: NodeInfo) -> bool:
    pods_exist = True
    for term in s.required_affinity:
        value = node.labels.get(term.topology_key)
        if value is None:
            return False  # every topology label must exist on the node
        if s.affinity_counts.get((term.topology_key, value), 0) <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a group with affinity to itself: allowed when no pod matches anywhere
    # and the pod matches its own terms, or such groups could never start.
    return not s.affinity_counts and all(t.matches(s.pod, None) for t in s.required_affinity)


def _satisfy_pod_anti_affinity(s: _PreFilterState, node: NodeInfo) -> bool:
    if not s.anti_affinity_counts:
        return True
    for term in s.required_anti_affinity:
        value = node.labels.get(term.topology_key)
        if value is not None and s.anti_affinity_counts.get((term.topology_key, value), 0) > 0:
            return False
    return True


def _satisfy_existing_pods_anti_affinity(s: _PreFilterState, node: NodeInfo) -> bool:
    if not s.existing_anti_affinity_counts:
        return True
    return all(s.existing_anti_affinity_counts.get((k, v), 0) <= 0 for k, v in node.labels.items())


def new(args: Mapping[str, Any], fw: Framework) -> InterPodAffinity:
    return InterPodAffinity(args, fw)
