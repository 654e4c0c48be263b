"""The scheduler cache (internal/cache): NodeInfos fed by the pod and node informers, plus the
pods the scheduler has *assumed* onto nodes before their binding reached the API server, so the
next cycle already sees their resources taken. An assumed pod is confirmed when the informer
delivers it bound, or forgotten when binding fails.

Each scheduling cycle works on a Snapshot: copies of the NodeInfos that changed since the last
one (by generation), in the node tree's zone-interleaved order."""

from __future__ import annotations

import builtins
import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.scheduler.node_columns import NodeColumns
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo

__all__ = ["Cache", "CacheError", "NodeTree", "Snapshot", "zone_key"]

log = logging.getLogger("pinnace.scheduler.cache")

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")


class CacheError(Exception):
    pass


def zone_key(node: Mapping[str, Any]) -> str:
    """utilnode.GetZoneKey: region and zone joined; "" when the node has neither."""
    labels: Mapping[str, str] = (node.get("metadata") or {}).get("labels") or {}
    region = next((labels[k] for k in REGION_LABELS if labels.get(k)), "")
    zone = next((labels[k] for k in ZONE_LABELS if labels.get(k)), "")
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


class NodeTree:
    """Node names per zone; `list()` takes one node from each zone in turn, so a scheduling
    cycle that stops early (percentageOfNodesToScore) still sees every zone."""

    def __init__(self) -> None:
        self._tree: dict[str, list[str]] = {}
        self._zones: list[str] = []
        self.num_nodes = 0

    def add(self, node: Mapping[str, Any]) -> None:
        name = str(node["metadata"]["name"])
        zone = zone_key(node)
        names = self._tree.get(zone)
        if names is None:
            self._tree[zone] = [name]
            self._zones.append(zone)
        elif name in names:
            return
        else:
            names.append(name)
        self.num_nodes += 1

    def remove(self, node: Mapping[str, Any]) -> None:
        name = str(node["metadata"]["name"])
        zone = zone_key(node)
        names = self._tree.get(zone)
        if names is None or name not in names:
            return
        names.remove(name)
        if not names:
            del self._tree[zone]
            self._zones.remove(zone)
        self.num_nodes -= 1

    def update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if zone_key(old) == zone_key(new):
            return
        self.remove(old)
        self.add(new)

    def list(self) -> list[str]:
        out: list[str] = []
        index = 0
        while len(out) < self.num_nodes:
            progressed = False
            for zone in self._zones:
                names = self._tree[zone]
                if index < len(names):
                    out.append(names[index])
                    progressed = True
            if not progressed:
                break
            index += 1
        return out


_epochs = itertools.count(1)
# Past this many logged changes the log is cut; a consumer that fell behind recounts everything.
_CHANGE_LOG_LIMIT = 50_000


