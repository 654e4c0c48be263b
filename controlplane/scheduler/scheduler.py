"""The scheduler (schedule_one.go, eventhandlers.go, scheduler.go): informers feed the cache
and the queue; one loop pops a pod and runs the scheduling cycle (snapshot, filter, score,
reserve, permit, assume), then hands the binding cycle to its own task, so the next pod is
scheduled while the previous binding is in flight. Failures become a FailedScheduling event and
a PodScheduled=False condition worded as upstream words them.

`run_scheduler` is the entry point of `pinnace scheduler` and of the scheduler inside
`pinnace server`: it campaigns for the kube-system/kube-scheduler Lease and schedules only while
leading, each term starting from fresh informers and caches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.client import Client
from controlplane.controllers.runtime import (
    Clock,
    EventBroadcaster,
    InformerFactory,
    LeaderElector,
    RealClock,
)
from controlplane.controllers.runtime import resources as R
from controlplane.scheduler.api import ClientAPI, truncate_message
from controlplane.scheduler.cache import Cache, CacheError, Snapshot
from controlplane.scheduler.cluster_events import (
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    NODE_DELETE,
    UNSCHEDULED_POD_DELETE,
    node_scheduling_properties_change,
)
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import (
    Framework,
    NoNodesAvailable,
    PluginFactory,
    PluginSpec,
    SchedulerAPI,
    ScheduleResult,
    SchedulingError,
)
from controlplane.scheduler.plugins import DEFAULT_PLUGINS, registry
from controlplane.scheduler.podinfo import PodInfo, QueuedPodInfo
from controlplane.scheduler.queue import QueueClosed, SchedulingQueue
from controlplane.scheduler.status import (
    CLEAR_NOMINATED_NODE,
    Code,
    Diagnosis,
    FitError,
    NodeToStatus,
    NominatingInfo,
    Status,
    is_success,
)

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler", "SchedulerRunner", "run_scheduler"]

log = logging.getLogger("pinnace.scheduler")

DEFAULT_SCHEDULER_NAME = "default-scheduler"

Obj = Mapping[str, Any]


def _assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class _Failure:
    """A failed attempt: `rejected` pods are Unschedulable, the rest hit a SchedulerError."""

    rejected: bool
    message: str
    diagnosis: Diagnosis | None = None
    nominating: NominatingInfo | None = CLEAR_NOMINATED_NODE


class InformerListers:
    """framework.Listers over the shared informers' caches."""

    def __init__(self, informers: InformerFactory) -> None:
        self._namespaces = informers.informer(R.NAMESPACES)
        self._pdbs = informers.informer(R.PDBS)
        self._services = informers.informer(R.SERVICES)
        self._owners = {
            "ReplicaSet": informers.informer(R.REPLICASETS),
            "StatefulSet": informers.informer(R.STATEFULSETS),
            "ReplicationController": informers.informer(R.REPLICATIONCONTROLLERS),
        }
        self._pods = informers.informer(R.PODS)

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        ns = self._namespaces.get(name)
        if ns is None:
            return None
        labels: Mapping[str, str] = (ns.get("metadata") or {}).get("labels") or {}
        return labels

    def namespaces(self) -> list[Obj]:
        return list(self._namespaces.list())

    def pdbs(self) -> list[Obj]:
        return list(self._pdbs.list())

    def services(self, namespace: str) -> list[Obj]:
        return list(self._services.list(namespace))

    def owner(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = self._owners.get(kind)
        return informer.get(f"{namespace}/{name}") if informer is not None else None

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self._pods.get(f"{namespace}/{name}")


class Scheduler:
    def __init__(
        self,
        informers: InformerFactory,
        api: SchedulerAPI,
        broadcaster: EventBroadcaster | None,
        *,
        profiles: Sequence[str] = (DEFAULT_SCHEDULER_NAME,),
        clock: Clock | None = None,
        percentage_of_nodes_to_score: int = 0,
        plugins: Sequence[PluginSpec] = DEFAULT_PLUGINS,
        out_of_tree: Mapping[str, PluginFactory] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock or RealClock()
        self.informers = informers
        self.api = api
        self.cache = Cache()
        self.snapshot = Snapshot()
        self.listers = InformerListers(informers)
        rng = rng or random.Random()
        plugin_registry = {**registry(), **(out_of_tree or {})}
        self.frameworks: dict[str, Framework] = {}
        for name in profiles:
            fw = Framework(
                name,
                plugins,
                plugin_registry,
                percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                listers=self.listers,
                api=api,
                recorder=broadcaster.recorder(name) if broadcaster is not None else None,
                rng=rng,
                now=lambda: self.clock.now().timestamp(),
            )
            fw.snapshot = self.snapshot
            self.frameworks[name] = fw
        self.queue = SchedulingQueue(self.frameworks, clock=self.clock, pod_exists=self._pod_exists_unbound)
        for fw in self.frameworks.values():
            fw.nominator = self.queue
        self._pods = informers.informer(R.PODS)
        self._nodes = informers.informer(R.NODES)
        self._priority_classes = informers.informer(R.PRIORITYCLASSES)
        self._pods.add_handler(self._on_pod)
        self._nodes.add_handler(self._on_node)
        self._tg: asyncio.TaskGroup | None = None
        self.scheduled = 0  # bindings that succeeded, for tests and logs

    # -- pods as the scheduler sees them ---------------------------------------------------------

    def pod_info(self, pod: dict[str, Any], like: PodInfo | None = None) -> PodInfo:
        """The PodInfo of `pod`; `like`, the PodInfo of an earlier copy, is reused when the pod
        only changed what binding changes (the informer confirming a binding)."""
        spec = pod.get("spec") or {}
        priority: int | None = None
        if spec.get("priority") is None and spec.get("priorityClassName"):
            # Priority admission normally resolves the class; do it here when it did not.
            cls = self._priority_classes.get(str(spec["priorityClassName"]))
            priority = int(cls.get("value") or 0) if cls is not None else 0
        if like is not None and like.same_inputs(pod):
            return like.with_pod(pod, priority=priority)
        return PodInfo(pod, priority=priority)

    def _responsible(self, pod: Obj) -> bool:
        return str((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME) in self.frameworks

    def _pod_exists_unbound(self, pod: PodInfo) -> bool:
        current = self._pods.get(pod.key)
        if current is None:
            return False
        return (current.get("metadata") or {}).get("uid") == pod.pod.get("metadata", {}).get(
            "uid"
        ) and not _assigned(current)

    # -- informer handlers (eventhandlers.go) ----------------------------------------------------

    def _on_pod(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "DELETED":
            gone = new or old
            if gone is not None:
                self._pod_deleted(self.pod_info(gone))
            return
        if new is None:
            return
        uid = str((new.get("metadata") or {}).get("uid") or "")
        cached = self.cache.get_pod(uid) if uid else None
        if _assigned(new) and not _terminal(new) and old is not None and not _assigned(old):
            # The informer confirms a binding (ours, usually): the assumed PodInfo has it parsed.
            new_pi = self.pod_info(new, like=cached)
            self.queue.delete(new_pi)  # bound (by us or anyone): no longer ours to schedule
            self.cache.add_pod(new_pi)
            self.queue.assigned_pod_added(new_pi)
            return
        new_pi = self.pod_info(new, like=cached)
        old_pi = self.pod_info(old) if old is not None else None
        in_cache = self.cache.get_pod(new_pi.uid) is not None
        if _assigned(new) and not _terminal(new):
            if old_pi is not None and in_cache and not self.cache.is_assumed(new_pi.uid):
                self.cache.update_pod(old_pi, new_pi)
                self.queue.assigned_pod_updated(old_pi, new_pi)
                return
            if old_pi is not None and not old_pi.node_name:
                self.queue.delete(old_pi)  # bound (by us or anyone): no longer ours to schedule
            self.cache.add_pod(new_pi)
            self.queue.assigned_pod_added(new_pi)
            return
        if _assigned(new):
            # Terminal pods release their resources, as if deleted.
            if in_cache:
                self.cache.remove_pod(new_pi)
                self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE, new_pi, None)
            return
        if _terminal(new) or not self._responsible(new):
            self.queue.delete(new_pi)
            return
        if event == "ADDED" or old_pi is None:
            self.queue.add(new_pi)
        else:
            self.queue.update(old_pi, new_pi)

    def _pod_deleted(self, pod: PodInfo) -> None:
        cached = self.cache.get_pod(pod.uid)
        if cached is not None and not self.cache.is_assumed(pod.uid):
            self.cache.remove_pod(cached)
            self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE, cached, None)
            return
        self.queue.delete(pod)
        fw = self.frameworks.get(pod.scheduler_name)
        waiting = fw.waiting_pods.get(pod.uid) if fw is not None else None
        if waiting is not None:
            waiting.reject("", "pod deleted")
            self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE, pod, None)
        elif pod.nominated_node_name:
            # The room preemption made for it is free again.
            self.queue.move_all_to_active_or_backoff(UNSCHEDULED_POD_DELETE, pod, None)

    def _on_node(self, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event == "ADDED" and new is not None:
            self.cache.add_node(new)
            self.queue.move_all_to_active_or_backoff(NODE_ADD, None, new)
        elif event == "MODIFIED" and new is not None and old is not None:
            self.cache.update_node(old, new)
            for change in node_scheduling_properties_change(new, old):
                self.queue.move_all_to_active_or_backoff(change, old, new)
        elif event == "DELETED":
            gone = new or old
            if gone is not None:
                self.cache.remove_node(gone)
                self.queue.move_all_to_active_or_backoff(NODE_DELETE, gone, None)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until `stop`. The informers must be started by the caller."""
        await self.informers.wait_synced()
        log.info("scheduler %s started", ", ".join(self.frameworks))
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.queue.run(stop), name="scheduling-queue-flush")
            loop = tg.create_task(self._loop(), name="scheduling-loop")
            await stop.wait()
            self.queue.close()
            await loop
        self._tg = None

    async def _loop(self) -> None:
        while True:
            try:
                qpi = await self.queue.pop()
            except QueueClosed:
                return
            try:
                await self.schedule_one(qpi)
            except Exception:
                log.exception("scheduling %s crashed", qpi.pod_info.key)
                self.queue.done(qpi.uid)
            # A cycle awaits nothing when it succeeds: yield, so that bindings in flight and
            # informer events progress between cycles instead of after the queue drains.
            await asyncio.sleep(0)

    async def schedule_one(self, qpi: QueuedPodInfo) -> None:
        pod = qpi.pod_info
        fw = self.frameworks.get(pod.scheduler_name)
        if fw is None:
            self.queue.done(pod.uid)
            return
        if pod.deleting:
            if fw.recorder is not None:
                fw.recorder.event(
                    pod.pod,
                    "Warning",
                    "FailedScheduling",
                    f"skip schedule deleting pod: {pod.namespace}/{pod.name}",
                )
            self.queue.done(pod.uid)
            return
        if self.cache.is_assumed(pod.uid):
            self.queue.done(pod.uid)
            return
        state = CycleState()
        try:
            outcome = await self.scheduling_cycle(state, fw, qpi)
        except Exception as exc:
            log.exception("scheduling cycle of %s failed", pod.key)
            outcome = _Failure(False, str(exc))
        if isinstance(outcome, _Failure):
            self.handle_failure(fw, qpi, outcome)
            return
        result, assumed = outcome
        task = self.binding_cycle(state, fw, result, qpi, assumed)
        if self._tg is not None:
            self._tg.create_task(task, name=f"bind-{pod.key}")
        else:
            await task

    async def scheduling_cycle(
        self, state: CycleState, fw: Framework, qpi: QueuedPodInfo
    ) -> tuple[ScheduleResult, PodInfo] | _Failure:
        pod = qpi.pod_info
        self.cache.update_snapshot(self.snapshot)
        try:
            result = fw.schedule_pod(state, pod)
        except NoNodesAvailable as exc:
            return _Failure(True, str(exc))
        except FitError as fit:
            if not fw.post_filter:
                return _Failure(True, str(fit), fit.diagnosis)
            post_result, post_status = await fw.run_post_filter(state, pod, fit.diagnosis.node_to_status)
            fit.diagnosis.post_filter_msg = post_status.message
            if post_status.code == Code.ERROR:
                log.warning("running PostFilter for %s: %s", pod.key, post_status.message)
            nominating = post_result.nominating_info if post_result is not None else None
            return _Failure(True, str(fit), fit.diagnosis, nominating)
        except SchedulingError as exc:
            return _Failure(False, str(exc))
        assumed = self._assumed_copy(pod, result.suggested_host)
        try:
            self.cache.assume_pod(assumed)
        except CacheError as exc:
            return _Failure(False, str(exc))
        self.queue.delete_nominated_pod_if_exists(pod)
        status = fw.run_reserve(state, assumed, result.suggested_host)
        if not is_success(status):
            fw.run_unreserve(state, assumed, result.suggested_host)
            self.cache.forget_pod(assumed)
            return self._single_node_failure(status, result.suggested_host)
        status = fw.run_permit(state, assumed, result.suggested_host)
        if not is_success(status) and not (status is not None and status.code == Code.WAIT):
            fw.run_unreserve(state, assumed, result.suggested_host)
            self.cache.forget_pod(assumed)
            return self._single_node_failure(status, result.suggested_host)
        return result, assumed

    def _assumed_copy(self, pod: PodInfo, node: str) -> PodInfo:
        obj = dict(pod.pod)
        obj["spec"] = {**(pod.pod.get("spec") or {}), "nodeName": node}
        return pod.with_pod(obj, priority=pod.priority)

    @staticmethod
    def _single_node_failure(status: Status | None, node: str) -> _Failure:
        assert status is not None
        if status.is_rejected():
            diagnosis = Diagnosis(node_to_status=NodeToStatus({node: status}))
            diagnosis.add_plugin_status(status)
            return _Failure(True, str(FitError("", 1, diagnosis)), diagnosis)
        return _Failure(False, status.message)

    async def binding_cycle(
        self, state: CycleState, fw: Framework, result: ScheduleResult, qpi: QueuedPodInfo, assumed: PodInfo
    ) -> None:
        node = result.suggested_host
        status = await fw.wait_on_permit(assumed)
        if not is_success(status):
            assert status is not None
            await self._binding_failed(fw, state, qpi, assumed, node, status)
            return
        # Failures past Permit are errors, never "unschedulable": the pod goes to backoff.
        self.queue.done(qpi.uid)
        status = await fw.run_pre_bind(state, assumed, node)
        if is_success(status):
            status = await fw.run_bind(state, assumed, node)
        self.cache.finish_binding(assumed)
        if not is_success(status):
            assert status is not None
            await self._binding_failed(fw, state, qpi, assumed, node, status)
            return
        self.scheduled += 1
        log.debug(
            "bound %s to %s (%d feasible of %d evaluated)",
            assumed.key,
            node,
            result.feasible_nodes,
            result.evaluated_nodes,
        )
        if fw.recorder is not None:
            fw.recorder.event(
                assumed.pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {assumed.namespace}/{assumed.name} to {node}",
            )
        fw.run_post_bind(state, assumed, node)

    async def _binding_failed(
        self,
        fw: Framework,
        state: CycleState,
        qpi: QueuedPodInfo,
        assumed: PodInfo,
        node: str,
        status: Status,
    ) -> None:
        fw.run_unreserve(state, assumed, node)
        self.cache.forget_pod(assumed)
        # Forgetting the assumed pod frees its room, like a deletion would.
        self.queue.move_all_to_active_or_backoff(
            ASSIGNED_POD_DELETE, assumed, None, lambda other: other.uid != assumed.uid
        )
        failure = self._single_node_failure(status, node)
        failure.nominating = CLEAR_NOMINATED_NODE
        self.handle_failure(fw, qpi, failure)

    def handle_failure(self, fw: Framework, qpi: QueuedPodInfo, failure: _Failure) -> None:
        pod = qpi.pod_info
        reason = "Unschedulable" if failure.rejected else "SchedulerError"
        if failure.diagnosis is not None:
            qpi.unschedulable_plugins = set(failure.diagnosis.unschedulable_plugins)
            qpi.pending_plugins = set(failure.diagnosis.pending_plugins)
            log.info("unable to schedule %s: %s", pod.key, failure.message)
        else:
            qpi.unschedulable_plugins = set()
            qpi.pending_plugins = set()
            log.warning("error scheduling %s: %s; retrying", pod.key, failure.message)
        cached = self._pods.get(pod.key)
        latest = pod
        if cached is None or (cached.get("metadata") or {}).get("uid") != pod.pod.get("metadata", {}).get(
            "uid"
        ):
            log.info("pod %s doesn't exist in informer cache", pod.key)
            self.queue.done(pod.uid)
        elif _assigned(cached):
            log.info(
                "pod %s has been assigned to node %s; not requeueing", pod.key, cached["spec"]["nodeName"]
            )
            self.queue.done(pod.uid)
        else:
            latest = self.pod_info(cached)
            qpi.pod_info = latest
            self.queue.add_unschedulable_if_not_present(qpi)
        self.queue.add_nominated_pod(latest, failure.nominating)
        if fw.recorder is not None:
            fw.recorder.event(latest.pod, "Warning", "FailedScheduling", truncate_message(failure.message))
        condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": failure.message}
        self._spawn(self.api.patch_pod_status(latest.pod, condition, failure.nominating), f"status-{pod.key}")

    def _spawn(self, coro: Any, name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                log.warning("%s failed: %s", name, exc)

        if self._tg is not None:
            self._tg.create_task(guarded(), name=name)
        else:
            asyncio.get_running_loop().create_task(guarded(), name=name)


class SchedulerRunner:
    """Runs a Scheduler, under leader election or not; `active` is the scheduler of the current
    term (None while another instance leads)."""

    def __init__(
        self,
        client: Client,
        *,
        leader_election: bool,
        name: str = DEFAULT_SCHEDULER_NAME,
        clock: Clock | None = None,
        lease_name: str = "kube-scheduler",
        lease_namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        identity: str | None = None,
        percentage_of_nodes_to_score: int = 0,
    ) -> None:
        self.client = client
        self.leader_election = leader_election
        self.name = name
        self.clock = clock or RealClock()
        self.lease_name = lease_name
        self.lease_namespace = lease_namespace
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.active: Scheduler | None = None
        self.terms = 0

    async def run(self, stop: asyncio.Event) -> None:
        if not self.leader_election:
            await self._lead(stop)
            return
        elector = LeaderElector(
            self.client,
            self.lease_name,
            self.identity,
            namespace=self.lease_namespace,
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
            clock=self.clock,
        )
        await elector.run(stop, self._lead)

    async def _lead(self, lost: asyncio.Event) -> None:
        factory = InformerFactory(self.client, clock=self.clock)
        broadcaster = EventBroadcaster(self.client, clock=self.clock, host=self.identity.split("_")[0])
        api = ClientAPI(self.client, now=self.clock.now)
        scheduler = Scheduler(
            factory,
            api,
            broadcaster,
            profiles=(self.name,),
            clock=self.clock,
            percentage_of_nodes_to_score=self.percentage_of_nodes_to_score,
        )
        self.active = scheduler
        self.terms += 1
        try:
            async with asyncio.TaskGroup() as tg:
                factory.start(tg, lost)
                tg.create_task(broadcaster.run(lost), name="scheduler-events")
                await scheduler.run(lost)
            with contextlib.suppress(Exception):
                await broadcaster.flush()
        finally:
            self.active = None
            log.info("scheduler %s stopped", self.name)


async def run_scheduler(
    client: Client,
    stop: asyncio.Event,
    *,
    leader_election: bool,
    name: str = DEFAULT_SCHEDULER_NAME,
    clock: Clock | None = None,
    **options: Any,
) -> None:
    """Run the scheduler for pods with spec.schedulerName == `name` until `stop`. `options` are
    SchedulerRunner's: lease_name, lease_duration, renew_deadline, retry_period, identity,
    percentage_of_nodes_to_score."""
    await SchedulerRunner(client, leader_election=leader_election, name=name, clock=clock, **options).run(
        stop
    )
