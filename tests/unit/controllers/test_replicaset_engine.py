"""The pure parts of the ReplicaSet/ReplicationController engine: slow start, expectations,
status, pods from the template, and the controller reference index."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.controllers.controller_ref import OwnerKind, controller_index, owner_reference
from controlplane.controllers.replica_engine import (
    calculate_status,
    pod_from_template,
    slow_start_batch,
    status_up_to_date,
)
from controlplane.controllers.runtime import rfc3339

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RS_KIND = OwnerKind("apps/v1", "ReplicaSet")


def replica_set(
    replicas: int = 3, min_ready: int = 0, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
    }
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs-uid", "generation": 4},
        "spec": spec,
        "status": status or {},
    }


def pod(labels: dict[str, str], ready: bool = True, ready_for: float = 100) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "labels": labels},
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": rfc3339(NOW - timedelta(seconds=ready_for)),
                }
            ],
        },
    }


async def test_slow_start_runs_batches_of_1_2_4_then_the_rest() -> None:
    started = 0
    seen_at_completion: list[int] = []

    async def create() -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(0)
        # Every call of a batch starts before any finishes: this is the running total so far.
        seen_at_completion.append(started)

    successes, error = await slow_start_batch(12, 1, create)
    assert (successes, error) == (12, None)
    assert sorted(set(seen_at_completion)) == [1, 3, 7, 12]


async def test_slow_start_stops_after_the_first_failing_batch() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls in (5, 6):
            raise errors.Forbidden(message="exceeded quota")

    # Batches of 1, 2, 4: the third batch (calls 4-7) fails twice, the 8th call never happens.
    successes, error = await slow_start_batch(20, 1, create)
    assert calls == 7
    assert successes == 5
    assert isinstance(error, errors.Forbidden)


def test_status_counts_labels_readiness_and_availability() -> None:
    rs = replica_set(min_ready=30)
    pods = [
        pod({"app": "web", "tier": "front"}, ready=True, ready_for=100),
        pod({"app": "web", "tier": "front", "extra": "x"}, ready=True, ready_for=5),
        pod({"app": "web"}, ready=False),
    ]
    status = calculate_status(rs, pods, None, NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1}


def test_status_leaves_zero_counts_out() -> None:
    assert calculate_status(replica_set(), [], None, NOW) == {"replicas": 0}


def test_replica_failure_condition_set_and_cleared() -> None:
    rs = replica_set(replicas=3)
    error = errors.Forbidden(message='pods "web-abc-x" is forbidden: exceeded quota: q')
    status = calculate_status(rs, [pod({"app": "web"})], error, NOW)
    (cond,) = status["conditions"]
    assert cond == {
        "type": "ReplicaFailure",
        "status": "True",
        "lastTransitionTime": rfc3339(NOW),
        "reason": "FailedCreate",
        "message": 'pods "web-abc-x" is forbidden: exceeded quota: q',
    }
    failing = replica_set(replicas=3, status={"conditions": [cond]})
    later = calculate_status(failing, [], errors.Forbidden(message="again"), NOW + timedelta(seconds=9))
    assert later["conditions"] == [cond]  # an existing failure is not rewritten
    assert "conditions" not in calculate_status(failing, [], None, NOW)
    too_many = calculate_status(replica_set(replicas=0), [pod({"app": "web"})], error, NOW)
    assert too_many["conditions"][0]["reason"] == "FailedDelete"


def test_status_up_to_date_needs_observed_generation() -> None:
    rs = replica_set(status={"replicas": 2, "readyReplicas": 2, "observedGeneration": 3})
    assert not status_up_to_date(rs, {"replicas": 2, "readyReplicas": 2})
    rs["status"]["observedGeneration"] = 4
    assert status_up_to_date(rs, {"replicas": 2, "readyReplicas": 2})
    assert not status_up_to_date(rs, {"replicas": 2, "readyReplicas": 1})


def test_pod_from_template() -> None:
    out = pod_from_template(replica_set(), RS_KIND)
    assert out == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-abc-",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-abc",
                    "uid": "rs-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"a": "1"},
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ([], ["orphan:ns"]),
        ([{"uid": "x", "kind": "ReplicaSet"}], ["orphan:ns"]),
        ([{"uid": "x"}, {"uid": "y", "controller": True}], ["uid:y"]),
    ],
)
def test_controller_index(refs: list[dict[str, Any]], expected: list[str]) -> None:
    assert controller_index({"metadata": {"namespace": "ns", "ownerReferences": refs}}) == expected


def test_owner_reference_is_a_controller_reference() -> None:
    assert owner_reference(replica_set(), RS_KIND)["controller"] is True
