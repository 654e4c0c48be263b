"""A Job's podFailurePolicy and successPolicy (upstream pod_failure_policy.go, success_policy.go)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.controllers.job_indexes import Intervals, parse_intervals, total

__all__ = ["PolicyMatch", "match_pod_failure_policy", "match_success_policy"]

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class PolicyMatch:
    """What a failed pod means under the policy: a message if it fails the Job (FailJob),
    whether it counts towards backoffLimit (not for Ignore), and the matched action."""

    fail_job_message: str | None = None
    count_failed: bool = True
    action: str | None = None


_NO_MATCH = PolicyMatch()


def _exit_code_matches(code: int, requirement: Obj) -> bool:
    values = [int(v) for v in requirement.get("values") or []]
    operator = requirement.get("operator")
    if operator == "In":
        return code in values
    if operator == "NotIn":
        return code not in values
    return False


def _matching_container(statuses: Sequence[Obj], requirement: Obj) -> Obj | None:
    wanted = requirement.get("containerName")
    for status in statuses:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is None:
            continue  # still terminating: no exit code to match yet
        if wanted is not None and wanted != status.get("name"):
            continue
        code = int(terminated.get("exitCode") or 0)
        if code != 0 and _exit_code_matches(code, requirement):
            return status
    return None


def _matching_condition(pod_status: Obj, patterns: Sequence[Obj]) -> Obj | None:
    for cond in pod_status.get("conditions") or []:
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == (
                pattern.get("status") or "True"
            ):
                return dict(cond)
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> PolicyMatch:
    """The first rule that matches the failed pod decides. FailIndex needs backoffLimitPerIndex,
    which this controller does not implement, so such rules are passed over (as upstream does
    with the JobBackoffLimitPerIndex feature off)."""
    if policy is None:
        return _NO_MATCH
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            requirement = rule["onExitCodes"]
            container = _matching_container(status.get("containerStatuses") or [], requirement)
            if container is None:
                container = _matching_container(status.get("initContainerStatuses") or [], requirement)
            if container is None:
                continue
            code = int(((container.get("state") or {}).get("terminated") or {}).get("exitCode") or 0)
            found = _rule_action(
                action,
                f"Container {container.get('name')} for pod {meta.get('namespace')}/{meta.get('name')} "
                f"failed with exit code {code} matching FailJob rule at index {index}",
            )
        elif rule.get("onPodConditions") is not None:
            cond = _matching_condition(status, rule["onPodConditions"])
            if cond is None:
                continue
            found = _rule_action(
                action,
                f"Pod {meta.get('namespace')}/{meta.get('name')} has condition {cond.get('type')} "
                f"matching FailJob rule at index {index}",
            )
        else:
            continue
        if found is not None:
            return found
    return _NO_MATCH


def _rule_action(action: Any, fail_message: str) -> PolicyMatch | None:
    """What a matching rule's action decides; None for an action this controller does not
    implement (FailIndex), which passes on to the next rule."""
    if action == "Ignore":
        return PolicyMatch(None, False, "Ignore")
    if action == "Count":
        return PolicyMatch(None, True, "Count")
    if action == "FailJob":
        return PolicyMatch(fail_message, True, "FailJob")
    return None


def _succeeded_indexes_rule_matches(rule_indexes: Intervals, succeeded: Intervals, count: int | None) -> bool:
    contains = 0
    s = r = 0
    while r < len(rule_indexes) and s < len(succeeded):
        overlap = min(rule_indexes[r][1], succeeded[s][1]) - max(rule_indexes[r][0], succeeded[s][0]) + 1
        if overlap > 0:
            contains += overlap
        if succeeded[s][1] < rule_indexes[r][1]:
            s += 1
        elif succeeded[s][1] > rule_indexes[r][1]:
            r += 1
        else:
            s += 1
            r += 1
    return contains == total(rule_indexes) or (count is not None and contains >= count)


def match_success_policy(policy: Obj | None, completions: int, succeeded: Intervals) -> tuple[str, bool]:
    """("Matched rules at index N", True) when a successPolicy rule is satisfied."""
    if policy is None or not succeeded:
        return "", False
    for index, rule in enumerate(policy.get("rules") or []):
        indexes = rule.get("succeededIndexes")
        count = rule.get("succeededCount")
        if indexes is not None:
            required = parse_intervals(str(indexes), completions)
            if not required:
                continue
            if _succeeded_indexes_rule_matches(required, succeeded, None if count is None else int(count)):
                return f"Matched rules at index {index}", True
        elif count is not None and total(succeeded) >= int(count):
            return f"Matched rules at index {index}", True
    return "", False
