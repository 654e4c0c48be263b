"""The framework's arithmetic: how many nodes to look at, where to start, resource requests and
the scoring strategies (values from upstream's unit tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import PluginSpec, num_feasible_nodes_to_find
from controlplane.scheduler.gomath import go_div, go_round
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins import DEFAULT_PLUGINS
from controlplane.scheduler.plugins.resource_allocation import (
    DEFAULT_RESOURCES,
    ResourceAllocationScorer,
    balanced_resource_scorer,
    least_resource_scorer,
    most_resource_scorer,
    requested_to_capacity_ratio_scorer,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.resources import pod_requests
from tests.unit.scheduler.builders import framework, node, pod, snapshot, with_snapshot


@pytest.mark.parametrize(
    ("percentage", "nodes", "want"),
    [
        (0, 10, 10),  # small clusters: every node
        (0, 99, 99),
        (0, 100, 100),  # 50 - 0 = 50% of 100 = 50, raised to the minimum of 100
        (0, 1000, 420),  # 50 - 8 = 42%
        (0, 5000, 500),  # 50 - 40 = 10%
        (0, 6000, 300),  # 50 - 48 = 2%, raised to 5%
        (0, 1_000_000, 50_000),
        (30, 1000, 300),
        (5, 1000, 100),  # the absolute minimum
        (100, 1000, 1000),
    ],
)
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, want: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == want


def test_filtering_resumes_where_the_last_cycle_stopped() -> None:
    # 200 identical nodes at 10%: each cycle finds 100 feasible nodes and the next starts after them.
    nodes = [node(f"n{i:03}") for i in range(200)]
    fw = with_snapshot(framework(percentage=10), snapshot(nodes))
    first = fw.find_nodes_that_fit_pod(CycleState(), PodInfo(pod("a")))[0]
    second = fw.find_nodes_that_fit_pod(CycleState(), PodInfo(pod("b")))[0]
    assert len(first) == len(second) == 100
    assert {n.name for n in first}.isdisjoint({n.name for n in second})
    assert fw.next_start_node_index == 0


def test_failed_nodes_count_towards_the_start_index() -> None:
    nodes = [node(f"n{i:03}", cpu="100m" if i < 50 else "4") for i in range(200)]
    fw = with_snapshot(framework(percentage=10), snapshot(nodes))
    feasible, diagnosis = fw.find_nodes_that_fit_pod(CycleState(), PodInfo(pod("a", cpu="1")))
    assert len(feasible) == 100
    assert len(diagnosis.node_to_status) == 50
    assert fw.next_start_node_index == 150


def test_score_plugins_are_weighted() -> None:
    nodes = [node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), node("b")]
    fw = with_snapshot(framework(), snapshot(nodes))
    info = PodInfo(pod("p", cpu="1", memory="1Gi"))
    state = CycleState()
    feasible, _ = fw.find_nodes_that_fit_pod(state, info)
    scores = {s.name: dict(s.scores) for s in fw.prioritize_nodes(state, info, feasible)}
    assert scores["a"]["TaintToleration"] == 0
    assert scores["b"]["TaintToleration"] == 300  # 100, weight 3


def test_framework_needs_exactly_one_queue_sort() -> None:
    with pytest.raises(ValueError, match="QueueSort"):
        framework(plugins=tuple(s for s in DEFAULT_PLUGINS if s.name != "PrioritySort"))
    with pytest.raises(ValueError, match="QueueSort"):
        framework(plugins=(*DEFAULT_PLUGINS, PluginSpec("PrioritySort")))


# -- requests ---------------------------------------------------------------------------------


def _containers(*reqs: dict[str, str], restart: str | None = None) -> list[dict]:
    out = []
    for i, r in enumerate(reqs):
        c: dict = {"name": f"c{i}", "resources": {"requests": r}}
        if restart:
            c["restartPolicy"] = restart
        out.append(c)
    return out


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        (
            {"containers": _containers({"cpu": "1"}, {"cpu": "500m", "memory": "1Gi"})},
            {"cpu": 1500, "memory": 2**30},
        ),
        (
            # The upstream doc example: max(sum of app containers, each init container).
            {
                "containers": _containers({"cpu": "2", "memory": "1G"}, {"cpu": "1", "memory": "1G"}),
                "initContainers": _containers({"cpu": "2", "memory": "1G"}, {"cpu": "2", "memory": "3G"}),
            },
            {"cpu": 3000, "memory": 3 * 10**9},
        ),
        (
            # A sidecar runs beside the app containers and beside later init containers.
            {
                "containers": _containers({"cpu": "1"}),
                "initContainers": [
                    *_containers({"cpu": "500m"}, restart="Always"),
                    {"name": "later", "resources": {"requests": {"cpu": "2"}}},
                ],
            },
            {"cpu": 2500},
        ),
        ({"containers": _containers({"cpu": "1"}), "overhead": {"cpu": "250m"}}, {"cpu": 1250}),
        ({"containers": [{"name": "c"}]}, {}),
    ],
)
def test_pod_requests(spec: dict, want: dict[str, int]) -> None:
    assert pod_requests({"spec": spec}) == want


def test_non_zero_defaults_for_scoring() -> None:
    p = {"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "0"}}}]}}
    assert pod_requests(p, non_missing={"cpu": 100, "memory": 200 * 2**20}) == {
        "cpu": 100,
        "memory": 400 * 2**20,
    }


# -- scoring strategies (pkg/scheduler/framework/plugins/noderesources/*_test.go) ----------------


def _scores(scorer: object, use_requested: bool, pod_requests_: dict[str, str]) -> list[int]:
    nodes = [
        NodeInfo(node("n1", cpu="4000m", memory="10000")),
        NodeInfo(node("n2", cpu="6000m", memory="10000")),
    ]
    allocation = ResourceAllocationScorer(DEFAULT_RESOURCES, scorer, use_requested=use_requested)  # type: ignore[arg-type]
    info = PodInfo(pod("p", cpu=pod_requests_["cpu"], memory=pod_requests_["memory"]))
    return [allocation.score(n, allocation.pod_request_list(info)) for n in nodes]


def test_least_allocated() -> None:
    assert _scores(least_resource_scorer(DEFAULT_RESOURCES), False, {"cpu": "3000m", "memory": "5000"}) == [
        37,
        50,
    ]


def test_most_allocated() -> None:
    assert _scores(most_resource_scorer(DEFAULT_RESOURCES), False, {"cpu": "3000m", "memory": "5000"}) == [
        62,
        50,
    ]


def test_balanced_allocation() -> None:
    assert _scores(balanced_resource_scorer, True, {"cpu": "3000m", "memory": "5000"}) == [87, 100]


def test_requested_to_capacity_ratio() -> None:
    shape = [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]
    # Packs like MostAllocated with this shape: 75% and 50% CPU, 50% memory.
    assert _scores(
        requested_to_capacity_ratio_scorer(DEFAULT_RESOURCES, shape),
        False,
        {"cpu": "3000m", "memory": "5000"},
    ) == [
        63,
        50,
    ]


def test_best_effort_pods_skip_balanced_allocation() -> None:
    fw = with_snapshot(framework(), snapshot([node("a"), node("b")]))
    state = CycleState()
    info = PodInfo(pod("p"))
    feasible, _ = fw.find_nodes_that_fit_pod(state, info)
    fw.prioritize_nodes(state, info, feasible)
    assert "NodeResourcesBalancedAllocation" in state.skip_score_plugins


@given(st.integers(-(10**9), 10**9), st.integers(-(10**6), 10**6).filter(bool))
def test_go_div_truncates_toward_zero(a: int, b: int) -> None:
    assert go_div(a, b) == int(a / b) or abs(a) > 2**52  # float division is exact in this range


@given(st.integers(-(10**6), 10**6))
def test_go_round_halves_away_from_zero(n: int) -> None:
    assert go_round(n + 0.5) == (n + 1 if n >= 0 else n)
    assert go_round(n + 0.25) == n
