"""The DaemonSet controller's decisions, as pure functions of the cache (upstream
daemon_controller.go podsShouldBeOnNode/manage/updateDaemonSetStatus and update.go rollingUpdate).

- `plan_manage`: per node, create the missing daemon pod, delete pods on nodes that may no longer
  run one, replace failed pods (with a per-node back-off), and prune extra pods (keeping, while
  surging, at most one old and one new).
- `plan_rolling_update`: without surge, delete old pods while fewer than maxUnavailable daemon
  pods are unavailable (unavailable old pods may always go); with surge, start new pods next to
  old available ones up to maxSurge and delete an old pod once its replacement is available.
- `compute_status`: the counts `kubectl rollout status` reads.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.controllers.daemonset_placement import (
    add_daemon_tolerations,
    should_run_on_node,
    target_node_name,
)
from controlplane.controllers.daemonset_tracking import FailedPodBackoff
from controlplane.controllers.history import REVISION_HASH_LABEL
from controlplane.controllers.podutil import is_pod_available, is_pod_ready, is_pod_terminal

__all__ = [
    "TEMPLATE_GENERATION_ANNOTATION",
    "TEMPLATE_GENERATION_LABEL",
    "ManagePlan",
    "RollingPlan",
    "allows_surge",
    "compute_status",
    "create_pod_template",
    "daemon_pods_by_node",
    "find_updated_pods_on_node",
    "is_pod_updated",
    "plan_manage",
    "plan_rolling_update",
    "scaled_value",
    "sort_by_creation_and_phase",
    "surge_count",
    "template_generation",
    "unavailable_count",
    "unscheduled_pods_without_node",
]

Obj = Mapping[str, Any]

# apps.DeprecatedTemplateGeneration and extensions.DaemonSetTemplateGenerationKey.
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _strategy(ds: Obj) -> Obj:
    return (ds.get("spec") or {}).get("updateStrategy") or {}


def _min_ready(ds: Obj) -> int:
    return int((ds.get("spec") or {}).get("minReadySeconds") or 0)


def template_generation(ds: Obj) -> int | None:
    """GetTemplateGeneration: upstream's API server keeps the template generation in an annotation;
    a server that does not set it falls back to metadata.generation, which moves with every
    template change too (and with other spec changes, which only makes the label stricter)."""
    meta = ds.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if raw is not None:
        try:
            return int(str(raw))
        except ValueError:
            return None
    generation = meta.get("generation")
    return int(generation) if generation is not None else None


def is_pod_updated(pod: Obj, hash_: str, generation: int | None) -> bool:
    """IsPodUpdated: the pod carries the current revision hash or template generation."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    template_matches = generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation)
    hash_matches = bool(hash_) and labels.get(REVISION_HASH_LABEL) == hash_
    return hash_matches or template_matches


def create_pod_template(template: Obj, generation: int | None, hash_: str) -> dict[str, Any]:
    """CreatePodTemplate: the DaemonSet's template plus daemon tolerations and revision labels."""
    out: dict[str, Any] = copy.deepcopy(dict(template))
    spec = out.setdefault("spec", {})
    add_daemon_tolerations(spec)
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = {}
        meta["labels"] = labels
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_:
        labels[REVISION_HASH_LABEL] = hash_
    return out


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from None
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: invalid value for percent: {text!r}") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def surge_count(ds: Obj, number_to_schedule: int) -> int:
    strategy = _strategy(ds)
    if strategy.get("type") != "RollingUpdate":
        return 0
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, Mapping) or rolling.get("maxSurge") is None:
        return 0
    return scaled_value(rolling.get("maxSurge"), number_to_schedule, True)


def unavailable_count(ds: Obj, number_to_schedule: int) -> int:
    strategy = _strategy(ds)
    if strategy.get("type") != "RollingUpdate":
        return 0
    rolling = strategy.get("rollingUpdate")
    if not isinstance(rolling, Mapping):
        return 0
    return scaled_value(rolling.get("maxUnavailable"), number_to_schedule, True)


def allows_surge(ds: Obj) -> bool:
    try:
        return surge_count(ds, 1) > 0
    except ValueError:
        return False


def sort_by_creation_and_phase(pods: Iterable[Obj]) -> list[Obj]:
    """podByCreationTimestampAndPhase: scheduled pods first, then oldest, then by name."""
    return sorted(
        pods,
        key=lambda p: (
            0 if (p.get("spec") or {}).get("nodeName") else 1,
            str((p.get("metadata") or {}).get("creationTimestamp") or ""),
            _name(p),
        ),
    )


