"""Printer for `coordination.k8s.io` leases: the holder identity."""

from __future__ import annotations

from controlplane.api.printers.common import AGE, NAME, Column, Doc, Printer, age, as_str, dig, name

__all__ = ["PRINTERS"]

PRINTERS = {
    ("coordination.k8s.io", "leases"): Printer(
        (NAME, Column("Holder", description=Doc("coordination.v1.LeaseSpec", "holderIdentity")), AGE),
        lambda obj, now: [name(obj), as_str(dig(obj, "spec", "holderIdentity")), age(obj, now)],
    ),
}
