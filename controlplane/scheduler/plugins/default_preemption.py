"""DefaultPreemption (PostFilter; framework/preemption and plugins/defaultpreemption): when no
node fits, find nodes where evicting lower-priority pods would make room, choose victims that
spare as many pods (and PodDisruptionBudgets) as possible, pick the node whose eviction hurts
least, evict there and nominate the pod to it (status.nominatedNodeName)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cmp_to_key
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector, label_selector_from_dict
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import Framework, PostFilterPlugin
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import (
    Code,
    Diagnosis,
    FitError,
    NodeToStatus,
    NominatingInfo,
    NominatingMode,
    PostFilterResult,
    Status,
    is_success,
)

__all__ = [
    "Candidate",
    "DefaultPreemption",
    "filter_pods_with_pdb_violation",
    "more_important_pod",
    "pick_one_node_for_preemption",
]

log = logging.getLogger("pinnace.scheduler.preemption")

MAX_INT32 = 2**31 - 1
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]  # most important first
    num_pdb_violations: int


def _start_time(pod: PodInfo, now: float) -> float:
    """The pod's status.startTime; pods that have not started count as starting now."""
    raw = pod.start_time
    if not raw:
        return now
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now


def more_important_pod(a: PodInfo, b: PodInfo, now: float) -> bool:
    """Higher priority first; between equals, the one that has run longer."""
    if a.priority != b.priority:
        return a.priority > b.priority
    return _start_time(a, now) < _start_time(b, now)


def filter_pods_with_pdb_violation(
    pods: Sequence[PodInfo], pdbs: Sequence[Mapping[str, Any]]
) -> tuple[list[PodInfo], list[PodInfo]]:
    """Split pods (order kept) into those whose eviction would exceed a PDB's disruptionsAllowed
    and the others. Budgets are consumed in order, as the pods would be evicted."""
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    selectors: list[LabelSelector | None] = []
    for pdb in pdbs:
        try:
            selectors.append(label_selector_from_dict((pdb.get("spec") or {}).get("selector")))
        except errors.StatusError:
            selectors.append(None)
    violating: list[PodInfo] = []
    non_violating: list[PodInfo] = []
    for pod in pods:
        violated = False
        if pod.labels:
            for i, pdb in enumerate(pdbs):
                meta = pdb.get("metadata") or {}
                selector = selectors[i]
                if meta.get("namespace") != pod.namespace or selector is None:
                    continue
                # A nil or empty selector matches nothing.
                if selector.empty or not selector.matches(pod.labels):
                    continue
                # Already counted by the API server (an eviction in flight): not a new disruption.
                if pod.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(pod)
    return violating, non_violating


def pick_one_node_for_preemption(candidates: Sequence[Candidate], now: float) -> str:
    """The candidate that minimises, in order: PDB violations, the highest victim priority, the
    sum of victim priorities, the number of victims; then the one whose highest-priority victims
    started latest; then the first."""
    if not candidates:
        return ""

    def earliest_start_of_highest(c: Candidate) -> float:
        top = max(v.priority for v in c.victims)
        return min(_start_time(v, now) for v in c.victims if v.priority == top)

    score_funcs = (
        lambda c: -c.num_pdb_violations,
        lambda c: -c.victims[0].priority,
        lambda c: -sum(v.priority + MAX_INT32 + 1 for v in c.victims),
        lambda c: -len(c.victims),
        earliest_start_of_highest,
    )
    remaining = list(candidates)
    for fn in score_funcs:
        scored = [(fn(c), c) for c in remaining]
        best = max(score for score, _ in scored)
        remaining = [c for score, c in scored if score == best]
        if len(remaining) == 1:
            break
    return remaining[0].node


