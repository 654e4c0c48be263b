"""Which nodes a DaemonSet runs on: selectors, required node affinity, taints and the tolerations
every daemon pod gets (upstream NodeShouldRunDaemonPod and daemon/util)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.controllers.daemonset_placement import (
    DAEMON_TOLERATIONS,
    add_daemon_tolerations,
    add_or_update_toleration,
    node_matches_pod,
    pin_to_node,
    should_run_on_node,
    target_node_name,
    tolerates,
)

Obj = dict[str, Any]


def node(name: str = "n1", labels: dict[str, str] | None = None, taints: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def ds(spec: Obj | None = None) -> Obj:
    return {"metadata": {"name": "agent"}, "spec": {"template": {"spec": {"containers": [], **(spec or {})}}}}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
        ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "anything", "effect": "NoSchedule"}, True),
        ({"operator": "Exists"}, {"key": "whatever", "effect": "NoExecute"}, True),
        (
            {"key": "k", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "k", "effect": "NoExecute"},
            False,
        ),
        ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Bogus"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_tolerates(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


@pytest.mark.parametrize(
    ("n", "template", "expected"),
    [
        (node(), {}, (True, True)),
        (node(labels={"disk": "ssd"}), {"nodeSelector": {"disk": "ssd"}}, (True, True)),
        (node(labels={"disk": "hdd"}), {"nodeSelector": {"disk": "ssd"}}, (False, False)),
        (node(name="n1"), {"nodeName": "n2"}, (False, False)),
        (node(name="n2"), {"nodeName": "n2"}, (True, True)),
        # An untolerated NoSchedule taint: no new pod, but a running one may stay.
        (node(taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), {}, (False, True)),
        # An untolerated NoExecute taint: the pod must go.
        (node(taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}]), {}, (False, False)),
        (
            node(taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            {
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
                ]
            },
            (True, True),
        ),
        # PreferNoSchedule never keeps a daemon pod away.
        (node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), {}, (True, True)),
        # The tolerations every daemon pod gets: cordoned, not-ready, unreachable, pressure.
        (
            node(taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            {},
            (True, True),
        ),
        (node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), {}, (True, True)),
        (node(taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]), {}, (True, True)),
        (
            node(taints=[{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]),
            {},
            (True, True),
        ),
        (
            node(taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
            {},
            (True, True),
        ),
        (node(taints=[{"key": "node.kubernetes.io/pid-pressure", "effect": "NoSchedule"}]), {}, (True, True)),
        # network-unavailable is tolerated only by host-network pods.
        (
            node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
            {},
            (False, True),
        ),
        (
            node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
            {"hostNetwork": True},
            (True, True),
        ),
    ],
)
def test_should_run_on_node(n: Obj, template: Obj, expected: tuple[bool, bool]) -> None:
    assert should_run_on_node(n, ds(template)) == expected


def _affinity(*terms: Obj) -> Obj:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


@pytest.mark.parametrize(
    ("labels", "term", "expected"),
    [
        (
            {"zone": "a"},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            True,
        ),
        (
            {"zone": "c"},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            False,
        ),
        ({"zone": "c"}, {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({}, {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"gpu": ""}, {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, True),
        ({"gpu": ""}, {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, False),
        ({"cores": "8"}, {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}, True),
        ({"cores": "2"}, {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}, False),
        ({"cores": "2"}, {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}, True),
        ({"cores": "x"}, {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}, False),
        # Invalid requirements and empty terms match nothing.
        ({"zone": "a"}, {"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}, False),
        ({"zone": "a"}, {}, False),
        ({}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, True),
        ({}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}, False),
        ({}, {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}, True),
        ({}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}, False),
        ({}, {"matchFields": [{"key": "spec.unschedulable", "operator": "In", "values": ["n1"]}]}, False),
    ],
)
def test_required_node_affinity(labels: dict[str, str], term: Obj, expected: bool) -> None:
    assert node_matches_pod(_affinity(term), node("n1", labels)) is expected


def test_affinity_terms_are_ored_and_empty_required_matches_nothing() -> None:
    a = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    b = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    assert node_matches_pod(_affinity(a, b), node(labels={"zone": "b"}))
    assert not node_matches_pod(_affinity(), node(labels={"zone": "b"}))
    assert not should_run_on_node(node(labels={"zone": "c"}), ds(_affinity(a, b)))[1]


def test_daemon_tolerations_replace_ones_with_a_deadline() -> None:
    spec: Obj = {
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {"key": "custom", "operator": "Exists"},
        ]
    }
    add_daemon_tolerations(spec)
    assert spec["tolerations"][0] == {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
    }
    assert spec["tolerations"][1] == {"key": "custom", "operator": "Exists"}
    assert spec["tolerations"][2:] == [dict(t) for t in DAEMON_TOLERATIONS[1:]]
    again = {"tolerations": list(spec["tolerations"])}
    add_daemon_tolerations(again)
    assert again == spec
    host = {"hostNetwork": True}
    add_daemon_tolerations(host)
    assert host["tolerations"][-1]["key"] == "node.kubernetes.io/network-unavailable"
    assert add_or_update_toleration([], {"key": "a"}) == [{"key": "a"}]


def test_pin_to_node_replaces_only_the_required_terms() -> None:
    pinned = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}
    assert pin_to_node(None, "n7") == {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [pinned]}}
    }
    preferred = [{"weight": 1, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists"}]}}]
    affinity = {
        "podAntiAffinity": {"x": 1},
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": preferred,
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            },
        },
    }
    out = pin_to_node(affinity, "n7")
    assert out["podAntiAffinity"] == {"x": 1}
    assert out["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    assert out["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        pinned
    ]
    # The input is left alone (it may be a cached object).
    assert (
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        != pinned
    )


def test_target_node_name() -> None:
    assert target_node_name({"spec": {"nodeName": "n1"}}) == "n1"
    assert target_node_name({"spec": {"affinity": pin_to_node(None, "n2")}}) == "n2"
    assert target_node_name({"spec": {}}) is None
    ambiguous = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}
    assert target_node_name({"spec": _affinity(ambiguous)}) is None
