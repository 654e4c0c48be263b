"""PodDisruptionBudget arithmetic and the controller's status, against an in-memory client."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.disruption import (
    DisruptionController,
    build_disrupted_pods,
    conditions_up_to_date,
    count_healthy,
    desired_healthy_from,
    disruptions_allowed,
    scaled_value,
    set_condition,
    stale_disruption_wait,
    update_disruption_allowed_condition,
)
from controlplane.controllers.runtime import (
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    rfc3339,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(
    name: str, *, ready: bool = True, deleting: bool = False, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "x"}}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(T0)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": "Running", "conditions": conditions}}


# -- arithmetic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, True, 3),
        ("50%", 5, True, 3),
        ("50%", 5, False, 2),
        ("0%", 7, True, 0),
        ("100%", 7, True, 7),
        ("33%", 3, True, 1),
    ],
)
def test_scaled_value(value: Any, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "invalid value for IntOrString: invalid type: string is not a percentage"),
        (
            "x%",
            'invalid value for IntOrString: invalid value "x%": strconv.Atoi: parsing "x": invalid syntax',
        ),
        (1.5, "invalid value for IntOrString: invalid type: neither int nor percentage"),
    ],
)
def test_scaled_value_errors(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        scaled_value(value, 10, True)
    assert str(info.value) == message


def test_desired_healthy() -> None:
    assert desired_healthy_from({"maxUnavailable": 1}, 4) == 3
    assert desired_healthy_from({"maxUnavailable": "25%"}, 4) == 3
    assert desired_healthy_from({"maxUnavailable": "30%"}, 4) == 2  # 1.2 rounds up to 2 unavailable
    assert desired_healthy_from({"maxUnavailable": 10}, 4) == 0
    assert desired_healthy_from({"minAvailable": "50%"}, 5) == 3


@given(st.integers(0, 50), st.integers(0, 50), st.integers(-2, 50))
def test_disruptions_allowed_is_never_negative_nor_positive_without_expected_pods(
    healthy: int, desired: int, expected: int
) -> None:
    allowed = disruptions_allowed(healthy, desired, expected)
    assert allowed >= 0
    if expected <= 0:
        assert allowed == 0
    else:
        assert allowed == max(healthy - desired, 0)


def test_healthy_pods_exclude_unready_deleting_and_just_evicted() -> None:
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d"), pod("e")]
    disrupted = {"d": rfc3339(T0 - timedelta(seconds=30)), "e": rfc3339(T0 - timedelta(minutes=5))}
    assert count_healthy(pods, disrupted, T0) == 2  # a, and e whose eviction is long past


def test_disrupted_pods_are_kept_until_deleted_or_expired() -> None:
    pods = [pod("fresh"), pod("stale"), pod("going", deleting=True)]
    disrupted = {
        "fresh": rfc3339(T0 - timedelta(seconds=30)),
        "stale": rfc3339(T0 - timedelta(minutes=3)),
        "going": rfc3339(T0),
        "vanished": rfc3339(T0),
    }
    kept, recheck, expired = build_disrupted_pods(pods, disrupted, T0)
    assert kept == {"fresh": disrupted["fresh"]}
    assert recheck == T0 + timedelta(seconds=90)
    assert expired == ["stale"]
    assert build_disrupted_pods(pods, None, T0) == ({}, None, [])


def test_condition_transition_time_moves_only_with_the_status() -> None:
    status: dict[str, Any] = {"disruptionsAllowed": 0, "observedGeneration": 1}
    update_disruption_allowed_condition(status, T0)
    assert status["conditions"] == [
        {
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "observedGeneration": 1,
            "lastTransitionTime": rfc3339(T0),
        }
    ]
    set_condition(
        status["conditions"],
        {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": "boom"},
        T0 + timedelta(minutes=1),
    )
    assert status["conditions"][0]["lastTransitionTime"] == rfc3339(T0)
    status["disruptionsAllowed"] = 2
    update_disruption_allowed_condition(status, T0 + timedelta(minutes=2))
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == (
        "True",
        "SufficientPods",
        rfc3339(T0 + timedelta(minutes=2)),
    )
    assert conditions_up_to_date({"metadata": {"generation": 1}, "status": status})
    assert not conditions_up_to_date({"metadata": {"generation": 2}, "status": status})


def test_stale_disruption_target() -> None:
    p = pod("a")
    p["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "lastTransitionTime": rfc3339(T0),
        }
    )
    assert stale_disruption_wait(p, T0 + timedelta(seconds=30)) == 90
    assert stale_disruption_wait(p, T0 + timedelta(minutes=5)) == 0
    assert stale_disruption_wait(pod("b"), T0) is None
    p["status"]["conditions"][-1]["reason"] = "TerminationByKubelet"
    assert stale_disruption_wait(p, T0) is None


# -- the controller -------------------------------------------------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        if method == "PUT":
            self.written.append(copy.deepcopy(body))
            return body
        if path == "/apis/batch/v1":
            return {"resources": [{"name": "jobs", "kind": "Job"}, {"name": "jobs/status", "kind": "Job"}]}
        if path.endswith("/scale"):
            raise errors.NotFound(message="not found")
        raise errors.NotFound(message=path)

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> Any:
        raise errors.NotFound(message=name)


def harness() -> tuple[DisruptionController, FakeClient]:
    client = FakeClient()
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("disruption"),  # type: ignore[arg-type]
        clock=FakeClock(T0),
    )
    return DisruptionController(ctx), client


def pdb(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "budget",
            "namespace": "ns",
            "uid": "pdb-uid",
            "generation": 3,
            "resourceVersion": "9",
        },
        "spec": {"selector": {"matchLabels": {"app": "x"}}, **spec},
        "status": {},
    }


async def test_percentage_counts_the_deployments_replicas() -> None:
    dc, client = harness()
    dc.deployments.apply(
        "ADDED", {"metadata": {"name": "web", "namespace": "ns", "uid": "dep"}, "spec": {"replicas": 5}}
    )
    dep_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep", "controller": True}
    for rs in ("web-1", "web-2"):  # mid-rollout: two ReplicaSets, one Deployment
        dc.rss.apply(
            "ADDED",
            {
                "metadata": {"name": rs, "namespace": "ns", "uid": rs, "ownerReferences": [dep_ref]},
                "spec": {"replicas": 3},
            },
        )
    for i, rs in enumerate(("web-1", "web-1", "web-2", "web-2")):
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": rs, "controller": True}
        dc.pods.apply("ADDED", pod(f"p{i}", owner=owner, ready=i != 3))
    dc.pdbs.apply("ADDED", pdb(minAvailable="60%"))
    await dc.reconcile("ns/budget")
    status = client.written[-1]["status"]
    assert {
        k: status[k] for k in ("expectedPods", "currentHealthy", "desiredHealthy", "disruptionsAllowed")
    } == {
        "expectedPods": 5,
        "currentHealthy": 3,
        "desiredHealthy": 3,
        "disruptionsAllowed": 0,
    }
    assert status["observedGeneration"] == 3
    assert status["conditions"][0]["reason"] == "InsufficientPods"


async def test_an_unknown_controller_fails_closed() -> None:
    dc, client = harness()
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j", "controller": True}
    dc.pods.apply("ADDED", pod("p", owner=owner))
    budget = pdb(maxUnavailable=1)
    budget["status"] = {"disruptionsAllowed": 1, "observedGeneration": 3}
    dc.pdbs.apply("ADDED", budget)
    await dc.reconcile("ns/budget")
    status = client.written[-1]["status"]
    assert status["disruptionsAllowed"] == 0
    cond = status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "SyncFailed",
        "jobs.batch does not implement the scale subresource",
    )


async def test_integer_min_available_needs_no_controller() -> None:
    dc, client = harness()
    for i in range(3):
        dc.pods.apply("ADDED", pod(f"p{i}"))
    dc.pdbs.apply("ADDED", pdb(minAvailable=2))
    await dc.reconcile("ns/budget")
    status = client.written[-1]["status"]
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (3, 1)
    assert status["conditions"][0]["reason"] == "SufficientPods"
    # Nothing changed: no second write.
    written = client.written[-1]
    written["metadata"]["resourceVersion"] = "10"
    dc.pdbs.apply("MODIFIED", written)
    await dc.reconcile("ns/budget")
    assert len(client.written) == 1