class DefaultPreemption(PostFilterPlugin):
    name = "DefaultPreemption"

    def __init__(self, args: Mapping[str, Any], fw: Framework) -> None:
        self.fw = fw
        self.min_candidate_nodes_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self.min_candidate_nodes_absolute = int(args.get("minCandidateNodesAbsolute", 100))

    async def post_filter(
        self, state: CycleState, pod: PodInfo, statuses: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status | None]:
        result, status = await self.preempt(state, pod, statuses)
        if status is not None and status.message:
            return result, Status(status.code, (f"preemption: {status.message}",))
        return result, status

    # -- the evaluator ---------------------------------------------------------------------------

    async def preempt(
        self, state: CycleState, pod: PodInfo, statuses: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status | None]:
        latest = self.fw.listers.pod(pod.namespace, pod.name)
        if latest is None:
            return None, Status.error(f'pods "{pod.name}" not found')
        pod = PodInfo(dict(latest), priority=pod.priority)
        eligible, msg = self.pod_eligible_to_preempt_others(pod, statuses.get(pod.nominated_node_name))
        if not eligible:
            return None, Status.of(Code.UNSCHEDULABLE, msg)
        all_nodes = self.fw.snapshot.list()
        candidates, node_statuses, errs = self.find_candidates(state, pod, all_nodes, statuses)
        if errs and not candidates:
            return None, Status.error("; ".join(errs))
        if not candidates:
            diagnosis = Diagnosis(
                node_to_status=NodeToStatus(
                    node_statuses.statuses,
                    Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, PREEMPTION_NOT_HELPFUL),
                )
            )
            fit_error = FitError(pod.key, len(all_nodes), diagnosis)
            return PostFilterResult.with_nominated_node(""), Status.of(Code.UNSCHEDULABLE, str(fit_error))
        best = self.select_candidate(candidates)
        status = await self.prepare_candidate(best, pod)
        if not is_success(status):
            return None, status
        return PostFilterResult.with_nominated_node(best.node), Status()

    def pod_eligible_to_preempt_others(self, pod: PodInfo, nominated_status: Status) -> tuple[bool, str]:
        if pod.spec.get("preemptionPolicy") == "Never":
            return False, "not eligible due to preemptionPolicy=Never."
        nominated = pod.nominated_node_name
        if nominated:
            # The nominated node no longer fits for a reason eviction cannot fix: try again.
            if nominated_status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            info = self.fw.snapshot.get(nominated)
            if info is not None:
                for other in info.pods:
                    if other.priority < pod.priority and _terminating_by_preemption(other):
                        return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    def find_candidates(
        self, state: CycleState, pod: PodInfo, all_nodes: Sequence[NodeInfo], statuses: NodeToStatus
    ) -> tuple[list[Candidate], NodeToStatus, list[str]]:
        if not all_nodes:
            return [], NodeToStatus(), ["no nodes available"]
        # Nodes rejected as Unresolvable stay unfit whatever is evicted.
        potential = statuses.nodes_for_status_code(all_nodes, Code.UNSCHEDULABLE)
        if not potential:
            return [], NodeToStatus(), []
        pdbs = self.fw.listers.pdbs()
        offset = self.fw.rng.randrange(len(potential))
        return self.dry_run_preemption(
            state, pod, potential, pdbs, offset, self.num_candidates(len(potential))
        )

    def num_candidates(self, num_nodes: int) -> int:
        n = num_nodes * self.min_candidate_nodes_percentage // 100
        n = max(n, self.min_candidate_nodes_absolute)
        return min(n, num_nodes)

    def dry_run_preemption(
        self,
        state: CycleState,
        pod: PodInfo,
        potential: Sequence[NodeInfo],
        pdbs: Sequence[Mapping[str, Any]],
        offset: int,
        num_candidates: int,
    ) -> tuple[list[Candidate], NodeToStatus, list[str]]:
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        node_statuses = NodeToStatus()
        errs: list[str] = []
        for i in range(len(potential)):
            node = potential[(offset + i) % len(potential)].clone()
            victims, violations, status = self.select_victims_on_node(state.clone(), pod, node, pdbs)
            if is_success(status) and victims:
                candidate = Candidate(node.name, victims, violations)
                (violating if violations else non_violating).append(candidate)
                if non_violating and len(non_violating) + len(violating) >= num_candidates:
                    break
                continue
            if is_success(status):
                status = Status.error(f'expected at least one victim pod on node "{node.name}"')
            assert status is not None
            if status.code == Code.ERROR:
                errs.append(status.message)
            node_statuses.set(node.name, status)
        return non_violating + violating, node_statuses, errs

    def select_victims_on_node(
        self, state: CycleState, pod: PodInfo, node: NodeInfo, pdbs: Sequence[Mapping[str, Any]]
    ) -> tuple[list[PodInfo], int, Status | None]:
        """The fewest, least important pods on `node` (a copy) whose eviction lets `pod` fit:
        evict every lower-priority pod, then reprieve them one by one, most important first
        (PDB-protected ones before the others), as long as the pod still fits."""
        fw = self.fw
        now = fw.now()
        potential = [p for p in node.pods if p.priority < pod.priority]
        for victim in potential:
            node.remove_pod(victim)
            status = fw.run_pre_filter_extension_remove_pod(state, pod, victim, node)
            if not is_success(status):
                return [], 0, status
        if not potential:
            return [], 0, Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NO_VICTIMS)
        status = fw.run_filter_with_nominated_pods(state, pod, node)
        if not is_success(status):
            return [], 0, status

        def compare(a: PodInfo, b: PodInfo) -> int:
            return -1 if more_important_pod(a, b, now) else 1 if more_important_pod(b, a, now) else 0

        order = cmp_to_key(compare)
        potential.sort(key=order)
        violating, non_violating = filter_pods_with_pdb_violation(potential, pdbs)
        victims: list[PodInfo] = []
        num_violating = 0

        def reprieve(candidate: PodInfo) -> tuple[bool, Status | None]:
            node.add_pod(candidate)
            status = fw.run_pre_filter_extension_add_pod(state, pod, candidate, node)
            if not is_success(status):
                return False, status
            fits = is_success(fw.run_filter_with_nominated_pods(state, pod, node))
            if not fits:
                node.remove_pod(candidate)
                status = fw.run_pre_filter_extension_remove_pod(state, pod, candidate, node)
                if not is_success(status):
                    return False, status
                victims.append(candidate)
            return fits, None

        for candidate in violating:
            fits, err = reprieve(candidate)
            if err is not None:
                return [], 0, err
            if not fits:
                num_violating += 1
        for candidate in non_violating:
            _, err = reprieve(candidate)
            if err is not None:
                return [], 0, err
        if violating and non_violating:
            victims.sort(key=order)
        return victims, num_violating, Status()

    def select_candidate(self, candidates: Sequence[Candidate]) -> Candidate:
        if len(candidates) == 1:
            return candidates[0]
        name = pick_one_node_for_preemption(candidates, self.fw.now())
        return next(c for c in candidates if c.node == name)

    async def prepare_candidate(self, candidate: Candidate, pod: PodInfo) -> Status | None:
        fw = self.fw
        if fw.api is None:
            return Status.error("no API to preempt with")
        try:
            for victim in candidate.victims:
                if victim.deleting:
                    continue  # graceful deletion already started
                await fw.api.preempt(victim.pod, pod.pod)
                if fw.recorder is not None:
                    fw.recorder.event(
                        victim.pod,
                        "Normal",
                        "Preempted",
                        f"Preempted by pod {pod.uid} on node {candidate.node}",
                    )
                log.info("preempted %s on %s for %s", victim.key, candidate.node, pod.key)
            # Lower-priority pods nominated to this node may no longer fit there: let them look
            # elsewhere at once instead of after the victims are gone.
            for other in fw.nominated_pods_for_node(candidate.node):
                if other.priority < pod.priority:
                    await fw.api.patch_pod_status(
                        other.pod, None, NominatingInfo("", NominatingMode.OVERRIDE)
                    )
        except (errors.StatusError, OSError, TimeoutError) as exc:
            return Status.error(str(exc))
        return None


def _terminating_by_preemption(pod: PodInfo) -> bool:
    if not pod.deleting:
        return False
    for cond in (pod.pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "DisruptionTarget":
            return bool(cond.get("status") == "True" and cond.get("reason") == "PreemptionByScheduler")
    return False


def new(args: Mapping[str, Any], fw: Framework) -> DefaultPreemption:
    return DefaultPreemption(args, fw)
