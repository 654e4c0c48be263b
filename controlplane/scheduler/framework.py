"""The scheduling framework (framework/interface.go, framework/runtime/framework.go) and the
scheduling algorithm of schedule_one.go.

A profile is an ordered list of plugins with weights. Each plugin implements some extension
points: PreEnqueue and QueueSort (the queue), PreFilter, Filter, PostFilter, PreScore, Score and
NormalizeScore (choosing a node; pure functions of the snapshot, except PostFilter, whose
preemption talks to the API), Reserve and Permit (the end of the scheduling cycle), PreBind, Bind
and PostBind (the binding cycle, which runs concurrently). `Framework.schedule_pod` is the
algorithm: filter nodes starting where the previous cycle stopped, stop once enough feasible
nodes are found (percentageOfNodesToScore), score them and pick the best.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, mul
from typing import Any, ClassVar, Protocol

from controlplane.scheduler.cache import Snapshot
from controlplane.scheduler.cluster_events import ClusterEventWithHint
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.node_columns import NodeColumns, NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo, QueuedPodInfo
from controlplane.scheduler.status import (
    ERR_NO_NODES_AVAILABLE,
    Code,
    Diagnosis,
    FitError,
    NodeToStatus,
    NominatingInfo,
    PostFilterResult,
    PreFilterResult,
    Status,
    is_success,
)

__all__ = [
    "MAX_NODE_SCORE",
    "BindPlugin",
    "EnqueueExtensions",
    "FilterPlugin",
    "Framework",
    "Listers",
    "NoNodesAvailable",
    "NodePluginScores",
    "PermitPlugin",
    "Plugin",
    "PluginFactory",
    "PluginSpec",
    "PostBindPlugin",
    "PostFilterPlugin",
    "PreBindPlugin",
    "PreEnqueuePlugin",
    "PreFilterExtensions",
    "PreFilterPlugin",
    "PreScorePlugin",
    "QueueSortPlugin",
    "ReservePlugin",
    "ScheduleResult",
    "SchedulerAPI",
    "SchedulingError",
    "ScorePlugin",
    "StaticListers",
    "num_feasible_nodes_to_find",
]

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
DEFAULT_PERMIT_TIMEOUT = 15 * 60.0

Obj = Mapping[str, Any]


# -- what plugins may use (upstream's framework.Handle) ------------------------------------------


class Listers(Protocol):
    """Read access to the informers' caches that some plugins need."""

    def namespace_labels(self, name: str) -> Mapping[str, str] | None: ...

    def namespaces(self) -> list[Obj]: ...

    def pdbs(self) -> list[Obj]: ...

    def services(self, namespace: str) -> list[Obj]: ...

    def owner(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A ReplicaSet, StatefulSet or ReplicationController by kind and name."""
        ...

    def pod(self, namespace: str, name: str) -> Obj | None: ...


@dataclass
class StaticListers:
    """Listers over fixed lists: for tests and for tools that schedule without informers."""

    namespace_objs: list[Obj] = field(default_factory=list)
    pdb_objs: list[Obj] = field(default_factory=list)
    service_objs: list[Obj] = field(default_factory=list)
    owner_objs: list[Obj] = field(default_factory=list)
    pod_objs: list[Obj] = field(default_factory=list)

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        for ns in self.namespace_objs:
            if ns["metadata"]["name"] == name:
                labels: Mapping[str, str] = ns["metadata"].get("labels") or {}
                return labels
        return None

    def namespaces(self) -> list[Obj]:
        return list(self.namespace_objs)

    def pdbs(self) -> list[Obj]:
        return list(self.pdb_objs)

    def services(self, namespace: str) -> list[Obj]:
        return [s for s in self.service_objs if s["metadata"].get("namespace") == namespace]

    def owner(self, kind: str, namespace: str, name: str) -> Obj | None:
        for obj in self.owner_objs:
            meta = obj["metadata"]
            if obj.get("kind") == kind and meta.get("namespace") == namespace and meta.get("name") == name:
                return obj
        return None

    def pod(self, namespace: str, name: str) -> Obj | None:
        for obj in self.pod_objs:
            meta = obj["metadata"]
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return obj
        return None


class SchedulerAPI(Protocol):
    """The scheduler's writes to the API server."""

    async def bind(self, pod: Obj, node: str) -> None: ...

    async def patch_pod_status(
        self, pod: Obj, condition: dict[str, Any] | None, nominating: NominatingInfo | None
    ) -> None: ...

    async def preempt(self, victim: Obj, preemptor: Obj) -> None:
        """Mark `victim` with the DisruptionTarget condition, then delete it."""
        ...


class EventSink(Protocol):
    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None: ...


class Nominator(Protocol):
    def nominated_pods_for_node(self, node: str) -> list[PodInfo]: ...

    def nominated_node_names(self) -> Collection[str]:
        """The nodes some pod is nominated to (usually none)."""
        ...


# -- extension points --------------------------------------------------------------------------


class Plugin:
    name: ClassVar[str] = ""


class PreEnqueuePlugin(Plugin):
    def pre_enqueue(self, pod: PodInfo) -> Status | None:
        raise NotImplementedError


class QueueSortPlugin(Plugin):
    def sort_key(self, pod: QueuedPodInfo) -> tuple[Any, ...]:
        """Pods with smaller keys pop first."""
        raise NotImplementedError


class EnqueueExtensions(Plugin):
    def events_to_register(self) -> list[ClusterEventWithHint]:
        raise NotImplementedError


class PreFilterExtensions(Protocol):
    def add_pod(self, state: CycleState, pod: PodInfo, to_add: PodInfo, node: NodeInfo) -> Status | None: ...

    def remove_pod(
        self, state: CycleState, pod: PodInfo, to_remove: PodInfo, node: NodeInfo
    ) -> Status | None: ...


class PreFilterPlugin(Plugin):
    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None]:
        raise NotImplementedError

    def pre_filter_extensions(self) -> PreFilterExtensions | None:
        return None


