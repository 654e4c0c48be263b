"""The pure mutating plugins: DefaultTolerationSeconds, ServiceAccount, Priority's resolution."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver.admission import Attributes
from controlplane.apiserver.admission.default_toleration_seconds import (
    DefaultTolerationSeconds,
    add_default_tolerations,
    tolerates_no_execute,
)
from controlplane.apiserver.admission.priority import (
    default_priority_class,
    resolve_pod_priority,
    system_priority_class_objects,
)
from controlplane.apiserver.admission.service_account import ServiceAccount
from controlplane.apiserver.context import ServerContext

REGISTRY = default_registry()
PODS = REGISTRY.get("", "v1", "pods")
assert PODS is not None
CREATE = Attributes(PODS, "CREATE", "default", "p")
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _defaults(seconds_nr: int = 300, seconds_ur: int = 300) -> list[dict[str, Any]]:
    return [
        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds_nr},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds_ur},
    ]


def test_default_tolerations_are_added_with_the_configured_seconds() -> None:
    spec: dict[str, Any] = {}
    add_default_tolerations(spec, 300, 300)
    assert spec["tolerations"] == _defaults()
    spec = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}
    add_default_tolerations(spec, 30, 60)
    assert spec["tolerations"][1:] == _defaults(30, 60)


@pytest.mark.parametrize(
    ("toleration", "tolerates"),
    [
        ({"operator": "Exists"}, {NOT_READY, UNREACHABLE}),  # empty key and effect: everything
        ({"operator": "Exists", "effect": "NoExecute"}, {NOT_READY, UNREACHABLE}),
        ({"operator": "Exists", "effect": "NoSchedule"}, set()),
        ({"key": NOT_READY, "operator": "Exists"}, {NOT_READY}),
        (
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {UNREACHABLE},
        ),
        ({"key": NOT_READY, "operator": "Equal", "value": "", "effect": "NoExecute"}, {NOT_READY}),
    ],
)
def test_existing_tolerations_suppress_the_defaults_as_upstream(
    toleration: dict[str, Any], tolerates: set[str]
) -> None:
    for key in (NOT_READY, UNREACHABLE):
        assert tolerates_no_execute([toleration], key) is (key in tolerates)
    spec = {"tolerations": [toleration]}
    add_default_tolerations(spec, 300, 300)
    added = {t["key"] for t in spec["tolerations"][1:]}
    assert added == {NOT_READY, UNREACHABLE} - tolerates


async def test_default_tolerations_plugin_touches_only_pods() -> None:
    plugin = DefaultTolerationSeconds(10, 20)
    ctx: ServerContext = None  # type: ignore[assignment]  # the plugin reads nothing from it
    pod: dict[str, Any] = {"spec": {"containers": []}}
    await plugin.admit(ctx, CREATE, pod, None)
    assert pod["spec"]["tolerations"] == _defaults(10, 20)
    deployments = REGISTRY.get("apps", "v1", "deployments")
    assert deployments is not None
    other: dict[str, Any] = {"spec": {}}
    await plugin.admit(ctx, Attributes(deployments, "CREATE", "default", "d"), other, None)
    assert other == {"spec": {}}


async def test_service_account_defaults_on_create_except_mirror_pods() -> None:
    plugin = ServiceAccount()
    ctx: ServerContext = None  # type: ignore[assignment]
    pod: dict[str, Any] = {"metadata": {}, "spec": {}}
    await plugin.admit(ctx, CREATE, pod, None)
    assert pod["spec"]["serviceAccountName"] == pod["spec"]["serviceAccount"] == "default"
    legacy: dict[str, Any] = {"metadata": {}, "spec": {"serviceAccount": "builder"}}
    await plugin.admit(ctx, CREATE, legacy, None)
    assert legacy["spec"]["serviceAccountName"] == "builder"
    mirror: dict[str, Any] = {"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {}}
    await plugin.admit(ctx, CREATE, mirror, None)
    assert "serviceAccountName" not in mirror["spec"]
    update: dict[str, Any] = {"metadata": {}, "spec": {}}
    await plugin.admit(ctx, Attributes(PODS, "UPDATE", "default", "p"), update, pod)
    assert update == {"metadata": {}, "spec": {}}


def _pc(name: str, value: int, *, default: bool = False, policy: str | None = None) -> dict[str, Any]:
    pc: dict[str, Any] = {"metadata": {"name": name}, "value": value, "globalDefault": default}
    if policy:
        pc["preemptionPolicy"] = policy
    return pc


def test_priority_resolution() -> None:
    spec: dict[str, Any] = {}
    resolve_pod_priority(CREATE, spec, None, None)
    assert spec == {"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}

    spec = {}
    resolve_pod_priority(CREATE, spec, None, _pc("base", 100, default=True, policy="Never"))
    assert spec == {"priorityClassName": "base", "priority": 100, "preemptionPolicy": "Never"}

    spec = {"priorityClassName": "high", "priority": 1000}
    resolve_pod_priority(CREATE, spec, _pc("high", 1000), None)
    assert spec["priority"] == 1000 and spec["preemptionPolicy"] == "PreemptLowerPriority"


def test_priority_that_disagrees_with_the_class_is_forbidden() -> None:
    with pytest.raises(errors.Forbidden) as info:
        resolve_pod_priority(CREATE, {"priorityClassName": "high", "priority": 5}, _pc("high", 1000), None)
    assert info.value.message == (
        'pods "p" is forbidden: the integer value of priority (5) must not be provided in pod spec; '
        "priority admission controller computed 1000 from the given PriorityClass name"
    )
    assert info.value.to_status()["details"] == {"name": "p", "kind": "pods"}
    with pytest.raises(errors.Forbidden, match=r"the string value of PreemptionPolicy \(Never\)"):
        resolve_pod_priority(CREATE, {"preemptionPolicy": "Never"}, None, None)


def test_the_lowest_global_default_wins_a_race() -> None:
    classes = [_pc("a", 10), _pc("b", 500, default=True), _pc("c", 20, default=True)]
    found = default_priority_class(classes)
    assert found is not None and found["metadata"]["name"] == "c"
    assert default_priority_class([_pc("a", 10)]) is None


def test_system_classes_are_upstreams() -> None:
    objects = {pc["metadata"]["name"]: pc for pc in system_priority_class_objects()}
    assert objects["system-node-critical"]["value"] == 2000001000
    assert objects["system-cluster-critical"]["value"] == 2000000000
    assert all(pc["preemptionPolicy"] == "PreemptLowerPriority" for pc in objects.values())
    # The bootstrap objects are fresh copies each time (the create path mutates them).
    first = system_priority_class_objects()
    first[0]["value"] = 1
    assert system_priority_class_objects()[0]["value"] == 2000001000
