"""A Machine's phase and conditions once its instance exists, as a pure function of its status
(including the bootstrap steps its node reports), its Node (if one joined) and the time.

Timeouts follow MachineHealthCheck: a node that has not joined within `joinTimeout` of the
instance being provisioned fails with NodeStartupTimeout; a joined node whose Ready condition has
not been True for `notReadyTimeout` (measured from that condition's lastTransitionTime) fails with
UnhealthyNode; a Node that disappears after joining fails with NodeNotFound. Failed is final: the
pool replaces the Machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ccm.provisioning import api
from ccm.provisioning.conditions import Condition, find_condition, is_true, set_condition

__all__ = [
    "BOOTSTRAP_FAILED",
    "NODE_NOT_FOUND",
    "NODE_STARTUP_TIMEOUT",
    "UNHEALTHY_NODE",
    "Evaluation",
    "NodeView",
    "evaluate",
    "format_duration",
    "parse_time",
    "step_conditions",
]

BOOTSTRAP_FAILED = "BootstrapFailed"
NODE_STARTUP_TIMEOUT = "NodeStartupTimeout"  # cluster-api's MachineHealthCheck reasons
UNHEALTHY_NODE = "UnhealthyNode"
NODE_NOT_FOUND = "NodeNotFound"
_LOG_IN_CONDITION = 2000


def parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds: 90 -> 1m30s, 600 -> 10m0s."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: str = "Unknown"  # the Ready condition's status: True, False or Unknown
    ready_since: datetime | None = None  # when Ready last changed (else when the Node was created)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NodeView:
        meta = obj.get("metadata") or {}
        ready = find_condition((obj.get("status") or {}).get("conditions"), "Ready")
        since = parse_time(ready.get("lastTransitionTime")) if ready else None
        return cls(
            name=str(meta.get("name", "")),
            ready=str(ready.get("status", "Unknown")) if ready else "Unknown",
            ready_since=since or parse_time(meta.get("creationTimestamp")),
        )


@dataclass(frozen=True)
class Evaluation:
    phase: str
    conditions: list[Condition]
    node_name: str = ""
    failure_reason: str = ""
    failure_message: str = ""


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def step_conditions(
    conditions: Sequence[Mapping[str, Any]] | None, bootstrap: Mapping[str, Any] | None, now: str
) -> list[Condition]:
    """One condition per reported step (True when it succeeded, False with its log tail when it
    failed, Unknown while it runs) and BootstrapSucceeded for the whole."""
    out: list[Condition] = [dict(c) for c in conditions or ()]
    bootstrap = bootstrap or {}
    for step in bootstrap.get("steps") or ():
        name = str(step.get("name", ""))
        if not name:
            continue
        state = step.get("state")
        type_ = api.step_condition_type(name)
        if state == api.StepState.SUCCEEDED:
            out = set_condition(out, type_, True, "StepSucceeded", "", now)
        elif state == api.StepState.FAILED:
            tail = str(step.get("logTail") or "")[-_LOG_IN_CONDITION:]
            out = set_condition(out, type_, False, "StepFailed", tail, now)
        else:
            out = set_condition(out, type_, "Unknown", "StepRunning", "", now)
    failed = bootstrap.get("failedStep")
    if failed:
        out = set_condition(out, "BootstrapSucceeded", False, BOOTSTRAP_FAILED, f"step {failed} failed", now)
    elif bootstrap.get("completed"):
        out = set_condition(out, "BootstrapSucceeded", True, "BootstrapSucceeded", "", now)
    elif bootstrap.get("steps"):
        out = set_condition(out, "BootstrapSucceeded", "Unknown", "Bootstrapping", "", now)
    return out


def _failed_step_message(bootstrap: Mapping[str, Any]) -> str:
    failed = str(bootstrap.get("failedStep"))
    tail = ""
    for step in bootstrap.get("steps") or ():
        if step.get("name") == failed:
            tail = _last_line(str(step.get("logTail") or ""))
    message = f'bootstrap step "{failed}" failed'
    return f"{message}: {tail}" if tail else message


def evaluate(
    status: Mapping[str, Any],
    node: NodeView | None,
    now: datetime,
    *,
    join_timeout: float,
    not_ready_timeout: float,
) -> Evaluation:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    bootstrap = status.get("bootstrap") or {}
    conditions = step_conditions(status.get("conditions"), bootstrap, stamp)
    phase = str(status.get("phase") or api.MachinePhase.BOOTSTRAPPING)
    node_name = str(status.get("nodeName") or "")

    def failed(reason: str, message: str, conds: list[Condition]) -> Evaluation:
        return Evaluation(api.MachinePhase.FAILED, conds, node_name, reason, message)

    if phase == api.MachinePhase.FAILED:
        return Evaluation(
            phase,
            conditions,
            node_name,
            str(status.get("failureReason") or ""),
            str(status.get("failureMessage") or ""),
        )
    if bootstrap.get("failedStep"):
        return failed(BOOTSTRAP_FAILED, _failed_step_message(bootstrap), conditions)

    if node is None:
        if is_true(conditions, "NodeJoined"):
            conditions = set_condition(
                conditions, "NodeJoined", False, NODE_NOT_FOUND, "the Node is gone", stamp
            )
            return failed(NODE_NOT_FOUND, f"node {node_name} was deleted", conditions)
        conditions = set_condition(conditions, "NodeJoined", False, "WaitingForNode", "", stamp)
        provisioned = find_condition(conditions, "InstanceProvisioned")
        since = parse_time(provisioned.get("lastTransitionTime")) if provisioned else None
        if since is not None and (now - since).total_seconds() > join_timeout:
            message = f"the node did not join within {format_duration(join_timeout)}"
            conditions = set_condition(conditions, "NodeJoined", False, NODE_STARTUP_TIMEOUT, message, stamp)
            return failed(NODE_STARTUP_TIMEOUT, message, conditions)
        return Evaluation(api.MachinePhase.BOOTSTRAPPING, conditions, node_name)

    node_name = node.name
    conditions = set_condition(conditions, "NodeJoined", True, "NodeJoined", f"node {node.name}", stamp)
    if node.ready == "True":
        conditions = set_condition(conditions, "NodeReady", True, "NodeReady", "", stamp)
        return Evaluation(api.MachinePhase.RUNNING, conditions, node_name)
    conditions = set_condition(
        conditions, "NodeReady", False, "NodeNotReady", f"node {node.name} Ready={node.ready}", stamp
    )
    if node.ready_since is not None and (now - node.ready_since).total_seconds() > not_ready_timeout:
        message = f"node {node.name} has not been Ready for more than {format_duration(not_ready_timeout)}"
        return failed(UNHEALTHY_NODE, message, conditions)
    # A node that was Running stays Running while NotReady (a Machine's phase does not flap).
    keep = phase if phase == api.MachinePhase.RUNNING else api.MachinePhase.BOOTSTRAPPING
    return Evaluation(keep, conditions, node_name)
