"""The pod, condition and status-cause helpers the controllers share."""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.controllers.job_status import finished_condition, is_job_finished
from controlplane.controllers.podutil import (
    condition,
    condition_is_true,
    is_pod_active,
    is_pod_ready,
    is_pod_terminal,
    status_condition,
)
from controlplane.controllers.status_causes import has_status_cause, namespace_terminating


def _with(*conditions: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {}, "status": {"phase": phase, "conditions": list(conditions)}}


def test_conditions_are_found_by_type_and_copied() -> None:
    ready = {"type": "Ready", "status": "True"}
    pod = _with({"type": "PodScheduled", "status": "True"}, ready)
    found = condition(pod, "Ready")
    assert found == ready and found is not ready
    assert status_condition(pod["status"], "Ready") == ready
    assert status_condition(None, "Ready") is None
    assert condition({"metadata": {}}, "Ready") is None


def test_readiness_and_truth_of_conditions() -> None:
    assert is_pod_ready(_with({"type": "Ready", "status": "True"}))
    assert not is_pod_ready(_with({"type": "Ready", "status": "False"}))
    assert not is_pod_ready(_with())
    node = _with({"type": "Ready", "status": "Unknown"})
    assert not condition_is_true(node, "Ready")
    assert condition_is_true(_with({"type": "DiskPressure", "status": "True"}), "DiskPressure")


def test_terminal_and_active_pods() -> None:
    assert is_pod_terminal(_with(phase="Succeeded")) and is_pod_terminal(_with(phase="Failed"))
    assert not is_pod_terminal(_with(phase="Running"))
    deleting = _with()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert is_pod_active(_with()) and not is_pod_active(deleting) and not is_pod_active(_with(phase="Failed"))


def test_a_job_is_finished_by_a_true_complete_or_failed_condition() -> None:
    assert finished_condition(_with({"type": "SuccessCriteriaMet", "status": "True"})) is None
    assert finished_condition(_with({"type": "Complete", "status": "False"})) is None
    failed = {"type": "Failed", "status": "True", "lastTransitionTime": "T"}
    assert finished_condition(_with({"type": "Suspended", "status": "True"}, failed)) == failed
    assert is_job_finished(_with(failed)) and not is_job_finished(_with())


def test_namespace_terminating_cause() -> None:
    refused = errors.Forbidden(message="namespace is being terminated")
    refused.causes.append(errors.Cause(reason="NamespaceTerminating", message="", field=""))
    assert namespace_terminating(refused)
    assert has_status_cause(refused, "NamespaceTerminating")
    assert not namespace_terminating(errors.Forbidden(message="no"))
    assert not namespace_terminating(ValueError("not an API error"))
