"""Properties of the planner over generated clusters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccm.provisioning.autoscaler.planner import plan
from tests.unit.ccm.provisioning_autoscaler.builders import machine, node, pod, pool

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
PHASES = ["Pending", "Provisioning", "Bootstrapping", *["Running"] * 6, "Failed"]
Obj = dict[str, Any]


@dataclass
class Cluster:
    pools: list[Obj]
    machines: list[Obj]
    nodes: list[Obj]
    pods: list[Obj]
    empty_since: dict[str, datetime]


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    pools: list[Obj] = []
    machines: list[Obj] = []
    nodes: list[Obj] = []
    pods: list[Obj] = []
    empty_since: dict[str, datetime] = {}
    for p in range(draw(st.integers(1, 3))):
        name = f"pool{p}"
        low = draw(st.integers(0, 3))
        high = draw(st.integers(low, 6))
        replicas = draw(st.integers(0, 7))
        pools.append(
            pool(
                name,
                replicas=replicas,
                min_replicas=low,
                max_replicas=high,
                delay="1m",
                instance_type=draw(st.sampled_from(["t3.medium", "m5.large", "m5.large", "unknown"])),
            )
        )
        for m in range(draw(st.integers(max(0, replicas - 1), replicas + 1))):
            mname = f"{name}-m{m}"
            phase = draw(st.sampled_from(PHASES))
            has_node = phase == "Running" or draw(st.booleans())
            nname = f"{name}-n{m}"
            machines.append(
                machine(
                    mname,
                    name,
                    phase=phase,
                    node=nname if has_node else "",
                    marked=draw(st.integers(0, 7)) == 0,
                )
            )
            if has_node:
                nodes.append(
                    node(
                        nname,
                        name,
                        cpu=draw(st.sampled_from(["1", "2"])),
                        ready=draw(st.booleans()) or phase == "Running",
                    )
                )
                nodes[-1]["metadata"]["labels"]["infra.pinnace.dev/machine"] = mname
                if draw(st.booleans()):
                    empty_since[nname] = NOW - timedelta(minutes=draw(st.integers(0, 5)))
                for i in range(draw(st.integers(0, 2))):
                    pods.append(
                        pod(
                            f"{nname}-p{i}",
                            cpu=draw(st.sampled_from(["100m", "500m", "900m"])),
                            node_name=nname,
                            daemonset=draw(st.booleans()),
                            mirror=draw(st.booleans()) and draw(st.booleans()),
                            phase=draw(st.sampled_from(["Running", "Running", "Succeeded"])),
                        )
                    )
    for i in range(draw(st.integers(0, 10))):
        pods.append(
            pod(f"pending{i}", cpu=draw(st.sampled_from(["100m", "700m", "1", "1500m", "1500m", "3"])))
        )
    return Cluster(pools, machines, nodes, pods, empty_since)


def run(c: Cluster) -> Any:
    return plan(c.pools, c.machines, c.nodes, c.pods, now=NOW, empty_since=c.empty_since)


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_replicas_stay_within_bounds_and_drop_by_one_at_most(c: Cluster) -> None:
    decisions = {d.pool: d for d in run(c).pools}
    for p in c.pools:
        spec = p["spec"]
        low, high = spec["autoscaling"]["minReplicas"], spec["autoscaling"]["maxReplicas"]
        current = spec["replicas"]
        decision = decisions.get(p["metadata"]["name"])
        final = decision.replicas if decision is not None else current
        assert final >= low
        assert final <= max(high, current)
        if final > current:
            assert decision is not None and decision.reason in ("TriggeredScaleUp", "MinReplicas")
            assert decision.mark == ()
        if final < current:
            assert decision is not None
            assert current - final == 1 and len(decision.mark) == 1


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_never_removes_a_node_running_a_pod_that_is_not_a_daemon(c: Cluster) -> None:
    machine_nodes = {m["metadata"]["name"]: m["status"].get("nodeName") for m in c.machines}
    for decision in run(c).pools:
        for marked in decision.mark:
            node_name = machine_nodes[marked]
            for p in c.pods:
                if p["spec"].get("nodeName") == node_name and p["status"]["phase"] == "Running":
                    meta = p["metadata"]
                    assert meta.get("ownerReferences") or "kubernetes.io/config.mirror" in meta.get(
                        "annotations", {}
                    )


@settings(max_examples=100, deadline=None)
@given(clusters(), st.integers(1, 4))
def test_no_scale_up_for_pods_an_existing_node_can_take(c: Cluster, spare_count: int) -> None:
    # Spare nodes big enough for every pending pod at once.
    spares = [node(f"spare{i}", None, cpu="64", memory="256Gi") for i in range(spare_count)]
    c.nodes.extend(spares)
    for decision in run(c).pools:
        assert decision.reason != "TriggeredScaleUp"


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.lists(st.sampled_from(["100m", "500m", "1", "2"]), min_size=1, max_size=6))
def test_no_scale_up_for_pods_in_flight_nodes_will_take(in_flight: int, cpus: list[str]) -> None:
    # Each in-flight node has 2 CPUs: the pods fit on them (first fit decreasing) exactly
    # when they fit; they never trigger more nodes than the packing needs beyond those.
    pools = [pool(replicas=in_flight, max_replicas=20)]
    machines = [machine(f"m{i}", phase="Provisioning") for i in range(in_flight)]
    nodes = [node("n-template", cpu="2")]
    machines.append(machine("m-t", node="n-template"))
    pools[0]["spec"]["replicas"] = in_flight + 1
    pods = [pod("fill", cpu="2", node_name="n-template")]
    pending = [pod(f"p{i}", cpu=cpu) for i, cpu in enumerate(cpus)]
    result = plan(pools, machines, nodes, pods + pending, now=NOW, empty_since={})
    millis = sorted((int(c[:-1]) if c.endswith("m") else int(c) * 1000 for c in cpus), reverse=True)
    bins: list[int] = []
    for m in millis:
        for i, used in enumerate(bins):
            if used + m <= 2000:
                bins[i] += m
                break
        else:
            bins.append(m)
    grown = sum(d.replicas - d.current for d in result.pools)
    assert grown == max(0, len(bins) - in_flight)
