"""The Deployment controller's decisions, as pure functions: which ReplicaSets to resize and to
what (upstream pkg/controller/deployment/{sync,rolling,recreate,progress}.go). The controller
applies the returned steps in order; nothing here does IO.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.controllers import deployment_util as du
from controlplane.controllers.podutil import is_pod_terminal, parse_time, status_condition

__all__ = [
    "ScaleStep",
    "cleanup_candidates",
    "progress_requeue_after",
    "proportional_scale_steps",
    "recreate_scale_down_steps",
    "rolling_new_rs_step",
    "rolling_old_rs_steps",
    "rolling_steps",
    "rollout_status",
]

Obj = dict[str, Any]


@dataclass(frozen=True)
class ScaleStep:
    """Resize `rs` to `size`; `operation` ("up"/"down"/"") words the ScalingReplicaSet event."""

    rs: Obj
    size: int
    operation: str


def _with_replicas(rs: Obj, size: int) -> Obj:
    out = dict(rs)
    out["spec"] = {**(rs.get("spec") or {}), "replicas": size}
    return out


def _event_step(rs: Obj, size: int) -> ScaleStep | None:
    """scaleReplicaSetAndRecordEvent: nothing at all when the size already fits."""
    current = du.replicas(rs)
    if current == size:
        return None
    return ScaleStep(rs, size, "up" if current < size else "down")


# --- scaling (a resize of the Deployment, or any change while paused) ------------------------------


def proportional_scale_steps(
    d: Mapping[str, Any], new_rs: Obj | None, old_rss: Sequence[Obj]
) -> list[ScaleStep]:
    """dc.scale: one active ReplicaSet takes the whole size; a saturated new one retires the old;
    otherwise (RollingUpdate) extra or missing replicas are spread over the active ReplicaSets in
    proportion to their size, leftovers to the largest."""
    active_or_latest = du.find_active_or_latest(new_rs, old_rss)
    if active_or_latest is not None:
        step = _event_step(active_or_latest, du.replicas(d))
        return [] if step is None else [step]
    if du.is_saturated(d, new_rs):
        return [s for old in du.filter_active(old_rss) if (s := _event_step(old, 0)) is not None]
    if not du.is_rolling_update(d):
        return []
    all_rss = du.filter_active([*old_rss, new_rs])
    allowed = du.replicas(d) + du.max_surge(d) if du.replicas(d) > 0 else 0
    to_add = allowed - du.total_replicas(all_rss)
    operation = ""
    if to_add > 0:
        all_rss = du.sort_by_size_newer(all_rss)
        operation = "up"
    elif to_add < 0:
        all_rss = du.sort_by_size_older(all_rss)
        operation = "down"
    added = 0
    sizes: list[int] = []
    for rs in all_rss:
        if to_add != 0:
            proportion = du.get_proportion(rs, d, to_add, added)
            sizes.append(du.replicas(rs) + proportion)
            added += proportion
        else:
            sizes.append(du.replicas(rs))
    steps: list[ScaleStep] = []
    for i, rs in enumerate(all_rss):
        size = sizes[i]
        if i == 0 and to_add != 0:
            size = max(size + to_add - added, 0)
        steps.append(ScaleStep(rs, size, operation))
    return steps


# --- RollingUpdate ---------------------------------------------------------------------------------


def rolling_new_rs_step(all_rss: Sequence[Obj | None], new_rs: Obj, d: Mapping[str, Any]) -> ScaleStep | None:
    """reconcileNewReplicaSet: grow the new ReplicaSet as far as maxSurge allows."""
    want = du.replicas(d)
    if du.replicas(new_rs) == want:
        return None
    if du.replicas(new_rs) > want:
        return _event_step(new_rs, want)
    return _event_step(new_rs, du.new_rs_new_replicas(d, all_rss, new_rs))


def rolling_old_rs_steps(
    all_rss: Sequence[Obj | None], old_rss: Sequence[Obj], new_rs: Obj, d: Mapping[str, Any]
) -> list[ScaleStep]:
    """reconcileOldReplicaSets: shrink old ReplicaSets without going below minAvailable, their
    unhealthy replicas first (they cost no availability)."""
    old_pods = du.total_replicas(old_rss)
    if old_pods == 0:
        return []
    all_pods = du.total_replicas(all_rss)
    minimum = du.replicas(d) - du.max_unavailable(d)
    new_unavailable = du.replicas(new_rs) - int((new_rs.get("status") or {}).get("availableReplicas") or 0)
    max_scaled_down = all_pods - minimum - new_unavailable
    if max_scaled_down <= 0:
        return []

    steps: list[ScaleStep] = []
    # cleanupUnhealthyReplicas
    olds = du.sort_by_creation(old_rss)
    cleaned = 0
    for i, rs in enumerate(olds):
        if cleaned >= max_scaled_down:
            break
        size = du.replicas(rs)
        available = int((rs.get("status") or {}).get("availableReplicas") or 0)
        if size in (0, available):
            continue
        count = min(max_scaled_down - cleaned, size - available)
        target = size - count
        if target > size:
            # A status ahead of its spec (a stale read): upstream gives up on this sync.
            return []
        step = _event_step(rs, target)
        if step is not None:
            steps.append(step)
        olds[i] = _with_replicas(rs, target)
        cleaned += count

    # scaleDownOldReplicaSetsForRollingUpdate
    available_pods = du.available_replicas([*olds, new_rs])
    if available_pods <= minimum:
        return steps
    total = available_pods - minimum
    scaled = 0
    for rs in du.sort_by_creation(olds):
        if scaled >= total:
            break
        size = du.replicas(rs)
        if size == 0:
            continue
        count = min(size, total - scaled)
        step = _event_step(rs, size - count)
        if step is not None:
            steps.append(step)
        scaled += count
    return steps


def rolling_steps(d: Mapping[str, Any], new_rs: Obj, old_rss: Sequence[Obj]) -> list[ScaleStep]:
    """What one rolloutRolling sync resizes: the new ReplicaSet if it can grow, else the old ones."""
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    step = rolling_new_rs_step(all_rss, new_rs, d)
    if step is not None:
        return [step]
    return rolling_old_rs_steps(all_rss, du.filter_active(old_rss), new_rs, d)


# --- Recreate --------------------------------------------------------------------------------------


def recreate_scale_down_steps(old_rss: Sequence[Obj]) -> list[ScaleStep]:
    return [s for rs in du.filter_active(old_rss) if (s := _event_step(rs, 0)) is not None]


def old_pods_running(
    new_rs: Obj | None, old_rss: Sequence[Obj], pods_by_rs: Mapping[str, Sequence[Obj]]
) -> bool:
    """Recreate waits until no pod of an old ReplicaSet is left in a non-terminal phase."""
    if du.actual_replicas(old_rss) > 0:
        return True
    new_uid = du.uid_of(new_rs)
    for rs_uid, pods in pods_by_rs.items():
        if new_rs is not None and rs_uid == new_uid:
            continue
        for pod in pods:
            if not is_pod_terminal(pod):
                return True
    return False


# --- history cleanup -------------------------------------------------------------------------------


def cleanup_candidates(d: Mapping[str, Any], old_rss: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond revisionHistoryLimit, oldest revision first, that are empty and
    fully observed (cleanupDeployment)."""
    if not du.has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if not (rs.get("metadata") or {}).get("deletionTimestamp")]
    diff = len(alive) - int((d.get("spec") or {}).get("revisionHistoryLimit") or 0)
    if diff <= 0:
        return []
    out = []
    for rs in du.sort_by_revision(alive)[:diff]:
        status = rs.get("status") or {}
        generation = int((rs.get("metadata") or {}).get("generation") or 0)
        if (
            int(status.get("replicas") or 0) != 0
            or du.replicas(rs) != 0
            or generation > int(status.get("observedGeneration") or 0)
        ):
            continue
        out.append(rs)
    return out