class FilterPlugin(Plugin):
    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        raise NotImplementedError

    def filter_nodes(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], failed: dict[str, Status]
    ) -> list[NodeInfo]:
        """`filter` over many nodes: the ones that pass, in order; each other one's status goes
        into `failed` under its name. Hot plugins override this to avoid a call per node."""
        passed: list[NodeInfo] = []
        for node in nodes:
            status = self.filter(state, pod, node)
            if status is None or status.code == Code.SUCCESS:
                passed.append(node)
            else:
                failed[node.name] = status
        return passed


class PostFilterPlugin(Plugin):
    async def post_filter(
        self, state: CycleState, pod: PodInfo, statuses: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status | None]:
        raise NotImplementedError


class PreScorePlugin(Plugin):
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        raise NotImplementedError


class ScorePlugin(Plugin):
    normalizes: ClassVar[bool] = False  # whether normalize_score is implemented (ScoreExtensions)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        raise NotImplementedError

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """Scores of all `nodes`; hot plugins override this to avoid a call per node."""
        return [self.score(state, pod, node) for node in nodes]

    def normalize_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], scores: list[int]
    ) -> Status | None:
        """Rescale `scores` (one per node of `nodes`) in place into [0, MAX_NODE_SCORE]."""
        return None


class ReservePlugin(Plugin):
    def reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        raise NotImplementedError

    def unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        raise NotImplementedError


class PermitPlugin(Plugin):
    def permit(self, state: CycleState, pod: PodInfo, node: str) -> tuple[Status | None, float]:
        """(status, timeout): a Wait status parks the pod until allowed, rejected or timed out."""
        raise NotImplementedError


class PreBindPlugin(Plugin):
    async def pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        raise NotImplementedError


class BindPlugin(Plugin):
    async def bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        raise NotImplementedError


class PostBindPlugin(Plugin):
    def post_bind(self, state: CycleState, pod: PodInfo, node: str) -> None:
        raise NotImplementedError


PluginFactory = Callable[[Mapping[str, Any], "Framework"], Plugin]


@dataclass(frozen=True)
class PluginSpec:
    name: str
    weight: int = 0
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class NodePluginScores:
    name: str
    scores: list[tuple[str, int]] = field(default_factory=list)
    total: int = 0


@dataclass
class ScheduleResult:
    suggested_host: str
    evaluated_nodes: int
    feasible_nodes: int


class NoNodesAvailable(Exception):
    def __init__(self) -> None:
        super().__init__(ERR_NO_NODES_AVAILABLE)


