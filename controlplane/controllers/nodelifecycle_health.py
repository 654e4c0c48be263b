"""The pure parts of the node lifecycle controller (upstream pkg/controller/nodelifecycle and
pkg/controller/util/node): the node health state machine, zone disruption states, the
rate-limited timed queue that paces NoExecute tainting, and taint arithmetic.

Health is judged on the controller's own clock, never on timestamps the kubelet wrote: a node is
healthy while its Ready heartbeat or its Lease's renewTime keeps changing; when neither has moved
for the grace period (the startup grace period for a node that never reported), its conditions
go Unknown.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controlplane.controllers.podutil import parse_time, status_condition
from controlplane.controllers.runtime import rfc3339

__all__ = [
    "CONDITION_TAINTS",
    "NOT_READY_TAINT",
    "UNREACHABLE_TAINT",
    "UNSCHEDULABLE_TAINT",
    "HealthUpdate",
    "NodeHealth",
    "RateLimitedTimedQueue",
    "TokenBucket",
    "ZoneState",
    "add_or_update_taint",
    "compute_zone_state",
    "no_schedule_taints",
    "remove_taints",
    "taint_exists",
    "taint_set_diff",
    "try_update_node_health",
    "zone_key",
]

Obj = Mapping[str, Any]
Taint = dict[str, Any]

UNREACHABLE_TAINT: Taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
NOT_READY_TAINT: Taint = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
UNSCHEDULABLE_TAINT: Taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}

# condition type -> condition status -> taint key (TaintNodesByCondition).
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": "node.kubernetes.io/not-ready", "Unknown": "node.kubernetes.io/unreachable"},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
_CONDITION_TAINT_KEYS = {key for statuses in CONDITION_TAINTS.values() for key in statuses.values()}
# NetworkUnavailable belongs to the control plane (route controller), so it is never marked Unknown.
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

ZONE_LABELS = ("failure-domain.beta.kubernetes.io/zone", "topology.kubernetes.io/zone")
REGION_LABELS = ("failure-domain.beta.kubernetes.io/region", "topology.kubernetes.io/region")


class ZoneState:
    INITIAL = "Initial"
    NORMAL = "Normal"
    FULL_DISRUPTION = "FullDisruption"
    PARTIAL_DISRUPTION = "PartialDisruption"


# -- conditions and health ------------------------------------------------------------------


@dataclass
class NodeHealth:
    probe_timestamp: datetime
    ready_transition_timestamp: datetime
    status: dict[str, Any]
    lease: dict[str, Any] | None = None


@dataclass
class HealthUpdate:
    grace_period: float
    observed_ready: dict[str, Any]
    current_ready: dict[str, Any] | None
    health: NodeHealth
    # The node with its conditions set Unknown, when that must be written; `health_after_write`
    # is what to remember once the write succeeded.
    write: dict[str, Any] | None = None
    health_after_write: NodeHealth | None = None


def _renew_time(lease: Obj | None) -> datetime | None:
    return parse_time(((lease or {}).get("spec") or {}).get("renewTime"))


def try_update_node_health(
    node: Obj,
    saved: NodeHealth | None,
    lease: Obj | None,
    now: datetime,
    *,
    monitor_grace: float,
    startup_grace: float,
) -> HealthUpdate:
    """Upstream tryUpdateNodeHealth, without the write."""
    # Only the conditions are ever changed: copy the path to them, not the whole Node (a
    # deepcopy of every Node every monitor period is most of this controller's CPU at scale).
    copied: dict[str, Any] = dict(node)
    status: dict[str, Any] = dict(copied.get("status") or {})
    copied["status"] = status
    if "conditions" in status:
        status["conditions"] = [dict(c) for c in status["conditions"] or []]
    created = parse_time(copied.get("metadata", {}).get("creationTimestamp")) or now
    created_text = copied.get("metadata", {}).get("creationTimestamp") or rfc3339(now)
    current_ready = status_condition(status, "Ready")
    health = saved
    if current_ready is None:
        # Never posted: pretend an Unknown condition from creation, with the startup grace.
        observed: dict[str, Any] = {
            "type": "Ready",
            "status": "Unknown",
            "lastHeartbeatTime": created_text,
            "lastTransitionTime": created_text,
        }
        grace = startup_grace
        if health is not None:
            health = NodeHealth(
                health.probe_timestamp, health.ready_transition_timestamp, status, health.lease
            )
        else:
            health = NodeHealth(created, created, status)
    else:
        observed = dict(current_ready)
        grace = monitor_grace

    saved_condition = status_condition(health.status, "Ready") if health is not None else None
    saved_lease = health.lease if health is not None else None
    if health is None or (saved_condition is None) != (current_ready is None):
        # First sight, or the Ready condition appeared or vanished: start counting from now.
        health = NodeHealth(now, now, status)
    elif (
        saved_condition is not None
        and current_ready is not None
        and saved_condition.get("lastHeartbeatTime") != current_ready.get("lastHeartbeatTime")
    ):
        if saved_condition.get("lastTransitionTime") != current_ready.get("lastTransitionTime"):
            transition = now
        else:
            transition = health.ready_transition_timestamp
        health = NodeHealth(now, transition, status)

    # A renewed Lease is a heartbeat too.
    observed_renew = _renew_time(lease)
    if lease is not None and observed_renew is not None:
        saved_renew = _renew_time(saved_lease)
        if saved_lease is None or (saved_renew is not None and saved_renew < observed_renew):
            health.lease = dict(lease)
            health.probe_timestamp = now

    update = HealthUpdate(grace, observed, current_ready, health)
    if now > health.probe_timestamp + timedelta(seconds=grace):
        now_text = rfc3339(now)
        conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
        for type_ in MONITORED_CONDITIONS:
            cond = next((c for c in conditions if c.get("type") == type_), None)
            if cond is None:
                conditions.append(
                    {
                        "type": type_,
                        "status": "Unknown",
                        "lastHeartbeatTime": created_text,
                        "lastTransitionTime": now_text,
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                    }
                )
            elif cond.get("status") != "Unknown":
                cond["status"] = "Unknown"
                cond["reason"] = "NodeStatusUnknown"
                cond["message"] = "Kubelet stopped posting node status."
                cond["lastTransitionTime"] = now_text
        update.current_ready = status_condition(status, "Ready")
        if update.current_ready != observed:
            update.write = copied
            update.health_after_write = NodeHealth(
                health.probe_timestamp, now, status, dict(lease) if lease is not None else None
            )
    return update


# -- zones ----------------------------------------------------------------------------------


def zone_key(node: Obj) -> str:
    """Upstream GetZoneKey: region and zone joined by ":\\0:", "" when neither is set."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    zone = labels.get(ZONE_LABELS[0], labels.get(ZONE_LABELS[1], ""))
    region = labels.get(REGION_LABELS[0], labels.get(REGION_LABELS[1], ""))
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def compute_zone_state(ready_conditions: Iterable[Obj | None], unhealthy_threshold: float) -> tuple[int, str]:
    """(not-ready count, state): FullDisruption when no node is ready, PartialDisruption when more
    than two and at least the threshold fraction are not ready, Normal otherwise."""
    ready = not_ready = 0
    for cond in ready_conditions:
        if cond is not None and cond.get("status") == "True":
            ready += 1
        else:
            not_ready += 1
    if ready == 0 and not_ready > 0:
        return not_ready, ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, ZoneState.PARTIAL_DISRUPTION
    return not_ready, ZoneState.NORMAL


