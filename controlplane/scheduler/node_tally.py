"""Per-domain counts over a snapshot's nodes, kept across scheduling cycles.

PodTopologySpread and InterPodAffinity count, in their PreFilter, the pods matching a selector
in every topology domain: a pass over every pod on every node, each cycle. Between two cycles
only the nodes the scheduler assumed a pod onto (or the informers changed) differ, and the
snapshot logs their names. A NodeTally keeps each node's contribution and the totals, and on
`sync` recounts only the nodes logged since its last sync: the totals are exactly what a full
recount would give, at the cost of the changed nodes only. Tallies are kept per question (the
namespace, selectors and topology keys asked about) in a small LRU, since the pods of one
workload ask the same question cycle after cycle."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from controlplane.scheduler.cache import Snapshot
from controlplane.scheduler.nodeinfo import NodeInfo

__all__ = ["Contribution", "NodeTally", "TallyCache"]

# (slot, domain, count): a node adds `count` to `domain` of tally slot `slot` (one slot per
# constraint or term list). A domain is in the totals while any node contributes to it, even
# with 0, because a domain that exists with no matching pods still counts for the minimum.
Contribution = tuple[int, Any, int]

K = TypeVar("K", bound=Hashable)


class NodeTally:
    def __init__(self, slots: int, count: Callable[[NodeInfo], Iterable[Contribution]]) -> None:
        self._count = count
        self._slots = slots
        self._mark: tuple[int, int] | None = None
        self._per_node: dict[str, list[Contribution]] = {}
        self.totals: list[dict[Any, int]] = [{} for _ in range(slots)]
        self._refs: list[dict[Any, int]] = [{} for _ in range(slots)]

    def _add(self, name: str, info: NodeInfo) -> None:
        contributions = list(self._count(info))
        if not contributions:
            return
        self._per_node[name] = contributions
        totals, refs = self.totals, self._refs
        for slot, domain, n in contributions:
            t = totals[slot]
            t[domain] = t.get(domain, 0) + n
            r = refs[slot]
            r[domain] = r.get(domain, 0) + 1

    def _remove(self, name: str) -> None:
        contributions = self._per_node.pop(name, None)
        if not contributions:
            return
        totals, refs = self.totals, self._refs
        for slot, domain, n in contributions:
            r = refs[slot]
            left = r[domain] - 1
            if left:
                r[domain] = left
                totals[slot][domain] -= n
            else:
                del r[domain]
                del totals[slot][domain]

    def contribution(self, name: str, slot: int) -> int | None:
        """What node `name` added to slot `slot` at the last sync (None: nothing)."""
        for s, _, n in self._per_node.get(name, ()):
            if s == slot:
                return n
        return None

    def sync(self, snapshot: Snapshot) -> list[dict[Any, int]]:
        """The totals over the snapshot's current nodes (read-only: copy before changing)."""
        changed = snapshot.changed_since(self._mark)
        if changed is None:
            self._per_node.clear()
            self.totals = [{} for _ in range(self._slots)]
            self._refs = [{} for _ in range(self._slots)]
            for info in snapshot.node_info_list:
                self._add(info.name, info)
        elif changed:
            for name in set(changed):
                self._remove(name)
                current = snapshot.node_info_map.get(name)
                if current is not None:
                    self._add(name, current)
        self._mark = snapshot.mark()
        return self.totals


class TallyCache(Generic[K]):
    """Tallies by question, least recently used dropped first."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._tallies: OrderedDict[K, NodeTally] = OrderedDict()

    def get(self, key: K, make: Callable[[], NodeTally]) -> NodeTally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = make()
            self._tallies[key] = tally
            if len(self._tallies) > self._size:
                self._tallies.popitem(last=False)
        else:
            self._tallies.move_to_end(key)
        return tally