class WaitingPod:
    """A pod parked by Permit plugins until each of them allows it (or one rejects it)."""

    def __init__(self, pod: PodInfo, pending: dict[str, float]) -> None:
        self.pod = pod
        self.pending = dict(pending)
        self.result: asyncio.Future[Status | None] = asyncio.get_running_loop().create_future()

    def allow(self, plugin: str) -> None:
        self.pending.pop(plugin, None)
        if not self.pending and not self.result.done():
            self.result.set_result(None)

    def reject(self, plugin: str, message: str) -> None:
        if not self.result.done():
            self.result.set_result(Status(Code.UNSCHEDULABLE, (message,), plugin))


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes to find before scoring: all of a small cluster; otherwise a
    percentage that shrinks as the cluster grows (50% - nodes/125, at least 5%), at least 100."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    num = num_all_nodes * percentage // 100
    return max(num, MIN_FEASIBLE_NODES_TO_FIND)


class Framework:
    def __init__(
        self,
        profile_name: str,
        plugins: Sequence[PluginSpec],
        registry: Mapping[str, PluginFactory],
        *,
        percentage_of_nodes_to_score: int = 0,
        listers: Listers | None = None,
        api: SchedulerAPI | None = None,
        recorder: EventSink | None = None,
        nominator: Nominator | None = None,
        rng: random.Random | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.profile_name = profile_name
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.listers: Listers = listers or StaticListers()
        self.api = api
        self.recorder = recorder
        self.nominator = nominator
        self.rng = rng or random.Random()
        # Wall-clock seconds (for pod start times in preemption); injectable for tests.
        self.now: Callable[[], float] = now or _wall_clock
        self.snapshot = Snapshot()
        self.next_start_node_index = 0
        self.waiting_pods: dict[str, WaitingPod] = {}
        self.plugins: list[Plugin] = []
        self.weights: dict[str, int] = {}
        for spec in plugins:
            plugin = registry[spec.name](spec.args, self)
            self.plugins.append(plugin)
            self.weights[plugin.name] = spec.weight or 1
        self.pre_enqueue = [p for p in self.plugins if isinstance(p, PreEnqueuePlugin)]
        sorters = [p for p in self.plugins if isinstance(p, QueueSortPlugin)]
        if len(sorters) != 1:
            raise ValueError(f"a profile needs exactly one QueueSort plugin, got {len(sorters)}")
        self.queue_sort: QueueSortPlugin = sorters[0]
        self.pre_filter = [p for p in self.plugins if isinstance(p, PreFilterPlugin)]
        self.filter = [p for p in self.plugins if isinstance(p, FilterPlugin)]
        self.post_filter = [p for p in self.plugins if isinstance(p, PostFilterPlugin)]
        self.pre_score = [p for p in self.plugins if isinstance(p, PreScorePlugin)]
        self.score = [p for p in self.plugins if isinstance(p, ScorePlugin)]
        self.reserve = [p for p in self.plugins if isinstance(p, ReservePlugin)]
        self.permit = [p for p in self.plugins if isinstance(p, PermitPlugin)]
        self.pre_bind = [p for p in self.plugins if isinstance(p, PreBindPlugin)]
        self.bind = [p for p in self.plugins if isinstance(p, BindPlugin)]
        self.post_bind = [p for p in self.plugins if isinstance(p, PostBindPlugin)]

    def plugin(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)

    def enqueue_extensions(self) -> dict[str, list[ClusterEventWithHint]]:
        return {p.name: p.events_to_register() for p in self.plugins if isinstance(p, EnqueueExtensions)}

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        return self.nominator.nominated_pods_for_node(node) if self.nominator is not None else []

    # -- queue ---------------------------------------------------------------------------------

    def run_pre_enqueue(self, pod: PodInfo) -> Status | None:
        for plugin in self.pre_enqueue:
            status = plugin.pre_enqueue(pod)
            if not is_success(status):
                assert status is not None
                return status.with_plugin(plugin.name)
        return None

    # -- filtering -----------------------------------------------------------------------------

    def run_pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> tuple[PreFilterResult | None, Status | None, set[str]]:
        result: PreFilterResult | None = None
        with_nodes: set[str] = set()
        skip: set[str] = set()
        returned: Status | None = None
        for plugin in self.pre_filter:
            r, status = plugin.pre_filter(state, pod, nodes)
            if status is not None and status.code == Code.SKIP:
                skip.add(plugin.name)
                continue
            if not is_success(status):
                assert status is not None
                status.with_plugin(plugin.name)
                if status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                    return None, status, set()
                if status.code == Code.UNSCHEDULABLE:
                    # Keep going: the remaining PreFilters must run for preemption to work.
                    returned = status
                    continue
                return (
                    None,
                    Status.error(f'running PreFilter plugin "{plugin.name}": {status.message}'),
                    set(),
                )
            if r is not None and not r.all_nodes():
                with_nodes.add(plugin.name)
            result = (result or PreFilterResult()).merge(r)
            if not result.all_nodes() and not result.node_names:
                names = sorted(with_nodes)
                msg = (
                    f"node(s) didn't satisfy plugin {names[0]}"
                    if len(names) == 1
                    else f"node(s) didn't satisfy plugin(s) [{' '.join(names)}] simultaneously"
                )
                status = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (msg,))
                return result, status, with_nodes
        state.skip_filter_plugins = skip
        state.filter_plugins = None
        return result, returned, with_nodes

    def run_pre_filter_extension_add_pod(
        self, state: CycleState, pod: PodInfo, to_add: PodInfo, node: NodeInfo
    ) -> Status | None:
        for plugin in self.pre_filter:
            ext = plugin.pre_filter_extensions()
            if ext is None or plugin.name in state.skip_filter_plugins:
                continue
            status = ext.add_pod(state, pod, to_add, node)
            if not is_success(status):
                return status
        return None

    def run_pre_filter_extension_remove_pod(
        self, state: CycleState, pod: PodInfo, to_remove: PodInfo, node: NodeInfo
    ) -> Status | None:
        for plugin in self.pre_filter:
            ext = plugin.pre_filter_extensions()
            if ext is None or plugin.name in state.skip_filter_plugins:
                continue
            status = ext.remove_pod(state, pod, to_remove, node)
            if not is_success(status):
                return status
        return None

    def run_filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for plugin in self._filter_plugins(state):
            status = plugin.filter(state, pod, node)
            if not is_success(status):
                assert status is not None
                if not status.is_rejected():
                    status = Status.error(f'running "{plugin.name}" filter plugin: {status.message}')
                return status.with_plugin(plugin.name)
        return None

    def run_filter_with_nominated_pods(
        self, state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> Status | None:
        """Filters with the node's nominated pods of equal or higher priority counted as running,
        then (if they passed and such pods exist) without them: the pod must fit either way, so
        it neither takes room freed for a preemptor nor relies on pods that may go elsewhere."""
        added, state_with, node_with, err = self._add_nominated_pods(state, pod, node)
        if err is not None:
            return err
        status = self.run_filter(state_with, pod, node_with)
        if not added or not is_success(status):
            return status
        return self.run_filter(state, pod, node)

    def _add_nominated_pods(
        self, state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> tuple[bool, CycleState, NodeInfo, Status | None]:
        nominated = self.nominated_pods_for_node(node.name)
        if not nominated:
            return False, state, node, None
        node_out = node.clone()
        state_out = state.clone()
        added = False
        for other in nominated:
            if other.priority >= pod.priority and other.uid != pod.uid:
                node_out.add_pod(other)
                status = self.run_pre_filter_extension_add_pod(state_out, pod, other, node_out)
                if not is_success(status):
                    return False, state, node, status
                added = True
        return added, state_out, node_out, None

    async def run_post_filter(
        self, state: CycleState, pod: PodInfo, statuses: NodeToStatus
    ) -> tuple[PostFilterResult | None, Status]:
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.post_filter:
            r, status = await plugin.post_filter(state, pod, statuses)
            if is_success(status):
                return r, status or Status()
            assert status is not None
            if status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return r, status.with_plugin(plugin.name)
            if not status.is_rejected():
                return None, Status.error(status.message).with_plugin(plugin.name)
            if r is not None and r.nominating_info is not None and r.nominating_info.mode:
                result = r
            reasons.extend(status.reasons)
            rejector = rejector or plugin.name
        return result, Status(Code.UNSCHEDULABLE, tuple(reasons), rejector)

    # -- scoring -------------------------------------------------------------------------------

    def run_pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        skip: set[str] = set()
        for plugin in self.pre_score:
            status = plugin.pre_score(state, pod, nodes)
            if status is not None and status.code == Code.SKIP:
                skip.add(plugin.name)
                continue
            if not is_success(status):
                assert status is not None
                return Status.error(f'running PreScore plugin "{plugin.name}": {status.message}')
        state.skip_score_plugins = skip
        return None

    def run_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> list[tuple[ScorePlugin, list[int]]]:
        """Each non-skipped Score plugin with its normalized, unweighted scores, one per node."""
        out: list[tuple[ScorePlugin, list[int]]] = []
        for plugin in self.score:
            if plugin.name in state.skip_score_plugins:
                continue
            scores = plugin.score_nodes(state, pod, nodes)
            if len(scores) != len(nodes):
                raise SchedulingError(
                    f'plugin "{plugin.name}" returned {len(scores)} scores for {len(nodes)} nodes'
                )
            if plugin.normalizes:
                status = plugin.normalize_score(state, pod, nodes, scores)
                if not is_success(status):
                    assert status is not None
                    raise SchedulingError(
                        f'running Normalize on Score plugins "{plugin.name}": {status.message}'
                    )
            if scores and (min(scores) < MIN_NODE_SCORE or max(scores) > MAX_NODE_SCORE):
                bad = next(v for v in scores if not MIN_NODE_SCORE <= v <= MAX_NODE_SCORE)
                raise SchedulingError(
                    f'plugin "{plugin.name}" returns an invalid score {bad}, it should in the range of '
                    f"[{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing"
                )
            out.append((plugin, scores))
        return out

    def _weighted_totals(self, per_plugin: list[tuple[ScorePlugin, list[int]]], count: int) -> list[int]:
        if not per_plugin:
            return [0] * count
        totals: list[int] | None = None
        for plugin, scores in per_plugin:  # run_score checked each list's length
            weight = self.weights[plugin.name]
            weighted = scores if weight == 1 else list(map(mul, scores, repeat(weight, count)))
            totals = weighted if totals is None else list(map(add, totals, weighted))
        assert totals is not None
        return totals

    # -- reserve, permit, bind -----------------------------------------------------------------

    def run_reserve(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        for plugin in self.reserve:
            status = plugin.reserve(state, pod, node)
            if not is_success(status):
                assert status is not None
                if not status.is_rejected():
                    status = Status.error(f'running Reserve plugin "{plugin.name}": {status.message}')
                return status.with_plugin(plugin.name)
        return None

    def run_unreserve(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for plugin in reversed(self.reserve):
            plugin.unreserve(state, pod, node)

    def run_permit(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        waits: dict[str, float] = {}
        for plugin in self.permit:
            status, timeout = plugin.permit(state, pod, node)
            if is_success(status):
                continue
            assert status is not None
            if status.is_rejected():
                return status.with_plugin(plugin.name)
            if status.code == Code.WAIT:
                waits[plugin.name] = (
                    min(timeout, DEFAULT_PERMIT_TIMEOUT) if timeout > 0 else DEFAULT_PERMIT_TIMEOUT
                )
                continue
            return Status.error(f'running Permit plugin "{plugin.name}": {status.message}').with_plugin(
                plugin.name
            )
        if waits:
            self.waiting_pods[pod.uid] = WaitingPod(pod, waits)
            return Status(Code.WAIT)
        return None

    async def wait_on_permit(self, pod: PodInfo) -> Status | None:
        waiting = self.waiting_pods.get(pod.uid)
        if waiting is None:
            return None
        try:
            timeout = min(waiting.pending.values())
            try:
                return await asyncio.wait_for(asyncio.shield(waiting.result), timeout)
            except TimeoutError:
                plugin = min(waiting.pending, key=lambda p: waiting.pending[p])
                return Status(
                    Code.UNSCHEDULABLE, (f"rejected due to timeout after waiting {timeout}s",), plugin
                )
        finally:
            self.waiting_pods.pop(pod.uid, None)

    async def run_pre_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        for plugin in self.pre_bind:
            status = await plugin.pre_bind(state, pod, node)
            if not is_success(status):
                assert status is not None
                if status.code == Code.SKIP:
                    continue
                return Status.error(f'running PreBind plugin "{plugin.name}": {status.message}')
        return None

    async def run_bind(self, state: CycleState, pod: PodInfo, node: str) -> Status | None:
        if not self.bind:
            return Status(Code.SKIP)
        status: Status | None = None
        for plugin in self.bind:
            status = await plugin.bind(state, pod, node)
            if status is not None and status.code == Code.SKIP:
                continue
            if not is_success(status):
                assert status is not None
                return Status.error(f'running Bind plugin "{plugin.name}": {status.message}')
            return status
        return status

    def run_post_bind(self, state: CycleState, pod: PodInfo, node: str) -> None:
        for plugin in self.post_bind:
            plugin.post_bind(state, pod, node)

    # -- the algorithm (schedule_one.go) -------------------------------------------------------

    def schedule_pod(self, state: CycleState, pod: PodInfo) -> ScheduleResult:
        """Choose a node for `pod` on the current snapshot. Raises NoNodesAvailable, FitError,
        or SchedulingError (an internal error); the caller runs PostFilter on a FitError."""
        if self.snapshot.num_nodes() == 0:
            raise NoNodesAvailable
        feasible, diagnosis = self.find_nodes_that_fit_pod(state, pod)
        if not feasible:
            raise FitError(pod.key, self.snapshot.num_nodes(), diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, 1 + len(diagnosis.node_to_status), 1)
        host = self._select(state, pod, feasible)
        return ScheduleResult(host, len(feasible) + len(diagnosis.node_to_status), len(feasible))

    def find_nodes_that_fit_pod(self, state: CycleState, pod: PodInfo) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis(node_to_status=NodeToStatus())
        all_nodes = self.snapshot.list()
        pre_result, status, plugins = self.run_pre_filter(state, pod, all_nodes)
        diagnosis.unschedulable_plugins = set(plugins)
        if not is_success(status):
            assert status is not None
            if not status.is_rejected():
                raise SchedulingError(status.message)
            # Every node shares the PreFilter verdict, so preemption sees it on all of them.
            diagnosis.node_to_status.absent = status
            diagnosis.pre_filter_msg = status.message
            diagnosis.add_plugin_status(status)
            return [], diagnosis
        # A nominated node (set by an earlier preemption) is likely the only one that fits.
        if pod.nominated_node_name:
            nominated = self.snapshot.get(pod.nominated_node_name)
            if nominated is not None:
                scratch = Diagnosis(node_to_status=NodeToStatus())
                feasible = self._find_nodes_that_pass_filters(state, pod, scratch, [nominated])
                if feasible:
                    return feasible, diagnosis
        nodes = all_nodes
        if pre_result is not None and not pre_result.all_nodes():
            wanted = pre_result.node_names or set()
            nodes = [n for n in (self.snapshot.get(name) for name in sorted(wanted)) if n is not None]
            diagnosis.node_to_status.absent = Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                (f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(plugins))}]",),
            )
        feasible = self._find_nodes_that_pass_filters(state, pod, diagnosis, nodes)
        processed = len(feasible) + len(diagnosis.node_to_status)
        if all_nodes:
            self.next_start_node_index = (self.next_start_node_index + processed) % len(all_nodes)
        return feasible, diagnosis

    def _find_nodes_that_pass_filters(
        self, state: CycleState, pod: PodInfo, diagnosis: Diagnosis, nodes: Sequence[NodeInfo]
    ) -> list[NodeInfo]:
        """Filter nodes in order from next_start_node_index until `to_find` pass. Nodes go
        through the plugins in chunks no larger than the number still wanted, so exactly the
        nodes a node-by-node loop would visit are visited, each plugin over a whole chunk."""
        total = len(nodes)
        if total == 0:
            return []
        to_find = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, total)
        if not self.score:
            to_find = 1
        start = self.next_start_node_index % total
        if not self.filter:
            return [nodes[(start + i) % total] for i in range(min(to_find, total))]
        plugins = self._filter_plugins(state)
        nominated = self.nominator.nominated_node_names() if self.nominator is not None else ()
        # Chunks of the snapshot's own order go out as windows, so plugins can read per-node
        # values they computed in earlier cycles as slices of a column (see node_columns).
        columns: NodeColumns | None = self.snapshot.columns
        if nodes is not self.snapshot.node_info_list or self.snapshot.columns.size != total:
            columns = None
        positions: list[int] | None = None  # of the feasible nodes, once some node failed
        feasible: list[NodeInfo] = []
        visited = 0
        while visited < total and len(feasible) < to_find:
            # The next nodes of the order from `start`, wrapping round: a slice or two of the
            # snapshot's list rather than a rotated copy of all of it (5,000 nodes at scale).
            chunk_start = (start + visited) % total
            chunk_end = chunk_start + min(to_find - len(feasible), total - visited)
            chunk = (
                list(nodes[chunk_start:chunk_end])
                if chunk_end <= total
                else [*nodes[chunk_start:], *nodes[: chunk_end - total]]
            )
            if columns is not None:
                chunk = NodeWindow(chunk, columns, chunk_start)
            visited += len(chunk)
            failed: dict[str, Status] = {}
            batch = chunk
            if nominated:
                batch = []
                for node in chunk:
                    if node.name in nominated:
                        status = self.run_filter_with_nominated_pods(state, pod, node)
                        if not is_success(status):
                            assert status is not None
                            failed[node.name] = status
                    else:
                        batch.append(node)
            for plugin in plugins:
                if not batch:
                    break
                rejected: dict[str, Status] = {}
                batch = plugin.filter_nodes(state, pod, batch, rejected)
                for name, returned in rejected.items():
                    # Plugins may hand one Status to many nodes: it stays shared.
                    wrapped = returned
                    if not returned.is_rejected():
                        wrapped = Status.error(f'running "{plugin.name}" filter plugin: {returned.message}')
                    failed[name] = wrapped.with_plugin(plugin.name)
            if not failed:
                if positions is not None:
                    positions.extend((chunk_start + i) % total for i in range(len(batch)))
                feasible.extend(batch)
                continue
            if columns is not None and not nominated:
                if positions is None:
                    positions = [(start + i) % total for i in range(len(feasible))]
                positions.extend(
                    (chunk_start + i) % total for i, node in enumerate(chunk) if node.name not in failed
                )
            if any(status.code == Code.ERROR for status in failed.values()):
                first = next(
                    failed[n.name] for n in chunk if n.name in failed and failed[n.name].code == Code.ERROR
                )
                raise SchedulingError(first.message)
            feasible.extend(batch if not nominated else [n for n in chunk if n.name not in failed])
            diagnosis.node_to_status.statuses.update(failed)
            for status in {id(st): st for st in failed.values()}.values():
                diagnosis.add_plugin_status(status)
        if columns is not None and not nominated:
            return NodeWindow(feasible, columns, start, positions)
        return feasible

    def _filter_plugins(self, state: CycleState) -> list[FilterPlugin]:
        plugins: list[FilterPlugin] | None = state.filter_plugins
        if plugins is None:
            plugins = [p for p in self.filter if p.name not in state.skip_filter_plugins]
            state.filter_plugins = plugins
        return plugins

    def prioritize_nodes(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> list[NodePluginScores]:
        """Every node's weighted score per plugin and in total (what upstream logs at -v=10)."""
        if not self.score:
            return [NodePluginScores(n.name, total=1) for n in nodes]
        per_plugin = self._scores(state, pod, nodes)
        out = []
        for i, node in enumerate(nodes):
            entry = NodePluginScores(node.name)
            for plugin, scores in per_plugin:
                weighted = scores[i] * self.weights[plugin.name]
                entry.scores.append((plugin.name, weighted))
                entry.total += weighted
            out.append(entry)
        return out

    def _scores(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
    ) -> list[tuple[ScorePlugin, list[int]]]:
        status = self.run_pre_score(state, pod, nodes)
        if not is_success(status):
            assert status is not None
            raise SchedulingError(status.message)
        return self.run_score(state, pod, nodes)

    def _select(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> str:
        """The best node by total weighted score; ties broken at random, as upstream's reservoir
        sampling does."""
        if not self.score:
            return self.rng.choice([n.name for n in nodes])
        # A plugin that gives every node the same score moves no node ahead of another.
        varying = [(p, s) for p, s in self._scores(state, pod, nodes) if s.count(s[0]) != len(s)]
        totals = self._weighted_totals(varying, len(nodes))
        best = max(totals)
        # random.choice over the tied nodes, without building their list: the same draw
        # (randrange(n) is choice's _randbelow(n)), so seeded runs place pods as before.
        pick = self.rng.randrange(totals.count(best))
        index = -1
        for _ in range(pick + 1):
            index = totals.index(best, index + 1)
        return nodes[index].name

    def select_host(self, scores: Sequence[NodePluginScores]) -> str:
        """A node with the highest total score; ties broken at random."""
        if not scores:
            raise SchedulingError("empty priorityList")
        best = max(s.total for s in scores)
        return self.rng.choice([s.name for s in scores if s.total == best])


class SchedulingError(Exception):
    """An internal error while scheduling (a plugin error rather than a verdict)."""


def _wall_clock() -> float:
    import time

    return time.time()
