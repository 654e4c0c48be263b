"""What one StatefulSet sync should do, decided purely from the cache (upstream
stateful_set_control.go updateStatefulSet, processReplica, processCondemned).

Pods split into replicas (ordinals start..start+replicas-1, missing ones built at the right
revision) and condemned (ordinals outside). Then, in three stages:

1. replicas, lowest ordinal first: failed/succeeded pods are deleted, missing ones created,
   pending ones get their missing claims, drifted identity/storage/claim owners are fixed;
2. condemned: claims get the owners the retention policy wants, then pods are deleted from the
   highest ordinal down;
3. RollingUpdate: the highest ordinal >= partition not at the update revision is deleted (the
   next sync recreates it at the new revision), waiting while a pod on the way is unavailable.

OrderedReady ("monotonic") stops at the first step that must wait: after a creation, at a pod
not yet Running and Ready (and available for minReadySeconds), at a terminating pod, and after a
deletion, so pods start one at a time in order and stop in reverse order. Parallel runs every
step of a stage (in slow-start batches) and never waits for readiness, but still stops between
stages on an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from controlplane.controllers.statefulset_pods import (
    claim_is_stale,
    claims_match_retention,
    identity_matches,
    in_ordinal_range,
    is_created,
    is_running_and_available,
    is_running_and_ready,
    is_terminating,
    is_unavailable,
    new_versioned_pod,
    ordinal_of,
    pod_revision,
    start_ordinal,
    storage_matches,
)

__all__ = ["Action", "Plan", "plan_statefulset", "replica_status"]

Obj = Mapping[str, Any]

# delete: the pod; create: the pod and its claims; ensure_claims: create a pending pod's missing
# claims; update: fix a pod's identity/storage/claim owners; fix_claims: set claim owners only.
ActionKind = Literal["delete", "create", "ensure_claims", "update", "fix_claims"]
Stage = Literal["replicas", "condemned_claims", "condemned", "update"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    pod: Obj
    # Of a rolling-update deletion: success lowers currentReplicas by one, as upstream.
    rolling: bool = False


@dataclass
class Plan:
    status: dict[str, Any]
    # Per stage, per pod, the actions to run in order.
    stages: list[tuple[Stage, list[list[Action]]]] = field(default_factory=list)
    monotonic: bool = True

    def actions(self) -> list[Action]:
        return [a for _, steps in self.stages for step in steps for a in step]


def replica_status(
    pod_lists: Sequence[Sequence[Obj]],
    min_ready: int,
    now: datetime,
    current_revision: str,
    update_revision: str,
) -> dict[str, int]:
    """updateStatus/computeReplicaStatus over built and real pods alike."""
    counts = {
        "replicas": 0,
        "readyReplicas": 0,
        "availableReplicas": 0,
        "currentReplicas": 0,
        "updatedReplicas": 0,
    }
    for pods in pod_lists:
        for pod in pods:
            created = is_created(pod)
            if created:
                counts["replicas"] += 1
            if is_running_and_ready(pod):
                counts["readyReplicas"] += 1
                if is_running_and_available(pod, min_ready, now):
                    counts["availableReplicas"] += 1
            if created and not is_terminating(pod):
                revision = pod_revision(pod)
                if revision == current_revision:
                    counts["currentReplicas"] += 1
                if revision == update_revision:
                    counts["updatedReplicas"] += 1
    return counts


def _process_replica(
    sts: Obj,
    update_set: Obj,
    pod: Obj,
    monotonic: bool,
    claims: Mapping[str, Obj],
    min_ready: int,
    now: datetime,
    steps: list[list[Action]],
) -> bool:
    """processReplica: appends this pod's actions; True when a monotonic sync must stop here."""
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded"):
        # Evicted or finished: the pod is replaced once it is gone.
        if not is_terminating(pod):
            steps.append([Action("delete", pod)])
        return True
    if not is_created(pod):
        if claim_is_stale(sts, pod, claims):
            return True
        steps.append([Action("create", pod)])
        return monotonic
    step: list[Action] = []
    if phase == "Pending":
        step.append(Action("ensure_claims", pod))
    blocked = monotonic and (
        is_terminating(pod)
        or not is_running_and_ready(pod)
        or not is_running_and_available(pod, min_ready, now)
    )
    if not blocked and not (
        identity_matches(sts, pod)
        and storage_matches(sts, pod)
        and claims_match_retention(update_set, pod, claims)
    ):
        step.append(Action("update", pod))
    if step:
        steps.append(step)
    return blocked


def plan_statefulset(
    sts: Obj,
    current_set: Obj,
    update_set: Obj,
    current_revision: str,
    update_revision: str,
    collision_count: int,
    pods: Sequence[Obj],
    claims: Mapping[str, Obj],
    owner_ref: Mapping[str, Any],
    now: datetime,
) -> Plan:
    spec = sts.get("spec") or {}
    meta = sts.get("metadata") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    start = start_ordinal(sts)
    count = int(spec.get("replicas") or 0)

    def status_of(*lists: Sequence[Obj]) -> dict[str, Any]:
        return {
            "observedGeneration": int(meta.get("generation") or 0),
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": collision_count,
            **replica_status(lists, min_ready, now, current_revision, update_revision),
        }

    slots: list[Obj | None] = [None] * max(count, 0)
    condemned: list[Obj] = []
    for pod in pods:
        if in_ordinal_range(pod, sts):
            slots[ordinal_of(pod) - start] = pod
        elif ordinal_of(pod) >= 0:
            condemned.append(pod)
    replicas: list[Obj] = [
        slot
        if slot is not None
        else new_versioned_pod(
            current_set, update_set, current_revision, update_revision, start + i, owner_ref
        )
        for i, slot in enumerate(slots)
    ]
    condemned.sort(key=ordinal_of, reverse=True)

    first_unavailable: Obj | None = next((p for p in replicas if is_unavailable(p, min_ready, now)), None)
    if first_unavailable is None:
        first_unavailable = next((p for p in reversed(condemned) if is_unavailable(p, min_ready, now)), None)

    if meta.get("deletionTimestamp"):
        return Plan(status_of(pods))

    monotonic = spec.get("podManagementPolicy") != "Parallel"
    plan = Plan(status_of(replicas, condemned), monotonic=monotonic)

    steps: list[list[Action]] = []
    plan.stages.append(("replicas", steps))
    for pod in replicas:
        if _process_replica(sts, update_set, pod, monotonic, claims, min_ready, now, steps) and monotonic:
            return plan

    claim_steps = [
        [Action("fix_claims", pod)]
        for pod in condemned
        if not claims_match_retention(update_set, pod, claims)
    ]
    if claim_steps:
        plan.stages.append(("condemned_claims", claim_steps))

    condemned_steps: list[list[Action]] = []
    plan.stages.append(("condemned", condemned_steps))
    for pod in condemned:
        if is_terminating(pod):
            if monotonic:
                return plan
            continue
        if monotonic and pod is not first_unavailable and not is_running_and_available(pod, min_ready, now):
            # Scale down only from a healthy set, except for the first unhealthy pod itself.
            return plan
        condemned_steps.append([Action("delete", pod)])
        if monotonic:
            return plan

    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return plan
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate")
    update_min = int((rolling or {}).get("partition") or 0) if isinstance(rolling, Mapping) else 0
    for target in range(len(replicas) - 1, update_min - 1, -1):
        pod = replicas[target]
        if pod_revision(pod) != update_revision and not is_terminating(pod):
            plan.stages.append(("update", [[Action("delete", pod, rolling=True)]]))
            return plan
        if is_unavailable(pod, min_ready, now):
            return plan
    return plan
