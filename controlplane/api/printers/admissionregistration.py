"""Printers for `admissionregistration.k8s.io` webhook configurations: the number of webhooks."""

from __future__ import annotations

from controlplane.api.printers.common import AGE, NAME, Column, Printer, age, as_list, name

__all__ = ["PRINTERS"]

_WEBHOOKS = Printer(
    (
        NAME,
        Column(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ),
    lambda obj, now: [name(obj), len(as_list(obj.get("webhooks"))), age(obj, now)],
)

PRINTERS = {
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): _WEBHOOKS,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): _WEBHOOKS,
}