# -- rate limiting --------------------------------------------------------------------------


class TokenBucket:
    """golang.org/x/time/rate as flowcontrol's token bucket uses it: starts full; qps <= 0 never
    admits anything (upstream's FakeNeverRateLimiter)."""

    def __init__(self, qps: float, burst: int, now: Callable[[], float]) -> None:
        self.qps = qps
        self.burst = burst
        self._now = now
        self._tokens = float(burst)
        self._last = now()

    def try_accept(self) -> bool:
        if self.qps <= 0:
            return False
        now = self._now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(order=True)
class TimedValue:
    process_at: float
    seq: int
    value: str = field(compare=False)
    uid: str = field(compare=False, default="")
    added_at: float = field(compare=False, default=0.0)


ActionFunc = Callable[[TimedValue], Awaitable[tuple[bool, float]]]


class RateLimitedTimedQueue:
    """Upstream RateLimitedTimedQueue: unique values ordered by when to process them, drained
    under a token bucket. A processed value stays known (is not added again) until removed."""

    EVICTION_BURST = 1

    def __init__(self, qps: float, now: Callable[[], float]) -> None:
        self._now = now
        self.limiter = TokenBucket(qps, self.EVICTION_BURST, now)
        self._queue: list[TimedValue] = []
        self._set: set[str] = set()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, value: str) -> bool:
        return any(v.value == value for v in self._queue)

    def add(self, value: str, uid: str = "") -> bool:
        if value in self._set:
            return False
        now = self._now()
        self._queue.append(TimedValue(now, next(self._seq), value, uid, now))
        self._queue.sort()
        self._set.add(value)
        return True

    def remove(self, value: str) -> bool:
        if value not in self._set:
            return False
        self._set.discard(value)
        self._queue = [v for v in self._queue if v.value != value]
        return True

    def _remove_from_queue(self, value: str) -> None:
        self._queue = [v for v in self._queue if v.value != value]

    def swap_limiter(self, qps: float) -> None:
        if self.limiter.qps == qps:
            return
        new = TokenBucket(qps, self.EVICTION_BURST, self._now)
        # Burst is one: if the old bucket is empty, start the new one empty too.
        if qps > 0 and not self.limiter.try_accept():
            new.try_accept()
        self.limiter = new

    async def try_process(self, fn: ActionFunc) -> None:
        while self._queue:
            head = self._queue[0]
            if not self.limiter.try_accept():
                return
            now = self._now()
            if now < head.process_at:
                return
            done, wait = await fn(head)
            if head not in self._queue:
                continue  # removed while fn ran
            if not done:
                self._queue.remove(head)
                self._queue.append(
                    TimedValue(now + wait + 1e-9, next(self._seq), head.value, head.uid, head.added_at)
                )
                self._queue.sort()
            else:
                self._remove_from_queue(head.value)


