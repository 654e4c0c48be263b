"""Per-node values kept in columns across cycles (node_columns) give exactly what computing every
node afresh gives, cycle after cycle, while the cache changes under them."""

from __future__ import annotations

import random
import sys
from typing import Any

from controlplane.scheduler.cache import Cache, Snapshot
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.node_columns import NodeColumns, NodeWindow
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import filter_node_by_node, framework, node, pod


def _infos(*names: str) -> list[NodeInfo]:
    return [NodeInfo(node(name)) for name in names]


def test_a_window_computes_only_unknown_values_and_wraps_round_the_end() -> None:
    infos = _infos("a", "b", "c", "d", "e")
    columns = NodeColumns(len(infos))
    asked: list[list[str]] = []
    value = dict.fromkeys("abcde", 1)

    def compute(nodes: list[NodeInfo]) -> list[int]:
        asked.append([n.name for n in nodes])
        return [value[n.name] for n in nodes]

    # Positions 3, 4, 0, 1: wrapping round the end of the order.
    wrapped = NodeWindow(infos[3:] + infos[:2], columns, 3)
    assert wrapped.values("k", compute) == [1, 1, 1, 1]
    assert asked == [["d", "e", "a", "b"]]
    # Known values are read back, not computed; only the unknown one is.
    whole = NodeWindow(infos, columns, 0)
    assert whole.values("k", compute) == [1, 1, 1, 1, 1]
    assert asked[1:] == [["c"]]
    # A changed node is computed again, alone.
    value["e"] = 7
    columns.forget([4])
    assert whole.values("k", compute) == [1, 1, 1, 1, 7]
    assert asked[2:] == [["e"]]
    assert wrapped.values("k", compute) == [1, 7, 1, 1]
    assert len(asked) == 3
    # Another key is another column.
    assert whole.values("other", compute) == [1, 1, 1, 1, 7]
    assert asked[3:] == [["a", "b", "c", "d", "e"]]
    # A new order forgets everything.
    columns.reset(len(infos))
    assert whole.values("k", compute) == [1, 1, 1, 1, 7]
    assert asked[4:] == [["a", "b", "c", "d", "e"]]
    # Nodes at scattered positions (the feasible ones after some failed) read the same column.
    scattered = NodeWindow([infos[4], infos[1]], columns, 0, positions=[4, 1])
    assert scattered.values("k", compute) == [7, 1]
    value["b"] = 3
    columns.forget([1])
    assert scattered.values("k", compute) == [7, 3]
    assert asked[5:] == [["b"]]
    assert whole.values("k", compute) == [1, 3, 1, 1, 7]
    assert len(asked) == 6
    # The list handed back is the caller's to change.
    got = whole.values("k", compute)
    got[0] = 99
    assert whole.values("k", compute)[0] == 1


def test_columns_beyond_the_limit_drop_the_least_recently_used() -> None:
    infos = _infos("a", "b")
    columns = NodeColumns(2, limit=2)
    calls: list[str] = []

    def compute_for(key: str) -> Any:
        def compute(nodes: list[NodeInfo]) -> list[int]:
            calls.append(key)
            return [0] * len(nodes)

        return compute

    window = NodeWindow(infos, columns, 0)
    window.values("x", compute_for("x"))
    window.values("y", compute_for("y"))
    window.values("x", compute_for("x"))  # x is now the most recently used
    window.values("z", compute_for("z"))  # so y goes
    assert len(columns) == 2
    window.values("x", compute_for("x"))
    window.values("y", compute_for("y"))
    assert calls == ["x", "y", "z", "y"]


def test_a_filled_column_keeps_no_oversized_missing_set() -> None:
    # Iterating a set walks its whole table, which never shrinks: the set that once named every
    # position is rebuilt once filled, or each later cycle would pay for thousands of slots.
    infos = [NodeInfo(node(f"n{i}")) for i in range(2000)]
    columns = NodeColumns(len(infos))
    for start in range(0, 2000, 500):
        NodeWindow(infos[start : start + 500], columns, start).values("k", lambda ns: [1] * len(ns))
    assert sys.getsizeof(columns.column("k").missing) == sys.getsizeof(set())
    columns.forget([7])
    assert NodeWindow(infos[:10], columns, 0).values("k", lambda ns: [2] * len(ns))[7] == 2


def test_a_snapshot_forgets_the_columns_of_the_nodes_it_replaces() -> None:
    cache = Cache()
    for name in ("n1", "n2", "n3"):
        cache.add_node(node(name))
    snap = Snapshot()
    cache.update_snapshot(snap)
    window = NodeWindow(snap.list(), snap.columns, 0)
    assert window.values("pods", lambda nodes: [len(n.pods) for n in nodes]) == [0, 0, 0]
    cache.assume_pod(PodInfo(pod("p", cpu="1", node_name="n2")))
    cache.update_snapshot(snap)
    window = NodeWindow(snap.list(), snap.columns, 0)
    assert window.values("pods", lambda nodes: [len(n.pods) for n in nodes]) == [0, 1, 0]
    cache.add_node(node("n0"))  # a new order: every column starts again
    cache.update_snapshot(snap)
    assert snap.columns.size == 4 and len(snap.columns) == 0