# --- progress --------------------------------------------------------------------------------------


def _replica_failures(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> list[Obj]:
    def failures(rs: Obj | None) -> list[Obj]:
        if rs is None:
            return []
        return [
            du.replica_set_to_deployment_condition(c)
            for c in (rs.get("status") or {}).get("conditions") or []
            if c.get("type") == du.REPLICA_FAILURE
        ]

    found = failures(new_rs)
    if found:
        return found
    return [c for rs in all_rss for c in failures(rs)]


def rollout_status(
    all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Mapping[str, Any], now: datetime
) -> Obj:
    """syncRolloutStatus's new status: counts, Available, and the Progressing condition moved by
    progress, completion or the deadline; ReplicaSet failures surface as ReplicaFailure."""
    status = du.calculate_status(all_rss, new_rs, d, now)
    if not du.has_progress_deadline(d):
        du.remove_condition(status, du.PROGRESSING)
    current = status_condition(d.get("status"), du.PROGRESSING)
    complete_already = (
        int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
        and current is not None
        and current.get("reason") == du.NEW_RS_AVAILABLE_REASON
    )
    name = du.name_of(d)
    if du.has_progress_deadline(d) and not complete_already:
        if du.deployment_complete(d, status):
            msg = f'Deployment "{name}" has successfully progressed.'
            if new_rs is not None:
                msg = f'ReplicaSet "{du.name_of(new_rs)}" has successfully progressed.'
            du.set_condition(
                status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_AVAILABLE_REASON, msg, now)
            )
        elif du.deployment_progressing(d, status):
            msg = f'Deployment "{name}" is progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{du.name_of(new_rs)}" is progressing.'
            cond = du.new_condition(du.PROGRESSING, "True", du.REPLICA_SET_UPDATED_REASON, msg, now)
            # Progress refreshes lastUpdateTime even under the same reason (unlike set_condition).
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                du.remove_condition(status, du.PROGRESSING)
            du.set_condition(status, cond)
        elif du.deployment_timed_out(d, status, now):
            msg = f'Deployment "{name}" has timed out progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{du.name_of(new_rs)}" has timed out progressing.'
            du.set_condition(status, du.new_condition(du.PROGRESSING, "False", du.TIMED_OUT_REASON, msg, now))
    failures = _replica_failures(all_rss, new_rs)
    if failures:
        du.set_condition(status, failures[0])
    else:
        du.remove_condition(status, du.REPLICA_FAILURE)
    return status