class Snapshot:
    """What one scheduling cycle sees: NodeInfos by name and in the order filters visit them.

    It also logs the names of the NodeInfos replaced or removed by each update, so that plugins
    keeping per-node tallies across cycles (topology spread and pod affinity counts) recount only
    those nodes, and empties those nodes' entries in `columns` (per-node values aligned with the
    visiting order). Code that changes a snapshot NodeInfo in place must call `record_change`."""

    def __init__(self) -> None:
        self.node_info_map: dict[str, NodeInfo] = {}
        self.node_info_list: list[NodeInfo] = []
        self._with_affinity: list[NodeInfo] | None = []
        self._with_required_anti_affinity: list[NodeInfo] | None = []
        self.generation = 0
        self._position: dict[str, int] = {}
        self._epoch = next(_epochs)  # unique across snapshots: marks of another one never match
        self._log: list[str] = []
        self._log_base = 0
        self.columns = NodeColumns()

    @classmethod
    def build(cls, nodes: Iterable[dict[str, Any]], pods: Iterable[PodInfo] = ()) -> Snapshot:
        """A snapshot straight from objects (upstream's NewSnapshot), for tests and tools."""
        snap = cls()
        tree = NodeTree()
        for node in nodes:
            info = NodeInfo(node)
            snap.node_info_map[info.name] = info
            tree.add(node)
        for pod in pods:
            host = snap.node_info_map.get(pod.node_name)
            if host is not None:
                host.add_pod(pod)
        snap._set_order(tree.list())
        snap._index_affinity()
        return snap

    def _set_order(self, names: Iterable[str]) -> None:
        self.node_info_list = [self.node_info_map[n] for n in names if n in self.node_info_map]
        self._position = {info.name: i for i, info in enumerate(self.node_info_list)}
        self.columns.reset(len(self.node_info_list))

    def _index_affinity(self, *, affinity: bool = True, anti_affinity: bool = True) -> None:
        """Forget the lists of nodes with (anti-)affinity pods; they are rebuilt when next read."""
        if affinity:
            self._with_affinity = None
        if anti_affinity:
            self._with_required_anti_affinity = None

    @property
    def have_pods_with_affinity(self) -> builtins.list[NodeInfo]:
        if self._with_affinity is None:
            self._with_affinity = [n for n in self.node_info_list if n.pods_with_affinity]
        return self._with_affinity

    @property
    def have_pods_with_required_anti_affinity(self) -> builtins.list[NodeInfo]:
        if self._with_required_anti_affinity is None:
            self._with_required_anti_affinity = [
                n for n in self.node_info_list if n.pods_with_required_anti_affinity
            ]
        return self._with_required_anti_affinity

    def num_nodes(self) -> int:
        return len(self.node_info_list)

    def get(self, name: str) -> NodeInfo | None:
        return self.node_info_map.get(name)

    def list(self) -> list[NodeInfo]:
        return self.node_info_list

    # -- the change log ------------------------------------------------------------------------

    def mark(self) -> tuple[int, int]:
        """A position in the change log, for `changed_since`."""
        return self._epoch, self._log_base + len(self._log)

    def changed_since(self, mark: tuple[int, int] | None) -> builtins.list[str] | None:
        """Names of the nodes changed since `mark` (repeats possible), or None when that is no
        longer known (another snapshot, a full rebuild, or a log cut since)."""
        if mark is None:
            return None
        epoch, position = mark
        if epoch != self._epoch or position < self._log_base:
            return None
        return self._log[position - self._log_base :]

    def record_change(self, name: str) -> None:
        self._log.append(name)
        position = self._position.get(name)
        if position is not None:
            self.columns.forget((position,))
        if len(self._log) > _CHANGE_LOG_LIMIT:
            cut = len(self._log) // 2
            del self._log[:cut]
            self._log_base += cut

    def reset_changes(self) -> None:
        """Everything may have changed: every consumer recounts."""
        self._epoch = next(_epochs)
        self._log.clear()
        self._log_base = 0


@dataclass
class _PodState:
    pod: PodInfo
    binding_finished: bool = False


