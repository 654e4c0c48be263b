"""Printer for `scheduling.k8s.io` priority classes (upstream `printPriorityClass`)."""

from __future__ import annotations

from controlplane.api.printers.common import (
    AGE,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_bool,
    as_int,
    as_str,
    name,
)

__all__ = ["PRINTERS"]

PRINTERS = {
    ("scheduling.k8s.io", "priorityclasses"): Printer(
        (
            NAME,
            Column("Value", "integer", Doc("scheduling.v1.PriorityClass", "value")),
            Column("Global-Default", "boolean", Doc("scheduling.v1.PriorityClass", "globalDefault")),
            AGE,
            # Upstream gives this column no priority although it prints it only when wide.
            Column("PreemptionPolicy", description=Doc("scheduling.v1.PriorityClass", "preemptionPolicy")),
        ),
        lambda obj, now: [
            name(obj),
            as_int(obj.get("value")),
            as_bool(obj.get("globalDefault")),
            age(obj, now),
            as_str(obj.get("preemptionPolicy")),
        ],
    ),
}
