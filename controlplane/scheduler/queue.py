"""The scheduling queue (internal/queue/scheduling_queue.go).

- activeQ: pods ready to be tried, ordered by the QueueSort plugin (PrioritySort: priority,
  then the time the pod entered the queue).
- backoffQ: pods that failed and wait out their backoff (1 s doubling per attempt to 10 s);
  flushed into activeQ every second.
- unschedulable pods: pods no node fits. A cluster event (node added, pod deleted, labels
  changed, ...) moves such a pod back only when a queueing hint of a plugin that rejected it says
  the event could help; every 30 s, pods that have waited there 5 minutes are moved regardless.
- in-flight pods: popped and being scheduled. Events arriving meanwhile are remembered, so a pod
  that turns out unschedulable is not parked if one of them could already have helped.

It also holds the nominator: pods nominated (by preemption) to nodes, which filters count as
present so the room preemption made is not taken by others.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from controlplane.controllers.runtime import Clock
from controlplane.scheduler.cluster_events import (
    ASSIGNED_POD_ADD,
    FORCE_ACTIVATE,
    UNSCHEDULABLE_TIMEOUT,
    ClusterEvent,
    ClusterEventWithHint,
    QueueingHint,
    Resource,
    pod_scheduling_properties_change,
)
from controlplane.scheduler.framework import Framework
from controlplane.scheduler.podinfo import PodInfo, QueuedPodInfo
from controlplane.scheduler.status import NominatingInfo, NominatingMode

__all__ = ["QueueClosed", "SchedulingQueue"]

log = logging.getLogger("pinnace.scheduler.queue")

POD_INITIAL_BACKOFF = 1.0
POD_MAX_BACKOFF = 10.0
POD_MAX_IN_UNSCHEDULABLE_PODS = 300.0
BACKOFF_FLUSH_PERIOD = 1.0
UNSCHEDULABLE_FLUSH_PERIOD = 30.0
SCHEDULING_GATES = "SchedulingGates"


class QueueClosed(Exception):
    pass


class _Strategy(IntEnum):
    SKIP = 0
    AFTER_BACKOFF = 1
    IMMEDIATELY = 2


class _Where(IntEnum):
    ACTIVE = 0
    BACKOFF = 1
    UNSCHEDULABLE = 2


@dataclass
class _Recorded:
    event: ClusterEvent
    old: Any
    new: Any


class SchedulingQueue:
    def __init__(
        self,
        profiles: Mapping[str, Framework],
        *,
        clock: Clock,
        initial_backoff: float = POD_INITIAL_BACKOFF,
        max_backoff: float = POD_MAX_BACKOFF,
        max_in_unschedulable: float = POD_MAX_IN_UNSCHEDULABLE_PODS,
        pod_exists: Callable[[PodInfo], bool] | None = None,
    ) -> None:
        if not profiles:
            raise ValueError("a scheduling queue needs at least one profile")
        self._profiles = dict(profiles)
        self._sort = next(iter(self._profiles.values())).queue_sort
        self._clock = clock
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_in_unschedulable = max_in_unschedulable
        # Whether a nominated pod still exists unbound (the informer's view); None: assume so.
        self._pod_exists = pod_exists
        self._hints: dict[str, dict[str, list[ClusterEventWithHint]]] = {
            name: fw.enqueue_extensions() for name, fw in self._profiles.items()
        }
        self._seq = itertools.count()
        self._active: dict[str, tuple[tuple[Any, ...], int, QueuedPodInfo]] = {}
        self._active_heap: list[tuple[tuple[Any, ...], int, str]] = []
        self._backoff: dict[str, tuple[float, int, QueuedPodInfo]] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, int] = {}  # uid -> index of the first event it has not seen
        self._events: list[_Recorded] = []
        self._events_base = 0  # absolute index of self._events[0]
        self._ready = asyncio.Event()
        self._closed = False
        self.scheduling_cycle = 0
        self._nominated: dict[str, list[PodInfo]] = {}
        self._nominated_node_of: dict[str, str] = {}

    # -- sizes, for tests and metrics ------------------------------------------------------------

    def pending(self) -> dict[str, int]:
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
            "in_flight": len(self._in_flight),
        }

    def where(self, uid: str) -> str:
        if uid in self._active:
            return "active"
        if uid in self._backoff:
            return "backoff"
        if uid in self._unschedulable:
            return "unschedulable"
        if uid in self._in_flight:
            return "in_flight"
        return ""

    def get(self, uid: str) -> QueuedPodInfo | None:
        if uid in self._active:
            return self._active[uid][2]
        if uid in self._backoff:
            return self._backoff[uid][2]
        return self._unschedulable.get(uid)

    # -- the three sub-queues --------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.monotonic()

    def _push_active(self, qpi: QueuedPodInfo) -> None:
        key = self._sort.sort_key(qpi)
        seq = next(self._seq)
        self._active[qpi.uid] = (key, seq, qpi)
        heapq.heappush(self._active_heap, (key, seq, qpi.uid))
        self._ready.set()

    def _push_backoff(self, qpi: QueuedPodInfo) -> None:
        expiry = self._backoff_expiry(qpi)
        seq = next(self._seq)
        self._backoff[qpi.uid] = (expiry, seq, qpi)
        heapq.heappush(self._backoff_heap, (expiry, seq, qpi.uid))

    def _remove_everywhere(self, uid: str) -> QueuedPodInfo | None:
        found = self._active.pop(uid, None)
        if found is not None:
            return found[2]
        backoff = self._backoff.pop(uid, None)
        if backoff is not None:
            return backoff[2]
        return self._unschedulable.pop(uid, None)

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        if qpi.attempts == 0:
            return 0.0
        duration = self._initial_backoff
        for _ in range(1, qpi.attempts):
            if duration > self._max_backoff - duration:
                return self._max_backoff
            duration += duration
        return duration

    def _backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi)

    def _is_backing_off(self, qpi: QueuedPodInfo) -> bool:
        if qpi.gated:
            return False
        return self._backoff_expiry(qpi) > self._now()

    def _framework_for(self, pod: PodInfo) -> Framework | None:
        return self._profiles.get(pod.scheduler_name)

    def _move_to_active(self, qpi: QueuedPodInfo) -> bool:
        """Into activeQ unless a PreEnqueue plugin (scheduling gates) holds it back."""
        fw = self._framework_for(qpi.pod_info)
        status = fw.run_pre_enqueue(qpi.pod_info) if fw is not None else None
        gated_before = qpi.gated
        qpi.gated = status is not None
        if qpi.gated:
            assert status is not None
            qpi.unschedulable_plugins = {status.plugin} if status.plugin else set()
            self._active.pop(qpi.uid, None)
            self._backoff.pop(qpi.uid, None)
            self._unschedulable[qpi.uid] = qpi
            return False
        if gated_before:
            qpi.unschedulable_plugins.discard(SCHEDULING_GATES)
        if qpi.initial_attempt_timestamp is None:
            qpi.initial_attempt_timestamp = self._now()
        self._unschedulable.pop(qpi.uid, None)
        self._backoff.pop(qpi.uid, None)
        self._push_active(qpi)
        return True

    # -- informer-driven changes -----------------------------------------------------------------

    def add(self, pod: PodInfo) -> None:
        """A new unscheduled pod."""
        if pod.uid in self._in_flight:
            return
        if self.where(pod.uid):
            self.update(None, pod)
            return
        self.add_nominated_pod(pod, None)
        self._move_to_active(QueuedPodInfo(pod, timestamp=self._now()))

    def update(self, old: PodInfo | None, new: PodInfo) -> None:
        uid = new.uid
        if uid in self._in_flight:
            # Requeued later from the informer's latest copy; remember the change meanwhile.
            if old is not None:
                for event in pod_scheduling_properties_change(new, old, assigned=False):
                    self._record(event, old, new)
            return
        if uid in self._active:
            _, _, qpi = self._active[uid]
            qpi.pod_info = new
            self._push_active(qpi)  # the priority may have changed; the stale heap entry is skipped
            self.update_nominated_pod(old, new)
            return
        if uid in self._backoff:
            _, _, qpi = self._backoff[uid]
            qpi.pod_info = new
            self.update_nominated_pod(old, new)
            return
        unsched = self._unschedulable.get(uid)
        if unsched is not None:
            unsched.pod_info = new
            self.update_nominated_pod(old, new)
            if old is None:
                return  # a relist replaying the pod: nothing changed that could help
            for event in pod_scheduling_properties_change(new, old, assigned=False):
                strategy = self._worth_requeuing(unsched, event, old, new)
                where = self._requeue(unsched, strategy)
                if where is not _Where.UNSCHEDULABLE:
                    break
            return
        self.add_nominated_pod(new, None)
        self._move_to_active(QueuedPodInfo(new, timestamp=self._now()))

    def delete(self, pod: PodInfo) -> None:
        self.delete_nominated_pod_if_exists(pod)
        self._remove_everywhere(pod.uid)

    def assigned_pod_added(self, pod: PodInfo) -> None:
        self.move_all_to_active_or_backoff(ASSIGNED_POD_ADD, None, pod)

    def assigned_pod_updated(self, old: PodInfo, new: PodInfo) -> None:
        for event in pod_scheduling_properties_change(new, old, assigned=True):
            self.move_all_to_active_or_backoff(event, old, new)

    # -- the scheduling loop's side --------------------------------------------------------------

    async def pop(self) -> QueuedPodInfo:
        while True:
            if self._closed:
                raise QueueClosed
            while self._active_heap:
                _, seq, uid = heapq.heappop(self._active_heap)
                entry = self._active.get(uid)
                if entry is None or entry[1] != seq:
                    continue  # removed or re-pushed since
                del self._active[uid]
                qpi = entry[2]
                qpi.attempts += 1
                self.scheduling_cycle += 1
                self._in_flight[uid] = self._events_base + len(self._events)
                return qpi
            self._ready.clear()
            await self._ready.wait()

    def done(self, uid: str) -> None:
        """The pod's scheduling attempt is over (bound, requeued or dropped)."""
        self._in_flight.pop(uid, None)
        if not self._in_flight:
            self._events_base += len(self._events)
            self._events.clear()
        else:
            oldest = min(self._in_flight.values())
            drop = oldest - self._events_base
            if drop > 0:
                del self._events[:drop]
                self._events_base = oldest

    def add_unschedulable_if_not_present(self, qpi: QueuedPodInfo) -> str:
        """Requeue a pod whose attempt failed; returns where it went."""
        try:
            if self.where(qpi.uid) not in ("", "in_flight"):
                return self.where(qpi.uid)
            qpi.timestamp = self._now()
            strategy = self._hint_for_in_flight(qpi)
            return self._requeue(qpi, strategy).name.lower()
        finally:
            self.done(qpi.uid)

    def _hint_for_in_flight(self, qpi: QueuedPodInfo) -> _Strategy:
        if not qpi.unschedulable_plugins and not qpi.pending_plugins:
            # Not rejected by a plugin (an API error, say): retry after backoff, or it might
            # wait for the next flush.
            return _Strategy.AFTER_BACKOFF
        start = self._in_flight.get(qpi.uid, self._events_base + len(self._events)) - self._events_base
        strategy = _Strategy.SKIP
        for recorded in self._events[max(start, 0) :]:
            hint = self._worth_requeuing(qpi, recorded.event, recorded.old, recorded.new)
            if hint is _Strategy.IMMEDIATELY:
                return hint
            if hint is _Strategy.AFTER_BACKOFF:
                strategy = hint
                if not qpi.pending_plugins:
                    return strategy
        return strategy

    def _requeue(self, qpi: QueuedPodInfo, strategy: _Strategy) -> _Where:
        if strategy is _Strategy.SKIP:
            self._active.pop(qpi.uid, None)
            self._backoff.pop(qpi.uid, None)
            self._unschedulable[qpi.uid] = qpi
            return _Where.UNSCHEDULABLE
        if strategy is _Strategy.AFTER_BACKOFF and self._is_backing_off(qpi):
            self._unschedulable.pop(qpi.uid, None)
            self._active.pop(qpi.uid, None)
            self._push_backoff(qpi)
            return _Where.BACKOFF
        if self._move_to_active(qpi):
            return _Where.ACTIVE
        return _Where.UNSCHEDULABLE

    def _worth_requeuing(self, qpi: QueuedPodInfo, event: ClusterEvent, old: Any, new: Any) -> _Strategy:
        rejectors = qpi.unschedulable_plugins | qpi.pending_plugins
        if not rejectors:
            return _Strategy.AFTER_BACKOFF
        if event.resource == Resource.WILDCARD:
            return _Strategy.AFTER_BACKOFF
        hints = self._hints.get(qpi.pod_info.scheduler_name, {})
        strategy = _Strategy.SKIP
        for plugin in rejectors:
            for registered in hints.get(plugin, ()):
                if not event.matches(registered.event):
                    continue
                hint = QueueingHint.QUEUE
                if registered.hint is not None:
                    try:
                        hint = registered.hint(qpi.pod_info, old, new)
                    except Exception:
                        log.exception("queueing hint of %s failed; requeueing %s", plugin, qpi.pod_info.key)
                        hint = QueueingHint.QUEUE
                if hint is QueueingHint.SKIP:
                    continue
                if plugin in qpi.pending_plugins:
                    return _Strategy.IMMEDIATELY
                if not qpi.pending_plugins:
                    return _Strategy.AFTER_BACKOFF
                strategy = _Strategy.AFTER_BACKOFF
        return strategy

    def _record(self, event: ClusterEvent, old: Any, new: Any) -> None:
        if self._in_flight:
            self._events.append(_Recorded(event, old, new))

    # -- cluster events --------------------------------------------------------------------------

    def move_all_to_active_or_backoff(
        self,
        event: ClusterEvent,
        old: Any,
        new: Any,
        pre_check: Callable[[QueuedPodInfo], bool] | None = None,
    ) -> None:
        for qpi in list(self._unschedulable.values()):
            if pre_check is not None and not pre_check(qpi):
                continue
            # Gated pods wait for their own update, which update() handles.
            if qpi.gated and SCHEDULING_GATES in qpi.unschedulable_plugins:
                continue
            strategy = self._worth_requeuing(qpi, event, old, new)
            if strategy is _Strategy.SKIP:
                continue
            del self._unschedulable[qpi.uid]
            self._requeue(qpi, strategy)
        self._record(event, old, new)

    def activate(self, pods: Iterable[PodInfo]) -> None:
        """Move these pods to activeQ at once (ForceActivate)."""
        for pod in pods:
            qpi = self._unschedulable.get(pod.uid)
            if qpi is None and pod.uid in self._backoff:
                qpi = self._backoff[pod.uid][2]
            if qpi is not None:
                self._move_to_active(qpi)
            elif pod.uid in self._in_flight:
                self._record(FORCE_ACTIVATE, None, pod)

    def flush_backoff_completed(self) -> None:
        now = self._now()
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, seq, uid = heapq.heappop(self._backoff_heap)
            entry = self._backoff.get(uid)
            if entry is None or entry[1] != seq:
                continue
            del self._backoff[uid]
            self._move_to_active(entry[2])

    def flush_unschedulable_leftover(self) -> None:
        now = self._now()
        stale = [q for q in self._unschedulable.values() if now - q.timestamp > self._max_in_unschedulable]
        if not stale:
            return
        uids = {q.uid for q in stale}
        self.move_all_to_active_or_backoff(UNSCHEDULABLE_TIMEOUT, None, None, lambda q: q.uid in uids)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush backoffQ every second and long-unschedulable pods every 30 s until `stop`."""
        ticks = 0
        per_flush = max(1, int(UNSCHEDULABLE_FLUSH_PERIOD / BACKOFF_FLUSH_PERIOD))
        while not stop.is_set():
            sleeper = asyncio.ensure_future(self._clock.sleep(BACKOFF_FLUSH_PERIOD))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                stopper.cancel()
            if stop.is_set():
                return
            self.flush_backoff_completed()
            ticks += 1
            if ticks % per_flush == 0:
                self.flush_unschedulable_leftover()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    # -- the nominator ---------------------------------------------------------------------------

    def add_nominated_pod(self, pod: PodInfo, nominating: NominatingInfo | None) -> None:
        self.delete_nominated_pod_if_exists(pod)
        if nominating is not None and nominating.mode == NominatingMode.OVERRIDE:
            node = nominating.nominated_node_name
        else:
            node = pod.nominated_node_name
        if not node or pod.node_name:
            return
        if self._pod_exists is not None and not self._pod_exists(pod):
            return  # deleted or bound meanwhile
        self._nominated_node_of[pod.uid] = node
        self._nominated.setdefault(node, []).append(pod)

    def delete_nominated_pod_if_exists(self, pod: PodInfo) -> None:
        node = self._nominated_node_of.pop(pod.uid, None)
        if node is None:
            return
        remaining = [p for p in self._nominated.get(node, []) if p.uid != pod.uid]
        if remaining:
            self._nominated[node] = remaining
        else:
            self._nominated.pop(node, None)

    def update_nominated_pod(self, old: PodInfo | None, new: PodInfo) -> None:
        nominating: NominatingInfo | None = None
        # An update without nominatedNodeName can overtake the status write that sets it:
        # keep the in-memory nomination then.
        if (old is None or not old.nominated_node_name) and not new.nominated_node_name:
            node = self._nominated_node_of.get(new.uid)
            if node is not None:
                nominating = NominatingInfo(node, NominatingMode.OVERRIDE)
        self.delete_nominated_pod_if_exists(old or new)
        self.add_nominated_pod(new, nominating)

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        return list(self._nominated.get(node, ()))

    def nominated_node_names(self) -> Collection[str]:
        return self._nominated.keys()

    def nominated_node_of(self, uid: str) -> str:
        return self._nominated_node_of.get(uid, "")
