"""The exact wording of scheduling failures (FitError.Error() of v1.33)."""

from __future__ import annotations

import asyncio

from controlplane.scheduler.api import pod_status_patch, truncate_message
from controlplane.scheduler.cycle_state import CycleState
from controlplane.scheduler.framework import StaticListers
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.status import (
    Code,
    Diagnosis,
    FitError,
    NodeToStatus,
    NominatingInfo,
    NominatingMode,
    Status,
)
from tests.unit.scheduler.builders import framework, node, pod, snapshot, with_snapshot

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def _full_message(nodes: list[dict], p: dict, existing: list[dict] = ()) -> str:  # type: ignore[assignment]
    fw = with_snapshot(framework(listers=StaticListers(pod_objs=[p])), snapshot(nodes, existing))

    async def run() -> str:
        state = CycleState()
        info = PodInfo(p)
        try:
            fw.schedule_pod(state, info)
        except FitError as fit:
            _, status = await fw.run_post_filter(state, info, fit.diagnosis.node_to_status)
            fit.diagnosis.post_filter_msg = status.message
            return str(fit)
        raise AssertionError("the pod was scheduled")

    return asyncio.run(run())


def test_the_issue_example() -> None:
    nodes = [node("cp", taints=[CP_TAINT]), node("w1", cpu="1"), node("w2", cpu="1")]
    assert _full_message(nodes, pod("p", cpu="2")) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_each_reason_of_a_node_counts_and_reasons_sort_as_strings() -> None:
    nodes = [node(f"n{i}", cpu="1", memory="1Gi") for i in range(12)]
    message = _full_message(nodes, pod("p", cpu="2", memory="2Gi"))
    # "12 ..." sorts before "2 ..." would; both reasons are counted on every node.
    assert message.startswith("0/12 nodes are available: 12 Insufficient cpu, 12 Insufficient memory.")


def test_histogram_sorting_is_lexicographic() -> None:
    statuses = NodeToStatus(
        {
            **{f"a{i}": Status.of(Code.UNSCHEDULABLE, "Insufficient cpu") for i in range(10)},
            "b": Status.of(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) didn't match Pod's node affinity/selector"
            ),
            "c": Status.of(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) didn't match Pod's node affinity/selector"
            ),
        }
    )
    fit = FitError("ns/p", 12, Diagnosis(node_to_status=statuses))
    assert str(fit) == (
        "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    )


def test_absent_nodes_share_the_absent_status() -> None:
    statuses = NodeToStatus(
        {"a": Status.of(Code.UNSCHEDULABLE, "Insufficient cpu")},
        Status.of(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, "Preemption is not helpful for scheduling"),
    )
    fit = FitError("ns/p", 3, Diagnosis(node_to_status=statuses))
    assert (
        str(fit) == "0/3 nodes are available: 1 Insufficient cpu, 2 Preemption is not helpful for scheduling."
    )


def test_prefilter_rejection_uses_its_own_message() -> None:
    p = pod(
        "p",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["a"]},
                                {"key": "metadata.name", "operator": "In", "values": ["b"]},
                            ]
                        }
                    ]
                }
            }
        },
    )
    assert _full_message([node("a"), node("b")], p) == (
        "0/2 nodes are available: pod affinity terms conflict. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )


def test_nodes_excluded_by_a_prefilter_result() -> None:
    p = pod(
        "p",
        cpu="8",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
    )
    assert _full_message([node("a"), node("b"), node("c")], p) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_no_nodes_at_all() -> None:
    fw = with_snapshot(framework(), snapshot([]))
    from controlplane.scheduler.framework import NoNodesAvailable

    try:
        fw.schedule_pod(CycleState(), PodInfo(pod("p")))
    except NoNodesAvailable as exc:
        assert str(exc) == "no nodes available to schedule pods"
    else:
        raise AssertionError("expected NoNodesAvailable")


def test_unschedulable_and_spread_reasons() -> None:
    nodes = [node("cordoned", unschedulable=True), node("plain")]
    p = pod(
        "p",
        labels={"app": "x"},
        topologySpreadConstraints=[
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "x"}},
            }
        ],
    )
    assert _full_message(nodes, p) == (
        "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), "
        "1 node(s) were unschedulable. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )


def test_pod_scheduled_condition_patch() -> None:
    p = pod("p")
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
    patch = pod_status_patch(p, condition, None, "2026-01-01T00:00:00Z")
    assert patch == {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    # Written once: the same verdict again changes nothing (the transition time stays).
    p["status"]["conditions"] = patch["status"]["conditions"]
    assert pod_status_patch(p, condition, None, "2026-01-01T00:05:00Z") is None
    # A new message keeps the original transition time.
    changed = pod_status_patch(p, {**condition, "message": "0/2 nodes"}, None, "2026-01-01T00:05:00Z")
    assert changed is not None
    assert changed["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_nominated_node_name_patch() -> None:
    p = pod("p")
    assert pod_status_patch(p, None, NominatingInfo("n1", NominatingMode.OVERRIDE), "t") == {
        "status": {"nominatedNodeName": "n1"}
    }
    p["status"]["nominatedNodeName"] = "n1"
    assert pod_status_patch(p, None, NominatingInfo("", NominatingMode.OVERRIDE), "t") == {
        "status": {"nominatedNodeName": None}
    }
    assert pod_status_patch(p, None, NominatingInfo("", NominatingMode.NOOP), "t") is None


def test_long_messages_are_truncated_for_events() -> None:
    assert truncate_message("x" * 1024) == "x" * 1024
    cut = truncate_message("x" * 2000)
    assert len(cut) == 1024
    assert cut.endswith(" ...")
