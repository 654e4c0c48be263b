"""Built-in Table printers, one module per API group, after upstream `pkg/printers/internalversion`.

`PRINTERS` maps (group, plural) to a `Printer`: the column definitions and the row function.
"""

from __future__ import annotations

from controlplane.api.printers import (
    admissionregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    coordination,
    core,
    networking,
    policy,
    rbac,
    scheduling,
    storage,
)
from controlplane.api.printers.common import Column, Printer

__all__ = ["PRINTERS", "Column", "Printer"]

PRINTERS: dict[tuple[str, str], Printer] = {
    **core.PRINTERS,
    **apps.PRINTERS,
    **batch.PRINTERS,
    **autoscaling.PRINTERS,
    **networking.PRINTERS,
    **rbac.PRINTERS,
    **certificates.PRINTERS,
    **admissionregistration.PRINTERS,
    **coordination.PRINTERS,
    **policy.PRINTERS,
    **scheduling.PRINTERS,
    **storage.PRINTERS,
}