ZONE = "topology.kubernetes.io/zone"


def _node(rng: random.Random, name: str, **kw: Any) -> dict[str, Any]:
    zone = rng.choice(["a", "b", "c", None])  # some nodes have no zone
    return node(name, pods="4", zone=zone, **{"cpu": "1", **kw})


def _toggle(rng: random.Random, name: str) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.1:
        return _node(rng, name, taints=[{"key": "k", "effect": "NoSchedule"}])
    if kind < 0.4:
        return _node(rng, name, taints=[{"key": "soft", "effect": "PreferNoSchedule"}])
    if kind < 0.5:
        return _node(rng, name, unschedulable=True)
    return _node(rng, name, cpu=rng.choice(["1", "2"]))


def _incoming(name: str, cpu: str, spread: bool) -> PodInfo:
    if not spread:
        return PodInfo(pod(name, cpu=cpu, memory="100Mi"))
    constraint = {
        "maxSkew": 1,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    return PodInfo(pod(name, cpu=cpu, labels={"app": "web"}, topologySpreadConstraints=[constraint]))


def test_cycles_on_a_changing_cache_filter_and_score_as_node_by_node_does() -> None:
    """Each cycle's feasible nodes, rejections, per-plugin scores and chosen node equal what
    running every plugin on every node afresh gives, for plain and zone-spread pods, while pods
    land and leave, nodes are tainted, cordoned, resized, re-zoned, added and removed between
    cycles."""
    rng = random.Random(11)
    cache = Cache()
    nodes = {f"n{i:03}": _node(rng, f"n{i:03}") for i in range(150)}
    for n in nodes.values():
        cache.add_node(n)
    fw = framework()
    snap = Snapshot()
    fw.snapshot = snap
    placed: list[PodInfo] = []
    windows = scattered = 0
    serial = 0
    for step in range(80):
        for _ in range(rng.randrange(1, 6)):
            action = rng.random()
            if action < 0.55 or not placed:
                serial += 1
                labels = {"app": "web"} if rng.random() < 0.5 else {}
                target = rng.choice(list(nodes))
                info = PodInfo(pod(f"p{serial}", cpu="250m", labels=labels, node_name=target))
                cache.assume_pod(info)
                placed.append(info)
            elif action < 0.8:
                cache.forget_pod(placed.pop(rng.randrange(len(placed))))
            elif action < 0.93:
                name = rng.choice(list(nodes))
                new = _toggle(rng, name)
                cache.update_node(nodes[name], new)
                nodes[name] = new
            elif action < 0.97:
                name = f"x{step}"
                nodes[name] = _node(rng, name)
                cache.add_node(nodes[name])
            else:
                name = rng.choice(list(nodes))
                cache.remove_node(nodes.pop(name))
        cache.update_snapshot(snap)
        for cpu, spread in (("250m", False), ("500m", False), ("250m", True)):
            incoming = _incoming(f"in-{step}-{cpu}-{spread}", cpu, spread)
            start = fw.next_start_node_index
            state = CycleState()
            feasible, diagnosis = fw.find_nodes_that_fit_pod(state, incoming)
            assert isinstance(feasible, NodeWindow)
            windows += feasible.positions is None
            scattered += feasible.positions is not None

            want_feasible, want_failed = filter_node_by_node(fw, state, incoming, start)
            assert [n.name for n in feasible] == want_feasible
            got = {k: (s.code, s.reasons, s.plugin) for k, s in diagnosis.node_to_status.statuses.items()}
            assert got == want_failed
            if len(feasible) < 2:
                continue

            assert fw.run_pre_score(state, incoming, feasible) is None
            for plugin in fw.score:
                if plugin.name in state.skip_score_plugins:
                    continue
                assert plugin.score_nodes(state, incoming, feasible) == [
                    plugin.score(state, incoming, n) for n in list(feasible)
                ], plugin.name

            # The choice: a node with the best total, the same one random.choice over the tied
            # nodes would draw with the same seed.
            totals = {s.name: s.total for s in fw.prioritize_nodes(state, incoming, list(feasible))}
            best = max(totals.values())
            seed = rng.randrange(1 << 30)
            fw.rng = random.Random(seed)
            chosen = fw._select(state, incoming, feasible)
            assert chosen == random.Random(seed).choice([n for n, t in totals.items() if t == best])
    assert windows >= 20 and scattered >= 20  # both kinds of feasible windows were scored
