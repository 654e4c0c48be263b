"""The autoscaler's pure planner: scale-up by simulation, scale-down of empty nodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ccm.provisioning.autoscaler.planner import Plan, PoolPlan, autoscaling_of, is_unschedulable, plan
from tests.unit.ccm.provisioning_autoscaler.builders import machine, node, pod, pool

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
Obj = dict[str, Any]


def run(
    pools: list[Obj],
    machines: list[Obj] = (),  # type: ignore[assignment]
    nodes: list[Obj] = (),  # type: ignore[assignment]
    pods: list[Obj] = (),  # type: ignore[assignment]
    *,
    now: datetime = NOW,
    empty_since: dict[str, datetime] | None = None,
) -> Plan:
    return plan(pools, list(machines), list(nodes), list(pods), now=now, empty_since=empty_since or {})


def only(result: Plan, name: str = "workers") -> PoolPlan:
    found = [p for p in result.pools if p.pool == name]
    assert len(found) == 1, result
    return found[0]


def full_pool(
    n: int = 1, name: str = "workers", **kw: Any
) -> tuple[list[Obj], list[Obj], list[Obj], list[Obj]]:
    """`n` Running machines whose Ready 2-CPU nodes are each filled by a 1900m pod."""
    nodes = [node(f"{name}-{i}", name) for i in range(n)]
    machines = [machine(f"m-{name}-{i}", name, node=f"{name}-{i}") for i in range(n)]
    fillers = [pod(f"filler-{name}-{i}", cpu="1900m", node_name=f"{name}-{i}") for i in range(n)]
    return [pool(name, replicas=n, **kw)], machines, nodes, fillers


# -- scale-up -------------------------------------------------------------------------------------


def test_pending_pods_are_bin_packed_onto_new_nodes_of_the_pools_shape() -> None:
    pools, machines, nodes, pods = full_pool()
    # 1500m + 500m fill one 2-CPU node exactly; 1200m + 700m the next: FFD needs two nodes.
    pending = [pod("a", cpu="700m"), pod("b", cpu="1500m"), pod("c", cpu="500m"), pod("d", cpu="1200m")]
    result = run(pools, machines, nodes, pods + pending)
    decision = only(result)
    assert (decision.current, decision.replicas, decision.reason) == (1, 3, "TriggeredScaleUp")
    assert sorted(decision.pods) == ["default/a", "default/b", "default/c", "default/d"]
    assert result.unhelped == ()


def test_scale_up_stops_at_max_replicas() -> None:
    pools, machines, nodes, pods = full_pool(max_replicas=2)
    pending = [pod(f"p{i}", cpu="1500m") for i in range(4)]
    result = run(pools, machines, nodes, pods + pending)
    assert only(result).replicas == 2
    assert len(result.unhelped) == 3


def test_no_scale_up_at_max_or_for_pods_that_fit_no_new_node() -> None:
    pools, machines, nodes, pods = full_pool(max_replicas=1)
    assert run(pools, machines, nodes, [*pods, pod("p", cpu="1")]).pools == ()
    pools, machines, nodes, pods = full_pool()
    result = run(pools, machines, nodes, [*pods, pod("huge", cpu="3")])
    assert result.pools == ()
    assert result.unhelped == ("default/huge",)


def test_pods_that_fit_an_existing_node_do_not_scale_up() -> None:
    pools, machines, nodes, pods = full_pool()
    spare = node("spare", None, cpu="4")
    result = run(pools, machines, [*nodes, spare], [*pods, pod("a", cpu="2"), pod("b", cpu="1500m")])
    assert result.pools == ()
    # Two pods that each fit the spare node but not together: one grows the pool.
    result = run(pools, machines, [*nodes, spare], [*pods, pod("a", cpu="3"), pod("b", cpu="1500m")])
    assert only(result).replicas == 2
    assert only(result).pods == ("default/b",)


def test_pods_waiting_for_in_flight_machines_do_not_scale_up_again() -> None:
    pools, machines, nodes, pods = full_pool()
    pools[0]["spec"]["replicas"] = 2
    booting = machine("m-new", phase="Bootstrapping")
    assert run(pools, [*machines, booting], nodes, [*pods, pod("a", cpu="1")]).pools == ()
    # Replicas the operator has not created a Machine for yet count as well.
    assert run(pools, machines, nodes, [*pods, pod("a", cpu="1")]).pools == ()
    # A Running machine whose node is not Ready yet is still on its way.
    joined = machine("m-new", node="fresh")
    assert (
        run(
            pools, [*machines, joined], [*nodes, node("fresh", ready=False)], [*pods, pod("a", cpu="1")]
        ).pools
        == ()
    )
    # More than the in-flight node can hold: one more.
    result = run(pools, [*machines, booting], nodes, [*pods, pod("a", cpu="1500m"), pod("b", cpu="1500m")])
    assert only(result).replicas == 3


def test_a_ready_node_the_ccm_has_not_initialized_is_still_on_its_way() -> None:
    """Ready but still tainted uninitialized: not usable capacity yet, but not missing either, so
    a pass in that window must not ask for another node (it used to grow the pool twice)."""
    pools, machines, nodes, pods = full_pool()
    pools[0]["spec"]["replicas"] = 2
    uninitialized = [
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
    ]
    joined = machine("m-new", node="fresh")
    fresh = node("fresh", taints=uninitialized)
    assert run(pools, [*machines, joined], [*nodes, fresh], [*pods, pod("a", cpu="1")]).pools == ()


def test_node_selector_and_taints_decide_which_pool_grows() -> None:
    gpu_taint = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
    pools = [
        pool("plain", replicas=0, instance_type="m5.large"),
        pool("gpu", replicas=0, instance_type="m5.large", labels={"accel": "gpu"}, taints=[gpu_taint]),
    ]
    tolerating = [{"key": "gpu", "operator": "Exists"}]
    pending = [
        pod("anywhere", cpu="1"),
        pod("wants-gpu", cpu="1", node_selector={"accel": "gpu"}, tolerations=tolerating),
        pod("selects-gpu-no-toleration", cpu="1", node_selector={"accel": "gpu"}),
        pod("no-such-label", cpu="1", node_selector={"zone": "mars"}),
    ]
    result = run(pools, pods=pending)
    assert only(result, "plain").pods == ("default/anywhere",)
    assert only(result, "gpu").pods == ("default/wants-gpu",)
    assert sorted(result.unhelped) == ["default/no-such-label", "default/selects-gpu-no-toleration"]


def test_template_from_instance_type_ignores_the_uninitialized_taint() -> None:
    uninitialized = {
        "key": "node.cloudprovider.kubernetes.io/uninitialized",
        "value": "true",
        "effect": "NoSchedule",
    }
    pools = [pool(replicas=0, instance_type="t3.large", taints=[uninitialized], zones=["eu-1a"])]
    pending = [
        pod("a", cpu="1", memory="3Gi", node_selector={"topology.kubernetes.io/zone": "eu-1a"}),
        pod("b", cpu="1", memory="3Gi", node_selector={"kubernetes.io/os": "linux"}),
        pod("c", cpu="1", memory="3Gi"),
    ]
    # t3.large: 2 CPUs and 8Gi: two of these pods per node.
    assert only(run(pools, pods=pending)).replicas == 2
    # An unknown instance type and no node to copy: nothing to simulate with.
    pools = [pool(replicas=0, instance_type="x9.mystery")]
    assert run(pools, pods=pending).pools == ()


def test_template_from_a_node_keeps_its_daemonset_pods_and_drops_state_taints() -> None:
    not_ready = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    pools = [pool(replicas=1)]
    nodes = [node("n0", cpu="2", taints=[not_ready], unschedulable=True)]
    machines = [machine("m0", node="n0")]
    pods = [pod("ds", cpu="500m", node_name="n0", daemonset=True)]
    # Per new node: 2 CPUs minus the 500m DaemonSet pod leaves room for one 1-CPU pod.
    result = run(pools, machines, nodes, [*pods, pod("a", cpu="1"), pod("b", cpu="1")])
    assert only(result).replicas == 3


def test_least_waste_picks_the_pool_that_leaves_least_idle() -> None:
    pools = [
        pool("big", replicas=0, instance_type="m5.4xlarge"),
        pool("small", replicas=0, instance_type="t3.medium"),
    ]
    result = run(pools, pods=[pod("a", cpu="1500m", memory="3Gi")])
    assert [p.pool for p in result.pools] == ["small"]


def test_replicas_below_min_are_raised_to_min() -> None:
    result = run([pool(replicas=0, min_replicas=2)])
    assert (only(result).replicas, only(result).reason) == (2, "MinReplicas")
    # ...and the pods that those new machines will hold do not add more.
    result = run([pool(replicas=0, min_replicas=2)], pods=[pod("a", cpu="1"), pod("b", cpu="1")])
    assert (only(result).replicas, only(result).reason) == (2, "MinReplicas")


def test_disabled_and_misconfigured_pools_are_left_alone() -> None:
    pending = [pod("a", cpu="1")]
    assert run([pool(replicas=0, enabled=False)], pods=pending).pools == ()
    result = run([pool(replicas=0, max_replicas=None)], pods=pending)
    assert result.pools == ()
    assert result.problems == ("NodePool workers: autoscaling.maxReplicas is required",)
    result = run([pool(replicas=0, min_replicas=3, max_replicas=2)], pods=pending)
    assert result.pools == () and "invalid" in result.problems[0]
    assert isinstance(autoscaling_of(pool(delay="soon")), str)


def test_only_pods_the_scheduler_rejected_count() -> None:
    assert is_unschedulable(pod("a"))
    assert not is_unschedulable(pod("a", pending=False))  # not tried yet
    gated = pod("g")
    gated["status"]["conditions"][0]["reason"] = "SchedulingGated"
    assert not is_unschedulable(gated)
    nominated = pod("n")
    nominated["status"]["nominatedNodeName"] = "x"
    assert not is_unschedulable(nominated)
    deleting = pod("d")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not is_unschedulable(deleting)


# -- scale-down -----------------------------------------------------------------------------------


def two_nodes(**kw: Any) -> tuple[list[Obj], list[Obj], list[Obj]]:
    pools = [pool(replicas=2, min_replicas=1, delay="5m", **kw)]
    nodes = [node("n0"), node("n1")]
    machines = [machine("m0", node="n0"), machine("m1", node="n1")]
    return pools, machines, nodes


def test_an_empty_node_is_removed_after_the_delay() -> None:
    pools, machines, nodes = two_nodes()
    pods = [
        pod("busy", node_name="n0"),
        pod("ds", node_name="n1", daemonset=True),
        pod("static", node_name="n1", mirror=True),
        pod("done", node_name="n1", phase="Succeeded"),
    ]
    first = run(pools, machines, nodes, pods)
    assert first.pools == ()
    assert first.empty_since == {"n1": NOW}
    later = NOW + timedelta(minutes=4)
    assert run(pools, machines, nodes, pods, now=later, empty_since=first.empty_since).pools == ()
    done = run(pools, machines, nodes, pods, now=NOW + timedelta(minutes=5), empty_since=first.empty_since)
    decision = only(done)
    assert (decision.replicas, decision.mark, decision.removed_nodes, decision.reason) == (
        1,
        ("m1",),
        ("n1",),
        "ScaleDown",
    )
    assert decision.resource_version == "7"


def test_a_node_that_gets_a_pod_starts_over() -> None:
    pools, machines, nodes = two_nodes()
    seen = {"n0": NOW - timedelta(hours=1), "n1": NOW - timedelta(hours=1)}
    result = run(
        pools, machines, nodes, [pod("a", node_name="n0"), pod("b", node_name="n1")], empty_since=seen
    )
    assert result.pools == ()
    assert result.empty_since == {}


def test_scale_down_removes_one_node_per_pass_and_never_goes_below_min() -> None:
    pools, machines, nodes = two_nodes()
    seen = {"n0": NOW - timedelta(hours=2), "n1": NOW - timedelta(hours=1)}
    result = run(pools, machines, nodes, empty_since=seen)
    assert only(result).mark == ("m0",)  # empty the longest
    # The operator is deleting m0 (replicas 1): min reached, n1 stays.
    machines[0] = machine("m0", node="n0", marked=True)
    pools[0]["spec"]["replicas"] = 1
    assert run(pools, machines, nodes, empty_since=result.empty_since).pools == ()


def test_a_node_a_pending_pod_would_use_is_not_empty() -> None:
    pools, machines, nodes = two_nodes()
    seen = {"n1": NOW - timedelta(hours=1)}
    result = run(
        pools,
        machines,
        nodes,
        [pod("busy", node_name="n0", cpu="1900m"), pod("p", cpu="1")],
        empty_since=seen,
    )
    assert result.pools == ()


def test_no_scale_down_while_nodes_are_on_the_way() -> None:
    pools, machines, nodes = two_nodes()
    pools[0]["spec"]["replicas"] = 3
    seen = {"n1": NOW - timedelta(hours=1)}
    assert run(pools, [*machines, machine("m2", phase="Provisioning")], nodes, empty_since=seen).pools == ()


def test_a_stale_mark_is_withdrawn_and_a_fresh_one_kept() -> None:
    pools, machines, nodes = two_nodes()
    machines[1] = machine("m1", node="n1", marked=True)
    # Replicas still 2 with 2 live machines: nobody is acting on the mark.
    result = run(pools, machines, nodes, [pod("a", node_name="n0"), pod("b", node_name="n1")])
    assert only(result).unmark == ("m1",)
    assert only(result).replicas == 2
    # Replicas lowered to 1: the operator is removing m1; leave it be.
    pools[0]["spec"]["replicas"] = 1
    assert run(pools, machines, nodes, [pod("a", node_name="n0")]).pools == ()


def test_a_failed_machine_counts_as_a_replica_but_brings_no_node() -> None:
    pools, machines, nodes, pods = full_pool()
    pools[0]["spec"]["replicas"] = 2
    failed = machine("m-failed", phase="Failed")
    # As the operator counts it, replicas 2 are both there: no replica is on its way, so the
    # pending pod grows the pool (remediation's replacement is the operator's business).
    assert only(run(pools, [*machines, failed], nodes, [*pods, pod("a", cpu="1")])).replicas == 3
    # Being deleted, it no longer counts: its replacement is on its way and takes the pod.
    failed["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert run(pools, [*machines, failed], nodes, [*pods, pod("a", cpu="1")]).pools == ()