def daemon_pods_by_node(pods: Iterable[Obj], include_deleted_terminal: bool = False) -> dict[str, list[Obj]]:
    """getNodesToDaemonPods over already claimed pods: grouped by the node they run on or are
    pinned to; finished pods already being deleted are left out unless asked for."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        if (
            not include_deleted_terminal
            and is_pod_terminal(pod)
            and (pod.get("metadata") or {}).get("deletionTimestamp")
        ):
            continue
        node = target_node_name(pod)
        if node is None:
            continue
        out.setdefault(node, []).append(pod)
    return out


def unscheduled_pods_without_node(node_names: set[str], by_node: Mapping[str, Sequence[Obj]]) -> list[str]:
    """Pods pinned to nodes that no longer exist and never scheduled: nobody else will delete them."""
    return [
        _name(pod)
        for node, pods in by_node.items()
        if node not in node_names
        for pod in pods
        if not (pod.get("spec") or {}).get("nodeName")
    ]


# --- manage -----------------------------------------------------------------------------------


@dataclass
class ManagePlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    # (type, reason, message) Events to record on the DaemonSet.
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None

    def _requeue(self, seconds: float) -> None:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def failed_pods_backoff_key(ds: Obj, node_name: str) -> str:
    uid = (ds.get("metadata") or {}).get("uid", "")
    return f"{uid}/{(ds.get('status') or {}).get('observedGeneration', 0)}/{node_name}"


def _pods_should_be_on_node(
    plan: ManagePlan,
    node: Obj,
    by_node: Mapping[str, Sequence[Obj]],
    ds: Obj,
    hash_: str,
    backoff: FailedPodBackoff,
    mono_now: float,
    now: datetime,
) -> None:
    should_run, should_continue = should_run_on_node(node, ds)
    node_name = _name(node)
    daemon_pods = by_node.get(node_name)
    exists = daemon_pods is not None
    if should_run and not exists:
        plan.create_on.append(node_name)
        return
    if should_continue:
        running: list[Obj] = []
        for pod in daemon_pods or []:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                # Daemon pods often fight a kubelet that rejects them: back off per node.
                key = failed_pods_backoff_key(ds, node_name)
                if backoff.in_backoff_since_update(key, mono_now):
                    plan._requeue(backoff.get(key))
                    continue
                backoff.next(key, mono_now)
                plan.events.append(
                    (
                        "Warning",
                        "FailedDaemonPod",
                        f"Found failed daemon pod {meta.get('namespace', '')}/{meta.get('name', '')} "
                        f"on node {node_name}, will try to kill it",
                    )
                )
                plan.delete.append(_name(pod))
            elif phase == "Succeeded":
                plan.events.append(
                    (
                        "Normal",
                        "SucceededDaemonPod",
                        f"Found succeeded daemon pod {meta.get('namespace', '')}/{meta.get('name', '')} "
                        f"on node {node_name}, will try to delete it",
                    )
                )
                plan.delete.append(_name(pod))
            else:
                running.append(pod)
        if not allows_surge(ds):
            # Without surge, one pod per node: keep the oldest.
            for pod in sort_by_creation_and_phase(running)[1:]:
                plan.delete.append(_name(pod))
            return
        if len(running) <= 1:
            if not running and should_run:
                plan.create_on.append(node_name)
            return
        # Surging: keep the oldest new and the oldest old pod while the new one is not available
        # and the old one still ready; delete everything else.
        oldest_new: Obj | None = None
        oldest_old: Obj | None = None
        for pod in sort_by_creation_and_phase(running):
            if ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL) == hash_:
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            plan.delete.append(_name(pod))
        if (
            oldest_new is not None
            and oldest_old is not None
            and (not is_pod_ready(oldest_old) or is_pod_available(oldest_new, _min_ready(ds), now))
        ):
            plan.delete.append(_name(oldest_old))
        return
    if not should_continue and exists:
        for pod in daemon_pods or []:
            if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                plan.delete.append(_name(pod))


def plan_manage(
    ds: Obj,
    nodes: Sequence[Obj],
    by_node: Mapping[str, Sequence[Obj]],
    hash_: str,
    backoff: FailedPodBackoff,
    mono_now: float,
    now: datetime,
) -> ManagePlan:
    plan = ManagePlan()
    for node in nodes:
        _pods_should_be_on_node(plan, node, by_node, ds, hash_, backoff, mono_now, now)
    plan.delete.extend(unscheduled_pods_without_node({_name(n) for n in nodes}, by_node))
    return plan


# --- rolling update ---------------------------------------------------------------------------


def find_updated_pods_on_node(
    ds: Obj, pods: Iterable[Obj], hash_: str
) -> tuple[Obj | None, Obj | None, bool]:
    """(new pod, old pod, ok): at most one of each among the pods not being deleted, else not ok
    (the manage loop prunes extras first)."""
    new: Obj | None = None
    old: Obj | None = None
    generation = template_generation(ds)
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if is_pod_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


@dataclass
class RollingPlan:
    delete: list[str] = field(default_factory=list)
    create_on: list[str] = field(default_factory=list)
    max_surge: int = 0
    max_unavailable: int = 0
    desired: int = 0


def plan_rolling_update(
    ds: Obj, nodes: Sequence[Obj], by_node: Mapping[str, Sequence[Obj]], hash_: str, now: datetime
) -> RollingPlan:
    node_by_name = {_name(n): n for n in nodes}
    per_node: dict[str, Sequence[Obj]] = dict(by_node)
    desired = 0
    for node in nodes:
        if should_run_on_node(node, ds)[0]:
            desired += 1
            per_node.setdefault(_name(node), [])
    max_unavailable = unavailable_count(ds, desired)
    max_surge = surge_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        # An impossible configuration: accept one unavailable pod, as upstream does.
        max_unavailable = 1
    plan = RollingPlan(max_surge=max_surge, max_unavailable=max_unavailable, desired=desired)
    min_ready = _min_ready(ds)

    def available(pod: Obj) -> bool:
        return is_pod_available(pod, min_ready, now)

    if max_surge == 0:
        unavailable = 0
        replacements: list[str] = []
        candidates: list[str] = []
        for pods in per_node.values():
            new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
            if not ok:
                unavailable += 1
                continue
            if (old is None and new is None) or (old is not None and new is not None):
                unavailable += 1
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif old is not None:
                if not available(old):
                    replacements.append(_name(old))
                elif unavailable >= max_unavailable:
                    continue
                else:
                    candidates.append(_name(old))
        remaining = max(0, min(max_unavailable - unavailable, len(candidates)))
        plan.delete = replacements + candidates[:remaining]
        return plan

    surge = 0
    available_count = 0
    allowed_new: list[str] = []
    candidate_new: list[str] = []
    should_not_run: list[str] = []
    for node_name, pods in per_node.items():
        new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
        if not ok:
            surge += 1
            continue
        if old is not None:
            available_count += 1 if available(old) else 0
        elif new is not None:
            available_count += 1 if available(new) else 0
        if old is None:
            continue
        if new is None:
            target = node_by_name.get(node_name)
            runs_here = target is not None and should_run_on_node(target, ds)[0]
            if not available(old):
                if not runs_here:
                    plan.delete.append(_name(old))
                    continue
                allowed_new.append(node_name)
            else:
                if not runs_here:
                    should_not_run.append(_name(old))
                    continue
                if surge >= max_surge:
                    continue
                candidate_new.append(node_name)
            continue
        if not available(new):
            surge += 1
            continue
        plan.delete.append(_name(old))
    # With surge the owner expects full availability: pods on nodes the DaemonSet left go only
    # as far as the available count stays above the desired one.
    deletable = available_count - desired
    if deletable > 0:
        plan.delete.extend(should_not_run[: min(deletable, len(should_not_run))])
    remaining = max(0, min(max_surge - surge, len(candidate_new)))
    plan.create_on = allowed_new + candidate_new[:remaining]
    return plan


# --- status -----------------------------------------------------------------------------------


def compute_status(
    ds: Obj, nodes: Sequence[Obj], by_node: Mapping[str, Sequence[Obj]], hash_: str, now: datetime
) -> dict[str, int]:
    desired = current = misscheduled = ready = updated = available = 0
    generation = template_generation(ds)
    min_ready = _min_ready(ds)
    for node in nodes:
        should_run, _ = should_run_on_node(node, ds)
        pods = by_node.get(_name(node)) or []
        if should_run:
            desired += 1
            if not pods:
                continue
            current += 1
            pod = sort_by_creation_and_phase(pods)[0]
            if is_pod_ready(pod):
                ready += 1
                if is_pod_available(pod, min_ready, now):
                    available += 1
            if is_pod_updated(pod, hash_, generation):
                updated += 1
        elif pods:
            misscheduled += 1
    return {
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
