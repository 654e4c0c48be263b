"""PodTopologySpread's PreScore/Score with tallied counts (kept across cycles) give exactly the
scores of the full recount, for the system default constraints (a ReplicaSet's pods, hostname
and zone, nodes without a zone label included) and for a pod's own ScheduleAnyway constraints."""

from __future__ import annotations

import random
from typing import Any

import pytest

from controlplane.scheduler.cache import Cache, Snapshot
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import Framework, StaticListers
from controlplane.scheduler.plugins.pod_topology_spread import PodTopologySpread
from controlplane.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import framework, node, pod

RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}},
}


def _owned(name: str, node_name: str = "") -> dict[str, Any]:
    p = pod(name, cpu="10m", labels={"app": "web"}, node_name=node_name)
    p["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    ]
    return p


def _own_constraints(name: str, node_name: str = "") -> dict[str, Any]:
    constraints = [
        {
            "maxSkew": 2,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "web"}},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    return pod(
        name, cpu="10m", labels={"app": "web"}, node_name=node_name, topologySpreadConstraints=constraints
    )


def _scores(fw: Framework, incoming: PodInfo, *, tallied: bool) -> tuple[Any, list[int]]:
    spread = fw.plugin("PodTopologySpread")
    assert isinstance(spread, PodTopologySpread)
    nodes = fw.snapshot.list()
    state = CycleState()
    assert spread.pre_score(state, incoming, nodes) is None
    scores = [spread.score(state, incoming, n) for n in nodes]
    assert spread.normalize_score(state, incoming, nodes, scores) is None
    s = state.read("PreScorePodTopologySpread")
    assert (s.tally is not None) == tallied
    return (s.counts, s.weights, sorted(s.ignored_nodes)), scores


@pytest.mark.parametrize("make", [_owned, _own_constraints])
def test_tallied_pre_score_equals_full_recount(make: Any) -> None:
    rng = random.Random(11)
    cache = Cache()
    zones = ["a", "b", "c", None]
    nodes = {f"n{i}": node(f"n{i}", zone=rng.choice(zones)) for i in range(25)}
    for n in nodes.values():
        cache.add_node(n)
    snap = Snapshot()
    tallied = framework(listers=StaticListers(owner_objs=[RS]))
    direct = framework(listers=StaticListers(owner_objs=[RS]))
    tallied.snapshot = direct.snapshot = snap
    plain = direct.plugin("PodTopologySpread")
    assert isinstance(plain, PodTopologySpread)
    plain._pod_independent = lambda *_: False  # type: ignore[method-assign]
    placed: list[PodInfo] = []
    for step in range(150):
        action = rng.random()
        if action < 0.6 or not placed:
            target = rng.choice(list(nodes))
            body = make(f"p{step}", target) if rng.random() < 0.7 else pod(f"o{step}", node_name=target)
            info = PodInfo(body)
            if rng.random() < 0.5:
                cache.assume_pod(info)
            else:
                cache.add_pod(info)
            placed.append(info)
        elif action < 0.85:
            gone = placed.pop(rng.randrange(len(placed)))
            if cache.is_assumed(gone.uid):
                cache.forget_pod(gone)
            else:
                cache.remove_pod(gone)
        else:
            name = rng.choice(list(nodes))
            new = node(name, zone=rng.choice(zones))
            cache.update_node(nodes[name], new)
            nodes[name] = new
        cache.update_snapshot(snap)
        incoming = PodInfo(make("incoming"))
        assert _scores(tallied, incoming, tallied=True) == _scores(direct, incoming, tallied=False)
