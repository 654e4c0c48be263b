"""What a NodePool's reconcile decides, as pure functions: how many Machines to create and in
which zones, which to delete when scaling down, and the pool's status.

Machines being deleted no longer count (as a MachineSet or ReplicaSet ignores objects with a
deletionTimestamp): a Machine draining on its way out is already replaced.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.conditions import Condition, is_true, set_condition
from ccm.provisioning.poolspec import PoolSpec, pool_selector

__all__ = [
    "MachineView",
    "ScalePlan",
    "choose_zones",
    "machine_name",
    "plan_scale",
    "pool_status",
    "random_suffix",
    "scale_down_order",
]

# k8s.io/apimachinery/pkg/util/rand's alphabet: no vowels (no words) and no confusable characters.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_NAME_MAX = 63  # the Machine name is also the instance's Name tag and, on some clouds, its hostname


def random_suffix(rng: random.Random | None = None, length: int = 5) -> str:
    pick = (rng or random.SystemRandom()).choice
    return "".join(pick(_ALPHANUMS) for _ in range(length))


def machine_name(pool: str, suffix: str) -> str:
    return f"{pool[: _NAME_MAX - len(suffix) - 1]}-{suffix}"


@dataclass(frozen=True)
class MachineView:
    """What the pool's decisions need from one Machine."""

    name: str
    zone: str = ""
    phase: str = api.MachinePhase.PENDING
    created: str = ""  # creationTimestamp: RFC 3339 in UTC sorts as time
    deleting: bool = False
    delete_requested: bool = False
    ready: bool = False
    failed: bool = False  # Failed now, or on its way out because it failed (phase Deleting)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> MachineView:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            name=str(meta.get("name", "")),
            # Where its instance is, once launched (it may differ from the zone asked for).
            zone=str(status.get("zone") or (obj.get("spec") or {}).get("zone") or ""),
            phase=str(status.get("phase") or api.MachinePhase.PENDING),
            created=str(meta.get("creationTimestamp") or ""),
            deleting=bool(meta.get("deletionTimestamp")),
            delete_requested=api.ANNOTATION_DELETE_MACHINE in annotations,
            ready=status.get("phase") == api.MachinePhase.RUNNING
            and is_true(status.get("conditions"), "NodeReady"),
            failed=status.get("phase") == api.MachinePhase.FAILED or bool(status.get("failureReason")),
        )


@dataclass(frozen=True)
class ScalePlan:
    create_zones: tuple[str, ...] = ()  # one new Machine per entry ("" = the provider's default zone)
    delete: tuple[str, ...] = ()


def choose_zones(zones: Sequence[str], existing: Sequence[str], count: int) -> list[str]:
    """Spread: each new Machine goes to the zone with the fewest, ties to the first listed."""
    if not zones:
        return [""] * count
    load = Counter(z for z in existing if z in zones)
    chosen = []
    for _ in range(count):
        zone = min(zones, key=lambda z: (load[z], zones.index(z)))
        load[zone] += 1
        chosen.append(zone)
    return chosen


def scale_down_order(machines: Sequence[MachineView]) -> list[MachineView]:
    """Which to remove first: those annotated for deletion, then Failed or not Ready ones (they
    serve nothing), then the newest (cluster-api's "Newest" policy: old machines have proven
    themselves)."""

    def rank(m: MachineView) -> int:
        if m.delete_requested:
            return 0
        if m.phase == api.MachinePhase.FAILED:
            return 1
        if not m.ready:
            return 2
        return 3

    by_newest = sorted(machines, key=lambda m: (m.created, m.name), reverse=True)
    return sorted(by_newest, key=rank)  # stable: newest first within a rank


def plan_scale(desired: int, machines: Sequence[MachineView], zones: Sequence[str]) -> ScalePlan:
    active = [m for m in machines if not m.deleting]
    diff = desired - len(active)
    if diff > 0:
        return ScalePlan(create_zones=tuple(choose_zones(zones, [m.zone for m in active], diff)))
    if diff < 0:
        return ScalePlan(delete=tuple(m.name for m in scale_down_order(active)[:-diff]))
    return ScalePlan()


def pool_status(
    pool: PoolSpec,
    machines: Sequence[MachineView],
    conditions: Sequence[Mapping[str, Any]] | None,
    now: str,
    *,
    remediation_blocked: str = "",
) -> dict[str, Any]:
    active = [m for m in machines if not m.deleting]
    ready = sum(1 for m in active if m.ready)
    gen = pool.generation
    out: list[Condition] = [dict(c) for c in conditions or ()]
    if len(active) < pool.replicas:
        out = set_condition(
            out,
            "Resized",
            False,
            "ScalingUp",
            f"{len(active)} of {pool.replicas} machines",
            now,
            observed_generation=gen,
        )
    elif len(machines) > pool.replicas:
        out = set_condition(
            out,
            "Resized",
            False,
            "ScalingDown",
            f"{len(machines)} machines, {pool.replicas} desired",
            now,
            observed_generation=gen,
        )
    else:
        out = set_condition(out, "Resized", True, "Resized", "", now, observed_generation=gen)
    not_ready = sorted(m.name for m in active if not m.ready)
    if ready >= pool.replicas and not not_ready:
        out = set_condition(out, "MachinesReady", True, "MachinesReady", "", now, observed_generation=gen)
    else:
        message = f"{ready} of {pool.replicas} ready"
        if not_ready:
            message += "; not ready: " + ", ".join(not_ready[:10])
        out = set_condition(
            out, "MachinesReady", False, "MachinesNotReady", message, now, observed_generation=gen
        )
    if remediation_blocked:
        out = set_condition(
            out,
            "RemediationAllowed",
            False,
            "TooManyUnhealthy",
            remediation_blocked,
            now,
            observed_generation=gen,
        )
    else:
        out = set_condition(
            out, "RemediationAllowed", True, "RemediationAllowed", "", now, observed_generation=gen
        )
    return {
        "replicas": len(active),
        "readyReplicas": ready,
        "selector": pool_selector(pool.name),
        "observedGeneration": gen,
        "conditions": out,
    }