class Cache:
    """Single-writer (the event loop) cache of NodeInfos. Pods are keyed by uid."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._tree = NodeTree()
        self._pod_states: dict[str, _PodState] = {}
        self._assumed: set[str] = set()
        self._dirty: set[str] = set()
        self._tree_changed = True
        self._tree_names: list[str] = []

    # -- nodes ---------------------------------------------------------------------------------

    def add_node(self, node: dict[str, Any]) -> NodeInfo:
        name = str(node["metadata"]["name"])
        info = self._nodes.get(name)
        if info is None:
            info = NodeInfo()
            self._nodes[name] = info
        elif info.node is not None:
            self._tree.remove(info.node)
        self._tree.add(node)
        info.set_node(node)
        self._touch(name, tree=True)
        return info

    def update_node(self, old: dict[str, Any], new: dict[str, Any]) -> NodeInfo:
        name = str(new["metadata"]["name"])
        info = self._nodes.get(name)
        if info is None or info.node is None:
            return self.add_node(new)
        zone_moved = zone_key(info.node) != zone_key(new)
        self._tree.update(info.node, new)
        info.set_node(new)
        self._touch(name, tree=zone_moved)
        return info

    def remove_node(self, node: Mapping[str, Any]) -> None:
        """Drop the node; its NodeInfo lingers (node-less) while pods still point at it, so their
        removal later still balances the books."""
        name = str(node["metadata"]["name"])
        info = self._nodes.get(name)
        if info is None:
            return
        if info.node is not None:
            self._tree.remove(info.node)
        if info.pods:
            info.remove_node()
        else:
            del self._nodes[name]
        self._touch(name, tree=True)

    # -- pods ----------------------------------------------------------------------------------

    def _node_info_for(self, name: str) -> NodeInfo:
        info = self._nodes.get(name)
        if info is None:
            # A pod bound to a node the informer has not delivered yet: keep its books anyway.
            info = NodeInfo()
            info.name = name
            self._nodes[name] = info
        return info

    def _add_pod(self, pod: PodInfo) -> None:
        self._node_info_for(pod.node_name).add_pod(pod)
        self._touch(pod.node_name)

    def _remove_pod(self, pod: PodInfo) -> None:
        info = self._nodes.get(pod.node_name)
        if info is None:
            return
        info.remove_pod(pod)
        if not info.pods and info.node is None:
            del self._nodes[pod.node_name]
        self._touch(pod.node_name)

    def assume_pod(self, pod: PodInfo) -> None:
        """Account `pod` (whose nodeName is the chosen node) before it is bound."""
        if pod.uid in self._pod_states:
            raise CacheError(f"pod {pod.key} is in the cache, so can't be assumed")
        self._add_pod(pod)
        self._pod_states[pod.uid] = _PodState(pod)
        self._assumed.add(pod.uid)

    def finish_binding(self, pod: PodInfo) -> None:
        state = self._pod_states.get(pod.uid)
        if state is not None and pod.uid in self._assumed:
            state.binding_finished = True

    def forget_pod(self, pod: PodInfo) -> None:
        state = self._pod_states.get(pod.uid)
        if state is None or pod.uid not in self._assumed:
            return
        self._remove_pod(state.pod)
        del self._pod_states[pod.uid]
        self._assumed.discard(pod.uid)

    def add_pod(self, pod: PodInfo) -> None:
        """The informer saw `pod` bound: confirm an assumption, or account a pod bound elsewhere."""
        state = self._pod_states.get(pod.uid)
        if state is not None and pod.uid in self._assumed:
            if state.pod.node_name != pod.node_name:
                log.info(
                    "pod %s was bound to %s, not %s as assumed", pod.key, pod.node_name, state.pod.node_name
                )
            self._remove_pod(state.pod)
            self._add_pod(pod)
            self._assumed.discard(pod.uid)
            state.pod = pod
            return
        if state is not None:
            # Already added (a relist replaying ADDED): treat as an update.
            self.update_pod(state.pod, pod)
            return
        self._add_pod(pod)
        self._pod_states[pod.uid] = _PodState(pod)

    def update_pod(self, old: PodInfo, new: PodInfo) -> None:
        state = self._pod_states.get(new.uid)
        if state is None:
            self.add_pod(new)
            return
        if new.uid in self._assumed:
            # The informer has not confirmed it yet; the assumed copy stays authoritative.
            return
        self._remove_pod(state.pod)
        self._add_pod(new)
        state.pod = new

    def remove_pod(self, pod: PodInfo) -> None:
        state = self._pod_states.pop(pod.uid, None)
        self._assumed.discard(pod.uid)
        if state is not None:
            self._remove_pod(state.pod)

    def is_assumed(self, uid: str) -> bool:
        return uid in self._assumed

    def get_pod(self, uid: str) -> PodInfo | None:
        state = self._pod_states.get(uid)
        return state.pod if state is not None else None

    def node_count(self) -> int:
        return self._tree.num_nodes

    def pod_count(self) -> int:
        return len(self._pod_states)

    def node_info(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    # -- snapshots -----------------------------------------------------------------------------

    def _touch(self, name: str, *, tree: bool = False) -> None:
        self._dirty.add(name)
        if tree:
            self._tree_changed = True

    def update_snapshot(self, snapshot: Snapshot) -> None:
        """Bring `snapshot` up to date, copying only the NodeInfos that changed and replacing them
        in place in the visiting order; the order itself is rebuilt only when nodes came, went or
        changed zone. The cache keeps one dirty set, so it serves exactly one snapshot (the
        scheduler's)."""
        if snapshot.generation == 0:
            self._dirty = set(self._nodes)
            snapshot.node_info_map.clear()
            snapshot.reset_changes()
            self._tree_changed = True
        elif not self._dirty:
            return
        reorder = self._tree_changed  # nodes came, went or moved zone
        affinity = anti_affinity = False
        for name in self._dirty:
            before = snapshot.node_info_map.get(name)
            info = self._nodes.get(name)
            if info is None or info.node is None:
                if before is not None:
                    del snapshot.node_info_map[name]
                    reorder = True
            else:
                after = info.clone()
                snapshot.node_info_map[name] = after
                if before is None:
                    reorder = True
                elif not reorder:
                    snapshot.node_info_list[snapshot._position[name]] = after
                affinity = affinity or bool(after.pods_with_affinity)
                anti_affinity = anti_affinity or bool(after.pods_with_required_anti_affinity)
            if before is not None:
                affinity = affinity or bool(before.pods_with_affinity)
                anti_affinity = anti_affinity or bool(before.pods_with_required_anti_affinity)
            snapshot.record_change(name)
        self._dirty.clear()
        if self._tree_changed:
            self._tree_names = self._tree.list()
            self._tree_changed = False
        if reorder:
            # References to the snapshot's current copies: a pass over names, no NodeInfo copies.
            snapshot._set_order(self._tree_names)
            snapshot._index_affinity()
        else:
            snapshot._index_affinity(affinity=affinity, anti_affinity=anti_affinity)
        snapshot.generation += 1
