"""Which failed Machines to replace now, with MachineHealthCheck's `maxUnhealthy` short-circuit:
when more of the pool is unhealthy than allowed, nothing is remediated (a zone outage or a bad
image must not make the operator churn the whole pool), and the pool says why."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ccm.provisioning.planning import MachineView

__all__ = ["RemediationPlan", "max_unhealthy_count", "plan_remediation"]

_PERCENT = re.compile(r"\A(\d+)%\Z")


def max_unhealthy_count(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=false)."""
    if isinstance(value, int):
        return max(0, value)
    match = _PERCENT.match(value.strip())
    if match is not None:
        return math.floor(int(match.group(1)) * total / 100)
    try:
        return max(0, int(value))
    except ValueError:
        return 1


@dataclass(frozen=True)
class RemediationPlan:
    delete: tuple[str, ...] = ()
    blocked: str = ""  # why nothing is remediated ("" when remediation is allowed)


def plan_remediation(machines: Sequence[MachineView], max_unhealthy: int | str) -> RemediationPlan:
    """Failed machines not yet deleted are remediated (deleted, so the pool replaces them) when the
    unhealthy ones, counting those already on their way out, are within `max_unhealthy`."""
    total = len(machines)
    unhealthy = [m for m in machines if m.failed]
    to_delete = tuple(sorted(m.name for m in unhealthy if not m.deleting))
    if not to_delete:
        return RemediationPlan()
    allowed = max_unhealthy_count(max_unhealthy, total)
    if len(unhealthy) > allowed:
        return RemediationPlan(
            blocked=(
                "Remediation is not allowed, the number of not started or unhealthy machines exceeds "
                f"maxUnhealthy (total: {total}, unhealthy: {len(unhealthy)}, maxUnhealthy: {max_unhealthy})"
            )
        )
    return RemediationPlan(delete=to_delete)
