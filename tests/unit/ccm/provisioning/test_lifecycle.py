"""A Machine's phase once its instance exists: steps, join, readiness and the timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ccm.provisioning.lifecycle import NodeView, evaluate, format_duration, step_conditions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"


def provisioned(**status: Any) -> dict[str, Any]:
    return {
        "phase": "Bootstrapping",
        "conditions": [{"type": "InstanceProvisioned", "status": "True", "lastTransitionTime": STAMP}],
        **status,
    }


def run(status: dict[str, Any], node: NodeView | None, after: float = 0.0) -> Any:
    return evaluate(status, node, T0 + timedelta(seconds=after), join_timeout=600, not_ready_timeout=300)


def conds(result: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result.conditions}


def test_steps_become_conditions() -> None:
    bootstrap = {
        "steps": [
            {"name": "load-modules", "state": "Succeeded"},
            {"name": "install-kubelet", "state": "Running"},
        ]
    }
    out = {c["type"]: c for c in step_conditions(None, bootstrap, STAMP)}
    assert out["LoadModules"]["status"] == "True"
    assert out["InstallKubelet"]["status"] == "Unknown"
    assert out["BootstrapSucceeded"]["status"] == "Unknown"
    done = {c["type"]: c for c in step_conditions(None, {**bootstrap, "completed": True}, STAMP)}
    assert done["BootstrapSucceeded"]["status"] == "True"


def test_a_failed_step_fails_the_machine_naming_the_step_with_its_log() -> None:
    bootstrap = {
        "steps": [
            {
                "name": "install-kubelet",
                "state": "Failed",
                "logTail": "E: Unable to locate package\nexit 100\n",
            }
        ],
        "failedStep": "install-kubelet",
        "completed": False,
    }
    result = run(provisioned(bootstrap=bootstrap), None)
    assert result.phase == "Failed"
    assert result.failure_reason == "BootstrapFailed"
    assert result.failure_message == 'bootstrap step "install-kubelet" failed: exit 100'
    assert conds(result)["InstallKubelet"]["status"] == "False"
    assert "Unable to locate package" in conds(result)["InstallKubelet"]["message"]
    assert conds(result)["BootstrapSucceeded"]["reason"] == "BootstrapFailed"


def test_waiting_for_the_node_until_the_join_timeout() -> None:
    waiting = run(provisioned(), None, after=599)
    assert waiting.phase == "Bootstrapping"
    assert conds(waiting)["NodeJoined"]["reason"] == "WaitingForNode"
    late = run(provisioned(), None, after=601)
    assert late.phase == "Failed" and late.failure_reason == "NodeStartupTimeout"
    assert late.failure_message == "the node did not join within 10m0s"


def test_joined_and_ready_is_running() -> None:
    result = run(provisioned(), NodeView("i-1", "True", T0))
    assert result.phase == "Running" and result.node_name == "i-1"
    assert conds(result)["NodeJoined"]["status"] == "True"
    assert conds(result)["NodeReady"]["status"] == "True"


def test_not_ready_too_long_is_unhealthy_and_running_does_not_flap() -> None:
    running = provisioned(phase="Running", nodeName="i-1")
    brief = run(running, NodeView("i-1", "False", T0), after=200)
    assert brief.phase == "Running"
    assert conds(brief)["NodeReady"]["status"] == "False"
    long = run(running, NodeView("i-1", "Unknown", T0), after=301)
    assert long.phase == "Failed" and long.failure_reason == "UnhealthyNode"
    # A node that joined but was never Ready counts from its Ready condition (or creation) too.
    assert run(provisioned(), NodeView("i-1", "False", T0), after=10).phase == "Bootstrapping"


def test_a_node_gone_after_joining_fails_the_machine() -> None:
    joined = run(provisioned(), NodeView("i-1", "True", T0))
    status = provisioned(phase="Running", nodeName="i-1", conditions=joined.conditions)
    gone = run(status, None, after=5)
    assert gone.phase == "Failed" and gone.failure_reason == "NodeNotFound"


def test_failed_is_final() -> None:
    status = provisioned(phase="Failed", failureReason="X", failureMessage="y")
    result = run(status, NodeView("i-1", "True", T0))
    assert (result.phase, result.failure_reason, result.failure_message) == ("Failed", "X", "y")


def test_node_view_and_durations() -> None:
    node = {
        "metadata": {"name": "n", "creationTimestamp": STAMP},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:01:00Z"}]
        },
    }
    assert NodeView.from_object(node) == NodeView("n", "False", T0 + timedelta(minutes=1))
    assert NodeView.from_object({"metadata": {"name": "n", "creationTimestamp": STAMP}}) == NodeView(
        "n", "Unknown", T0
    )
    assert [format_duration(s) for s in (5, 90, 600, 3725)] == ["5s", "1m30s", "10m0s", "1h2m5s"]