# -- taints ---------------------------------------------------------------------------------


def _match(a: Obj, b: Obj) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def taint_exists(taints: Iterable[Obj] | None, taint: Obj) -> bool:
    return any(_match(t, taint) for t in taints or [])


def add_or_update_taint(taints: list[Taint], taint: Taint) -> tuple[list[Taint], bool]:
    """Upstream AddOrUpdateTaint: replace the taint with the same key and effect unless identical."""
    out: list[Taint] = []
    updated = False
    for existing in taints:
        if _match(existing, taint):
            if dict(existing) == dict(taint):
                return taints, False
            out.append(dict(taint))
            updated = True
            continue
        out.append(existing)
    if not updated:
        out.append(dict(taint))
    return out, True


def remove_taints(taints: list[Taint], remove: Iterable[Obj]) -> tuple[list[Taint], bool]:
    doomed = list(remove)
    out = [t for t in taints if not any(_match(t, r) for r in doomed)]
    return out, len(out) != len(taints)


def no_schedule_taints(node: Obj) -> list[Taint]:
    """The NoSchedule taints a node's conditions and spec.unschedulable call for."""
    wanted: list[Taint] = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get(str(cond.get("type")), {}).get(str(cond.get("status")))
        if key:
            wanted.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append(dict(UNSCHEDULABLE_TAINT))
    return wanted


def taint_set_diff(wanted: list[Taint], node: Obj) -> tuple[list[Taint], list[Taint]]:
    """(to add, to remove) among the NoSchedule taints this controller owns."""
    current = [
        t
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") == "NoSchedule"
        and (t.get("key") == UNSCHEDULABLE_TAINT["key"] or t.get("key") in _CONDITION_TAINT_KEYS)
    ]
    add = [t for t in wanted if not taint_exists(current, t)]
    remove = [dict(t) for t in current if not taint_exists(wanted, t)]
    return add, remove
