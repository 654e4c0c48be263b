"""The throughput shortcuts give exactly what the straightforward computation gives: batch
scorers against the per-node scorers, chunked filtering against node-by-node filtering, tallied
topology counts against full recounts, snapshots updated in place against rebuilt ones."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.scheduler.cache import Cache, Snapshot
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.nodeaffinity import required_node_affinity
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from controlplane.scheduler.plugins.pod_topology_spread import PodTopologySpread
from controlplane.scheduler.plugins.resource_allocation import (
    DEFAULT_RESOURCES,
    ResourceAllocationScorer,
    balanced_batch,
    balanced_resource_scorer,
    least_allocated_batch,
    least_resource_scorer,
    most_allocated_batch,
    most_resource_scorer,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Diagnosis, NodeToStatus
from tests.unit.scheduler.builders import filter_node_by_node, framework, node, pod

ZONE = "topology.kubernetes.io/zone"

_quantities = st.integers(0, 8000)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_quantities, _quantities, _quantities, _quantities), min_size=1, max_size=8),
    _quantities,
    _quantities,
)
def test_batch_scorers_match_per_node_scorers(
    nodes_raw: list[tuple[int, int, int, int]], cpu: int, memory: int
) -> None:
    infos = []
    for i, (alloc_cpu, alloc_mem, used_cpu, used_mem) in enumerate(nodes_raw):
        info = NodeInfo(node(f"n{i}", cpu=f"{alloc_cpu}m", memory=str(alloc_mem)))
        info.requested.milli_cpu = info.non_zero_requested.milli_cpu = used_cpu
        info.requested.memory = info.non_zero_requested.memory = used_mem
        infos.append(info)
    pairs = [
        (least_resource_scorer(DEFAULT_RESOURCES), least_allocated_batch(1, 1), False),
        (most_resource_scorer(DEFAULT_RESOURCES), most_allocated_batch(1, 1), False),
        (balanced_resource_scorer, balanced_batch, True),
    ]
    for scorer, batch, use_requested in pairs:
        plain = ResourceAllocationScorer(DEFAULT_RESOURCES, scorer, use_requested=use_requested)
        fast = ResourceAllocationScorer(DEFAULT_RESOURCES, scorer, use_requested=use_requested, batch=batch)
        want = plain.score_nodes(infos, [cpu, memory])
        assert fast.score_nodes(infos, [cpu, memory]) == want
        assert fast.score_nodes(infos, [cpu, memory]) == want  # remembered per node, still the same


def _mixed_nodes(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        kind = rng.random()
        zone = rng.choice(["a", "b", "c"]) if rng.random() > 0.05 else None
        if kind < 0.1:
            out.append(node(f"n{i:03}", zone=zone, taints=[{"key": "k", "effect": "NoSchedule"}]))
        elif kind < 0.15:
            out.append(node(f"n{i:03}", zone=zone, unschedulable=True))
        elif kind < 0.3:
            out.append(node(f"n{i:03}", zone=zone, cpu="100m"))
        else:
            out.append(node(f"n{i:03}", zone=zone))
    return out


def _spread_pod(name: str, skew: int) -> dict[str, Any]:
    constraint = {
        "maxSkew": skew,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    return pod(name, cpu="500m", labels={"app": "web"}, topologySpreadConstraints=[constraint])


def test_chunked_filtering_visits_and_rejects_what_node_by_node_filtering_does() -> None:
    rng = random.Random(7)
    for trial in range(20):
        nodes = _mixed_nodes(rng, 150)
        existing = [
            pod(f"e{i}", cpu="100m", labels={"app": "web"}, node_name=rng.choice(nodes)["metadata"]["name"])
            for i in range(rng.randrange(0, 60))
        ]
        fw = framework()
        fw.snapshot = Snapshot.build(nodes, [PodInfo(p) for p in existing])
        fw.next_start_node_index = rng.randrange(0, 150)
        start = fw.next_start_node_index
        info = PodInfo(_spread_pod(f"p{trial}", skew=rng.choice([1, 2, 5])))
        state = CycleState()
        feasible, diagnosis = fw.find_nodes_that_fit_pod(state, info)

        # Node by node, as upstream's loop does: stop once 100 (the minimum) are feasible.
        want_feasible, want_failed = filter_node_by_node(fw, state, info, start)
        assert [n.name for n in feasible] == want_feasible
        got = {k: (s.code, s.reasons, s.plugin) for k, s in diagnosis.node_to_status.statuses.items()}
        assert got == want_failed
        reference = Diagnosis(node_to_status=NodeToStatus())
        for status in diagnosis.node_to_status.statuses.values():
            reference.add_plugin_status(status)
        assert diagnosis.unschedulable_plugins >= reference.unschedulable_plugins


def _affine_pod(name: str, **kw: Any) -> dict[str, Any]:
    term = {"labelSelector": {"matchLabels": {"color": "blue"}}, "topologyKey": ZONE}
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return pod(name, cpu="100m", labels={"color": "blue"}, affinity=affinity, **kw)


def test_tallied_counts_equal_full_recounts_as_the_cache_changes() -> None:
    rng = random.Random(3)
    cache = Cache()
    nodes = {f"n{i}": node(f"n{i}", zone=rng.choice(["a", "b", "c"])) for i in range(30)}
    for n in nodes.values():
        cache.add_node(n)
    fw = framework()
    snap = Snapshot()
    fw.snapshot = snap
    spread = fw.plugin("PodTopologySpread")
    affinity = fw.plugin("InterPodAffinity")
    assert isinstance(spread, PodTopologySpread) and isinstance(affinity, InterPodAffinity)
    placed: list[PodInfo] = []
    for step in range(120):
        action = rng.random()
        if action < 0.6 or not placed:
            target = rng.choice(list(nodes))
            if rng.random() < 0.5:
                info = PodInfo(_affine_pod(f"p{step}", node_name=target))
            else:
                spreading = _spread_pod(f"p{step}", 1)
                spreading["spec"]["nodeName"] = target
                info = PodInfo(spreading)
            if rng.random() < 0.5:
                cache.assume_pod(info)
            else:
                cache.add_pod(info)
            placed.append(info)
        elif action < 0.8:
            gone = placed.pop(rng.randrange(len(placed)))
            if cache.is_assumed(gone.uid):
                cache.forget_pod(gone)
            else:
                cache.remove_pod(gone)
        elif action < 0.9:
            name = rng.choice(list(nodes))
            old = nodes[name]
            new = node(name, zone=rng.choice(["a", "b", "c", "d"]))
            cache.update_node(old, new)
            nodes[name] = new
        else:
            name = f"extra{step}"
            nodes[name] = node(name, zone="e")
            cache.add_node(nodes[name])
        cache.update_snapshot(snap)
        incoming = PodInfo(_spread_pod("incoming", 1))
        constraints = spread._constraints(incoming, "DoNotSchedule")
        tallied = spread._tallied_counts(incoming.namespace, constraints)
        direct = spread._counts(incoming, constraints, required_node_affinity(incoming.pod), snap.list())
        assert tallied == direct
        affine = PodInfo(_affine_pod("incoming-affine"))
        state = CycleState()
        affinity.pre_filter(state, affine, snap.list())
        tallied_state = state.read("PreFilterInterPodAffinity")
        state2 = CycleState()
        affinity.pre_filter(state2, affine, list(snap.list()))  # another list: counted in full
        full_state = state2.read("PreFilterInterPodAffinity")
        assert dict(tallied_state.affinity_counts) == dict(full_state.affinity_counts)
        assert affinity.pre_score(CycleState(), affine, snap.list()) == affinity.pre_score(
            CycleState(), affine, list(snap.list())
        )


def test_snapshot_replaces_only_changed_nodes_in_place() -> None:
    cache = Cache()
    for name, zone in (("n1", "a"), ("n2", "b"), ("n3", "a")):
        cache.add_node(node(name, zone=zone))
    snap = Snapshot()
    cache.update_snapshot(snap)
    before = list(snap.list())
    mark = snap.mark()
    assert snap.have_pods_with_affinity == []
    cache.assume_pod(PodInfo(_affine_pod("p", node_name="n2")))
    cache.update_snapshot(snap)
    after = snap.list()
    assert [n.name for n in after] == [n.name for n in before]
    assert after[0] is before[0] and after[2] is before[2]
    assert after[1] is not before[1] and len(after[1].pods) == 1
    assert snap.changed_since(mark) == ["n2"]
    assert [n.name for n in snap.have_pods_with_affinity] == ["n2"]
    # A node added changes the order (zones interleave), and is logged.
    cache.add_node(node("n4", zone="b"))
    cache.update_snapshot(snap)
    assert [n.name for n in snap.list()] == ["n1", "n2", "n3", "n4"]
    assert snap.changed_since(mark) == ["n2", "n4"]
    # Another snapshot's mark, or a fresh snapshot, means: recount everything.
    assert Snapshot().changed_since(mark) is None


def test_pod_info_is_reused_when_only_the_node_changes() -> None:
    pending = PodInfo(_affine_pod("p"))
    requests = pending.requests
    bound_obj = _affine_pod("p", node_name="n1")
    bound_obj["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    assert pending.same_inputs(bound_obj)
    bound = pending.with_pod(bound_obj)
    assert bound.node_name == "n1" and pending.node_name == ""
    assert bound.requests is requests
    assert bound.required_affinity_terms is pending.required_affinity_terms
    relabelled = _affine_pod("p", node_name="n1")
    relabelled["metadata"]["labels"] = {"color": "red"}
    assert not pending.same_inputs(relabelled)
    resized = _affine_pod("p", node_name="n1")
    resized["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2"
    assert not pending.same_inputs(resized)
