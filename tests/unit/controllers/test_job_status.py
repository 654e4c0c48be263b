"""Job status math: the uncounted-pods ledger, conditions, how many pods to run, failure and
success policies, and the pod-restart backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers.job_pods import (
    BackoffRecord,
    active_pods_sort_key,
    finished_time,
    is_pod_failed,
    new_backoff_record,
    past_backoff_limit_on_failure,
    remaining_backoff,
)
from controlplane.controllers.job_policy import match_pod_failure_policy, match_success_policy
from controlplane.controllers.job_status import (
    clean_uncounted,
    ensure_condition_status,
    is_job_finished,
    managed_by_external,
    new_condition,
    status_for_write,
    want_active,
)
from controlplane.controllers.runtime import rfc3339

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def finished_pod(phase: str, at: datetime, *, exit_code: int = 1, name: str = "p") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": rfc3339(at - timedelta(minutes=1)),
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"exitCode": exit_code, "finishedAt": rfc3339(at)}}}
            ],
        },
    }


# -- the ledger -----------------------------------------------------------------------------------


def test_clean_uncounted_moves_released_pods_into_the_counters() -> None:
    status: dict[str, Any] = {
        "succeeded": 2,
        "failed": 1,
        "uncountedTerminatedPods": {"succeeded": ["a", "b"], "failed": ["c", "d"]},
    }
    assert clean_uncounted(status, {"b", "d"})
    assert status["succeeded"] == 3
    assert status["failed"] == 2
    assert status["uncountedTerminatedPods"] == {"succeeded": ["b"], "failed": ["d"]}
    assert not clean_uncounted(status, {"b", "d"})


@given(
    st.sets(st.text("abcdef", min_size=1, max_size=3), max_size=8),
    st.sets(st.text("ghijkl", min_size=1, max_size=3), max_size=8),
    st.lists(st.booleans(), min_size=16, max_size=16),
)
def test_a_pod_is_counted_exactly_once_whatever_order_finalizers_go(
    succeeded: set[str], failed: set[str], released: list[bool]
) -> None:
    """Ledger, then release in any order across several syncs: the totals end exact."""
    status: dict[str, Any] = {
        "uncountedTerminatedPods": {"succeeded": sorted(succeeded), "failed": sorted(failed)}
    }
    holding = set(succeeded) | set(failed)
    for uid, go in zip(sorted(holding), released, strict=False):
        if go:
            holding.discard(uid)
            clean_uncounted(status, holding)
    clean_uncounted(status, set())
    assert status.get("succeeded", 0) == len(succeeded)
    assert status.get("failed", 0) == len(failed)
    assert status["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}


def test_status_for_write_omits_empty_fields_like_upstream() -> None:
    out = status_for_write(
        {
            "active": 0,
            "succeeded": 3,
            "failed": 0,
            "ready": 0,
            "terminating": 0,
            "conditions": [],
            "uncountedTerminatedPods": {"succeeded": [], "failed": ["x"]},
        }
    )
    assert out == {"succeeded": 3, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {"failed": ["x"]}}


# -- conditions -----------------------------------------------------------------------------------


def test_ensure_condition_status() -> None:
    conditions: list[dict[str, Any]] = []
    assert not ensure_condition_status(conditions, "Suspended", "False", "JobResumed", "Job resumed", T0)
    assert conditions == []
    assert ensure_condition_status(conditions, "Suspended", "True", "JobSuspended", "Job suspended", T0)
    assert not ensure_condition_status(conditions, "Suspended", "True", "JobSuspended", "Job suspended", T0)
    later = T0 + timedelta(minutes=1)
    assert ensure_condition_status(conditions, "Suspended", "False", "JobResumed", "Job resumed", later)
    assert conditions == [new_condition("Suspended", "False", "JobResumed", "Job resumed", later)]


def test_finished_and_managed_by() -> None:
    assert not is_job_finished({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}})
    assert is_job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    assert is_job_finished({"status": {"conditions": [{"type": "Failed", "status": "True"}]}})
    assert (
        managed_by_external({"spec": {"managedBy": "kueue.x-k8s.io/multikueue"}})
        == "kueue.x-k8s.io/multikueue"
    )
    assert managed_by_external({"spec": {"managedBy": "kubernetes.io/job-controller"}}) is None
    assert managed_by_external({"spec": {}}) is None


# -- how many pods --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completions", "parallelism", "succeeded", "active", "want"),
    [
        (3, 2, 0, 0, 2),
        (3, 2, 2, 1, 1),
        (3, 2, 3, 0, 0),
        (3, 2, 5, 0, 0),
        (None, 4, 0, 0, 4),
        (None, 4, 1, 3, 3),  # after a success: let the running ones finish, start no more
        (10, 0, 0, 0, 0),
    ],
)
def test_want_active(
    completions: int | None, parallelism: int, succeeded: int, active: int, want: int
) -> None:
    assert want_active(completions, parallelism, succeeded, active) == want


@given(st.integers(0, 50), st.integers(0, 20), st.integers(0, 60), st.integers(0, 20))
def test_want_active_never_exceeds_parallelism_or_what_is_left(
    completions: int, parallelism: int, succeeded: int, active: int
) -> None:
    want = want_active(completions, parallelism, succeeded, active)
    assert 0 <= want <= parallelism
    assert want <= max(completions - succeeded, 0)


# -- pods -----------------------------------------------------------------------------------------


def test_deleted_pods_count_as_failed_unless_only_failed_pods_are_replaced() -> None:
    deleting = {"metadata": {"deletionTimestamp": rfc3339(T0)}, "status": {"phase": "Running"}}
    assert is_pod_failed(deleting, {"spec": {}})
    assert not is_pod_failed(deleting, {"spec": {"podReplacementPolicy": "Failed"}})
    assert not is_pod_failed(deleting, {"spec": {"podFailurePolicy": {"rules": []}}})
    assert is_pod_failed({"metadata": {}, "status": {"phase": "Failed"}}, {"spec": {"podFailurePolicy": {}}})
    succeeded = {"metadata": {"deletionTimestamp": rfc3339(T0)}, "status": {"phase": "Succeeded"}}
    assert not is_pod_failed(succeeded, {"spec": {}})


def test_finished_time_falls_back_from_containers_to_ready_to_deletion() -> None:
    assert finished_time(finished_pod("Failed", T0)) == T0
    ready_false = {
        "metadata": {},
        "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(T0)}]},
    }
    assert finished_time(ready_false) == T0
    deleted = {
        "metadata": {
            "deletionTimestamp": rfc3339(T0 + timedelta(seconds=30)),
            "deletionGracePeriodSeconds": 30,
        }
    }
    assert finished_time(deleted) == T0


def test_active_pods_order_cheapest_to_lose_first() -> None:
    def pod(name: str, node: str = "", phase: str = "Pending", ready: bool = False) -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(T0)}] if ready else []
        return {
            "metadata": {"name": name, "creationTimestamp": rfc3339(T0)},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions},
        }

    pods = [
        pod("ready", "n", "Running", True),
        pod("running", "n", "Running"),
        pod("pending", "n"),
        pod("unbound"),
    ]
    assert [p["metadata"]["name"] for p in sorted(pods, key=active_pods_sort_key)] == [
        "unbound",
        "pending",
        "running",
        "ready",
    ]


def test_restarts_count_against_backoff_limit_with_on_failure() -> None:
    job = {"spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure"}}}}
    running = {"status": {"phase": "Running", "containerStatuses": [{"restartCount": 1}]}}
    assert not past_backoff_limit_on_failure(job, [running])
    assert past_backoff_limit_on_failure(job, [running, running])
    never = {"spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never"}}}}
    assert not past_backoff_limit_on_failure(never, [running, running, running])


# -- backoff --------------------------------------------------------------------------------------


def test_backoff_doubles_per_failure_and_is_capped() -> None:
    record = BackoffRecord()
    for i in range(3):
        record = new_backoff_record(record, [], [finished_pod("Failed", T0 + timedelta(seconds=i))])
    assert record == BackoffRecord(3, T0 + timedelta(seconds=2))
    last = T0 + timedelta(seconds=2)
    assert remaining_backoff(record, last, 10, 600) == 40
    assert remaining_backoff(record, last + timedelta(seconds=15), 10, 600) == 25
    assert remaining_backoff(record, last + timedelta(seconds=41), 10, 600) == 0
    many = BackoffRecord(12, last)
    assert remaining_backoff(many, last, 10, 360) == 360


def test_a_success_after_the_failures_resets_the_backoff() -> None:
    record = new_backoff_record(
        BackoffRecord(4, T0), [finished_pod("Succeeded", T0 + timedelta(seconds=5))], []
    )
    assert record == BackoffRecord()
    # Failures after the success still count.
    record = new_backoff_record(
        BackoffRecord(4, T0),
        [finished_pod("Succeeded", T0 + timedelta(seconds=5))],
        [
            finished_pod("Failed", T0 + timedelta(seconds=1)),
            finished_pod("Failed", T0 + timedelta(seconds=9)),
        ],
    )
    assert record == BackoffRecord(1, T0 + timedelta(seconds=9))


# -- policies -------------------------------------------------------------------------------------

POLICY = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0, 3]}},
    ]
}


def test_pod_failure_policy_rules() -> None:
    fail_job = match_pod_failure_policy(POLICY, finished_pod("Failed", T0, exit_code=42, name="w"))
    assert fail_job.action == "FailJob"
    assert fail_job.fail_job_message == (
        "Container main for pod ns/w failed with exit code 42 matching FailJob rule at index 1"
    )
    disrupted = finished_pod("Failed", T0, exit_code=42)
    disrupted["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    ignored = match_pod_failure_policy(POLICY, disrupted)
    assert (ignored.action, ignored.count_failed) == ("Ignore", False)
    # FailIndex needs backoffLimitPerIndex: the rule is passed over and the next one decides.
    assert match_pod_failure_policy(POLICY, finished_pod("Failed", T0, exit_code=7)).action == "Count"
    no_match = match_pod_failure_policy(POLICY, finished_pod("Failed", T0, exit_code=3))
    assert (no_match.action, no_match.count_failed) == (None, True)
    assert match_pod_failure_policy(None, disrupted).count_failed


def test_pod_condition_rule_message() -> None:
    policy = {"rules": [{"action": "FailJob", "onPodConditions": [{"type": "ConfigIssue"}]}]}
    pod = finished_pod("Failed", T0, name="w")
    pod["status"]["conditions"] = [{"type": "ConfigIssue", "status": "True"}]
    assert match_pod_failure_policy(policy, pod).fail_job_message == (
        "Pod ns/w has condition ConfigIssue matching FailJob rule at index 0"
    )


def test_success_policy() -> None:
    policy = {"rules": [{"succeededIndexes": "0,2-3"}, {"succeededCount": 4}]}
    assert match_success_policy(policy, 10, [(0, 0), (2, 3)]) == ("Matched rules at index 0", True)
    assert match_success_policy(policy, 10, [(0, 0), (2, 2)]) == ("", False)
    assert match_success_policy(policy, 10, [(5, 8)]) == ("Matched rules at index 1", True)
    counted = {"rules": [{"succeededIndexes": "0-9", "succeededCount": 2}]}
    assert match_success_policy(counted, 10, [(4, 5)]) == ("Matched rules at index 0", True)
    assert match_success_policy(None, 10, [(0, 9)]) == ("", False)
