"""Printer for `policy` pod disruption budgets (upstream `printPodDisruptionBudget`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.printers.common import AGE, NAME, Column, Printer, age, as_int, dig, name

__all__ = ["PRINTERS"]


def _int_or_string(value: Any) -> str:
    """`intstr.IntOrString.String()`, or "N/A" when unset."""
    if value is None:
        return "N/A"
    if isinstance(value, str):
        return value
    return str(as_int(value))


def _pdb_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [
        name(obj),
        _int_or_string(dig(obj, "spec", "minAvailable")),
        _int_or_string(dig(obj, "spec", "maxUnavailable")),
        as_int(dig(obj, "status", "disruptionsAllowed")),
        age(obj, now),
    ]


PRINTERS = {
    ("policy", "poddisruptionbudgets"): Printer(
        (
            NAME,
            Column("Min Available", description="The minimum number of pods that must be available."),
            Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
            Column(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ),
        _pdb_row,
    ),
}
