"""Queueing hints: whether an event could change a plugin's verdict on a rejected pod."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.scheduler.cluster_events import QueueingHint
from controlplane.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.node_ports import NodePorts
from controlplane.scheduler.plugins.node_resources_fit import NodeResourcesFit
from controlplane.scheduler.plugins.pod_topology_spread import PodTopologySpread
from controlplane.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import framework, node, pod

Q, S = QueueingHint.QUEUE, QueueingHint.SKIP
ANTI = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
}
SPREAD = [
    {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
]


def _pi(name: str, **kw: Any) -> PodInfo:
    return PodInfo(pod(name, **kw))


CASES = [
    (
        "fit: bigger node added",
        NodeResourcesFit({})._node_changed,
        _pi("p", cpu="2"),
        None,
        node("n", cpu="4"),
        Q,
    ),
    (
        "fit: too small node added",
        NodeResourcesFit({})._node_changed,
        _pi("p", cpu="8"),
        None,
        node("n", cpu="4"),
        S,
    ),
    (
        "fit: allocatable grew",
        NodeResourcesFit({})._node_changed,
        _pi("p", cpu="2"),
        node("n", cpu="1"),
        node("n", cpu="4"),
        Q,
    ),
    (
        "fit: unscheduled pod deleted",
        NodeResourcesFit._pod_event,
        _pi("p", cpu="2"),
        _pi("other"),
        None,
        S,
    ),
    (
        "fit: scheduled pod deleted",
        NodeResourcesFit._pod_event,
        _pi("p", cpu="2"),
        _pi("other", node_name="n"),
        None,
        Q,
    ),
    (
        "affinity: node gains the label",
        NodeAffinity._node_changed,
        _pi("p", nodeSelector={"disk": "ssd"}),
        node("n"),
        node("n", labels={"disk": "ssd"}),
        Q,
    ),
    (
        "affinity: unrelated label",
        NodeAffinity._node_changed,
        _pi("p", nodeSelector={"disk": "ssd"}),
        node("n"),
        node("n", labels={"x": "y"}),
        S,
    ),
    (
        "ports: conflicting pod gone",
        NodePorts._pod_deleted,
        _pi("p", containers=[{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]),
        _pi("o", node_name="n", containers=[{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]),
        None,
        Q,
    ),
    (
        "ports: other port",
        NodePorts._pod_deleted,
        _pi("p", containers=[{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]),
        _pi("o", node_name="n", containers=[{"name": "c", "ports": [{"containerPort": 1, "hostPort": 81}]}]),
        None,
        S,
    ),
    (
        "anti-affinity: blocking pod deleted",
        InterPodAffinity._pod_changed,
        _pi("p", labels={"app": "db"}, affinity=ANTI),
        _pi("o", labels={"app": "db"}, node_name="n"),
        None,
        Q,
    ),
    (
        "anti-affinity: unrelated pod deleted",
        InterPodAffinity._pod_changed,
        _pi("p", labels={"app": "db"}, affinity=ANTI),
        _pi("o", labels={"app": "web"}, node_name="n"),
        None,
        S,
    ),
]


@pytest.mark.parametrize(
    ("hint", "target", "old", "new", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hint(hint: Any, target: PodInfo, old: Any, new: Any, want: QueueingHint) -> None:
    assert hint(target, old, new) == want


def test_spread_hints() -> None:
    plugin = PodTopologySpread({}, framework())
    target = _pi("p", labels={"app": "web"}, topologySpreadConstraints=SPREAD)
    assert plugin._pod_changed(target, _pi("w", labels={"app": "web"}, node_name="n"), None) == Q
    assert plugin._pod_changed(target, _pi("x", labels={"app": "other"}, node_name="n"), None) == S
    assert plugin._pod_changed(target, _pi("w", namespace="elsewhere", labels={"app": "web"}), None) == S
    assert plugin._node_changed(target, None, node("n", zone="a")) == Q
    assert plugin._node_changed(target, None, node("n")) == S  # no zone label: cannot host the pod
    assert plugin._node_changed(target, node("n", zone="a"), node("n", zone="b")) == Q
    assert plugin._node_changed(target, node("n", zone="a"), node("n", zone="a", labels={"x": "y"})) == S
