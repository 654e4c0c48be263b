"""DefaultPreemption: which node and which victims, PodDisruptionBudgets respected."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import StaticListers
from controlplane.scheduler.plugins.default_preemption import (
    Candidate,
    DefaultPreemption,
    filter_pods_with_pdb_violation,
    pick_one_node_for_preemption,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import Code, FitError, NominatingMode
from tests.unit.scheduler.builders import FakeAPI, FakeRecorder, framework, node, pod, snapshot, with_snapshot

NOW = 1_800_000_000.0


def _victim(name: str, priority: int, start: str = "", labels: dict[str, str] | None = None) -> PodInfo:
    p = pod(name, priority=priority, node_name="n", labels=labels)
    if start:
        p["status"]["startTime"] = start
    return PodInfo(p)


def _pdb(
    name: str, labels: dict[str, str], allowed: int, disrupted: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": labels}},
        "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted or {}},
    }


PICK_CASES = [
    (
        "fewest PDB violations first",
        [Candidate("a", [_victim("a1", 1)], 1), Candidate("b", [_victim("b1", 100), _victim("b2", 100)], 0)],
        "b",
    ),
    (
        "then the lowest highest-priority victim",
        [Candidate("a", [_victim("a1", 50)], 0), Candidate("b", [_victim("b1", 10), _victim("b2", 10)], 0)],
        "b",
    ),
    (
        "then the smallest sum of priorities",
        [
            Candidate("a", [_victim("a1", 10), _victim("a2", 10)], 0),
            Candidate("b", [_victim("b1", 10), _victim("b2", 5)], 0),
        ],
        "b",
    ),
    (
        "negative priorities still favour fewer victims in the sum",
        [
            Candidate("a", [_victim("a1", -5), _victim("a2", -5), _victim("a3", -5)], 0),
            Candidate("b", [_victim("b1", -5), _victim("b2", -5)], 0),
        ],
        "b",
    ),
    (
        "then the fewest victims",
        [Candidate("a", [_victim("a1", 10), _victim("a2", 0)], 0), Candidate("b", [_victim("b1", 10)], 0)],
        "b",
    ),
    (
        "then the latest start of the highest-priority victims",
        [
            Candidate("a", [_victim("a1", 10, "2026-01-01T00:00:00Z")], 0),
            Candidate("b", [_victim("b1", 10, "2026-01-02T00:00:00Z")], 0),
        ],
        "b",
    ),
    (
        "a full tie picks the first",
        [
            Candidate("a", [_victim("a1", 10, "2026-01-01T00:00:00Z")], 0),
            Candidate("b", [_victim("b1", 10, "2026-01-01T00:00:00Z")], 0),
        ],
        "a",
    ),
]


@pytest.mark.parametrize(
    ("candidates", "want"), [(c, w) for _, c, w in PICK_CASES], ids=[n for n, _, _ in PICK_CASES]
)
def test_pick_one_node_for_preemption(candidates: list[Candidate], want: str) -> None:
    assert pick_one_node_for_preemption(candidates, NOW) == want


def test_pdb_budgets_are_consumed_in_order() -> None:
    pods = [_victim(f"p{i}", 0, labels={"app": "db"}) for i in range(3)] + [
        _victim("other", 0, labels={"app": "x"})
    ]
    violating, ok = filter_pods_with_pdb_violation(pods, [_pdb("db", {"app": "db"}, 1)])
    assert [p.name for p in ok] == ["p0", "other"]
    assert [p.name for p in violating] == ["p1", "p2"]


def test_pods_already_disrupted_do_not_consume_budget() -> None:
    pods = [_victim("p0", 0, labels={"app": "db"}), _victim("p1", 0, labels={"app": "db"})]
    violating, ok = filter_pods_with_pdb_violation(
        pods, [_pdb("db", {"app": "db"}, 0, {"p0": "2026-01-01T00:00:00Z"})]
    )
    assert [p.name for p in ok] == ["p0"]
    assert [p.name for p in violating] == ["p1"]


def test_empty_pdb_selector_matches_nothing() -> None:
    pods = [_victim("p0", 0, labels={"app": "db"})]
    pdb = {
        "metadata": {"namespace": "default"},
        "spec": {"selector": {}},
        "status": {"disruptionsAllowed": 0},
    }
    assert filter_pods_with_pdb_violation(pods, [pdb]) == ([], pods)


def _preemption_fw(
    nodes: list[dict[str, Any]],
    existing: list[dict[str, Any]],
    preemptor: dict[str, Any],
    pdbs: list[dict[str, Any]] = (),
) -> Any:  # type: ignore[assignment]
    api, recorder = FakeAPI(), FakeRecorder()
    listers = StaticListers(pod_objs=[preemptor, *existing], pdb_objs=list(pdbs))
    fw = with_snapshot(
        framework(listers=listers, api=api, recorder=recorder, now=NOW), snapshot(nodes, existing)
    )
    return fw, api, recorder


async def _preempt(fw: Any, preemptor: dict[str, Any]) -> tuple[Any, Any, str]:
    state = CycleState()
    info = PodInfo(preemptor)
    with pytest.raises(FitError) as exc:
        fw.schedule_pod(state, info)
    result, status = await fw.run_post_filter(state, info, exc.value.diagnosis.node_to_status)
    exc.value.diagnosis.post_filter_msg = status.message
    return result, status, str(exc.value)


async def test_preempts_the_fewest_lowest_priority_pods() -> None:
    nodes = [node("n1", cpu="2"), node("n2", cpu="2")]
    existing = [
        pod("low-a", cpu="1", priority=1, node_name="n1"),
        pod("mid-a", cpu="1", priority=5, node_name="n1"),
        pod("low-b", cpu="1", priority=2, node_name="n2"),
        pod("low-c", cpu="1", priority=3, node_name="n2"),
    ]
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, recorder = _preemption_fw(nodes, existing, preemptor)
    result, status, message = await _preempt(fw, preemptor)
    assert status.is_success()
    # Each node needs one eviction; mid-a (5) and low-c (3) are reprieved. n1's victim has the
    # lower priority (1 against 2), so n1 is chosen.
    assert api.preempted == ["low-a"]
    assert result.nominating_info.mode == NominatingMode.OVERRIDE
    assert result.nominating_info.nominated_node_name == "n1"
    assert recorder.events[0][2] == "Preempted"
    assert recorder.events[0][3].startswith("Preempted by pod uid-default-vip on node ")
    # A successful preemption adds nothing after the filter verdict.
    assert message == "0/2 nodes are available: 2 Insufficient cpu."


async def test_respects_pdbs_when_choosing_the_node() -> None:
    nodes = [node("n1", cpu="1"), node("n2", cpu="1")]
    existing = [
        pod("guarded", cpu="1", priority=0, node_name="n1", labels={"app": "db"}),
        pod("free", cpu="1", priority=0, node_name="n2", labels={"app": "web"}),
    ]
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, _ = _preemption_fw(nodes, existing, preemptor, [_pdb("db", {"app": "db"}, 0)])
    result, status, _ = await _preempt(fw, preemptor)
    assert status.is_success()
    assert api.preempted == ["free"]
    assert result.nominating_info.nominated_node_name == "n2"


async def test_violates_a_pdb_when_nothing_else_helps() -> None:
    nodes = [node("n1", cpu="1")]
    existing = [pod("guarded", cpu="1", priority=0, node_name="n1", labels={"app": "db"})]
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, _ = _preemption_fw(nodes, existing, preemptor, [_pdb("db", {"app": "db"}, 0)])
    _, status, _ = await _preempt(fw, preemptor)
    assert status.is_success()
    assert api.preempted == ["guarded"]


async def test_reprieves_pdb_protected_pods_before_others() -> None:
    nodes = [node("n1", cpu="2")]
    existing = [
        pod("guarded", cpu="1", priority=0, node_name="n1", labels={"app": "db"}),
        pod("plain", cpu="1", priority=0, node_name="n1", labels={"app": "web"}),
    ]
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, _ = _preemption_fw(nodes, existing, preemptor, [_pdb("db", {"app": "db"}, 0)])
    _, status, _ = await _preempt(fw, preemptor)
    assert status.is_success()
    assert api.preempted == ["plain"]


async def test_higher_priority_pods_are_never_victims() -> None:
    nodes = [node("n1", cpu="1")]
    existing = [pod("boss", cpu="1", priority=100, node_name="n1")]
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, _ = _preemption_fw(nodes, existing, preemptor)
    result, status, message = await _preempt(fw, preemptor)
    assert status.code == Code.UNSCHEDULABLE
    assert api.preempted == []
    assert result.nominating_info.nominated_node_name == ""
    assert message == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


async def test_preemption_policy_never() -> None:
    nodes = [node("n1", cpu="1")]
    existing = [pod("low", cpu="1", priority=0, node_name="n1")]
    preemptor = pod("polite", cpu="1", priority=10, preemptionPolicy="Never")
    fw, api, _ = _preemption_fw(nodes, existing, preemptor)
    result, _, message = await _preempt(fw, preemptor)
    assert api.preempted == []
    assert result is None
    assert message == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    )


async def test_victims_that_are_already_terminating_are_not_deleted_twice() -> None:
    nodes = [node("n1", cpu="1")]
    low = pod("low", cpu="1", priority=0, node_name="n1")
    low["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    preemptor = pod("vip", cpu="1", priority=10)
    fw, api, _ = _preemption_fw(nodes, [low], preemptor)
    result, status, _ = await _preempt(fw, preemptor)
    assert status.is_success()
    assert api.preempted == []
    assert result.nominating_info.nominated_node_name == "n1"


def test_num_candidates() -> None:
    plugin = DefaultPreemption({}, framework())
    assert [plugin.num_candidates(n) for n in (1, 50, 100, 1000, 5000)] == [1, 50, 100, 100, 500]