def progress_requeue_after(
    d: Mapping[str, Any], new_status: Mapping[str, Any], now: datetime
) -> float | None:
    """requeueStuckDeployment: when to look again for a deadline that may pass without any event
    (None: no need; 0: at once)."""
    current = status_condition(d.get("status"), du.PROGRESSING)
    if not du.has_progress_deadline(d) or current is None:
        return None
    if du.deployment_complete(d, new_status) or current.get("reason") == du.TIMED_OUT_REASON:
        return None
    since = parse_time(current.get("lastUpdateTime"))
    if since is None:
        return 0.0
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    after = (since - now).total_seconds() + deadline
    if after < 1.0:
        return 0.0
    # A second more keeps a millisecond of skew from landing the check just before the deadline.
    return after + 1.0


def paused_condition_update(d: Mapping[str, Any], now: datetime) -> Obj | None:
    """checkPausedConditions: the status with Progressing Unknown/DeploymentPaused (or Resumed),
    or None when nothing changes."""
    if not du.has_progress_deadline(d):
        return None
    cond = status_condition(d.get("status"), du.PROGRESSING)
    if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
        return None
    paused_exists = cond is not None and cond.get("reason") == du.PAUSED_DEPLOY_REASON
    paused = bool((d.get("spec") or {}).get("paused"))
    status = copy.deepcopy(dict(d.get("status") or {}))
    if paused and not paused_exists:
        du.set_condition(
            status,
            du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED_DEPLOY_REASON, "Deployment is paused", now),
        )
        return status
    if not paused and paused_exists:
        du.set_condition(
            status,
            du.new_condition(
                du.PROGRESSING, "Unknown", du.RESUMED_DEPLOY_REASON, "Deployment is resumed", now
            ),
        )
        return status
    return None
