"""Printer for `certificates.k8s.io` certificate signing requests (upstream `printCertificateSigningRequest`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.api.durations import human_duration
from controlplane.api.printers.common import (
    AGE,
    NAME,
    Column,
    Doc,
    Printer,
    age,
    as_int,
    as_str,
    dig,
    maps,
    name,
)

__all__ = ["PRINTERS", "csr_condition"]


def csr_condition(obj: Mapping[str, Any]) -> str:
    """`extractCSRStatus`: Denied over Approved over Pending, then ",Failed" and ",Issued"."""
    kinds = {as_str(c.get("type")) for c in maps(dig(obj, "status", "conditions"))}
    status = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        status += ",Failed"
    if as_str(dig(obj, "status", "certificate")):
        status += ",Issued"
    return status


def _csr_row(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    expiration = dig(obj, "spec", "expirationSeconds")
    return [
        name(obj),
        age(obj, now),
        as_str(dig(obj, "spec", "signerName")) or "<none>",
        as_str(dig(obj, "spec", "username")),
        "<none>" if expiration is None else human_duration(as_int(expiration)),
        csr_condition(obj),
    ]


_CSR = Printer(
    (
        NAME,
        AGE,
        Column("SignerName", description=Doc("certificates.v1.CertificateSigningRequestSpec", "signerName")),
        Column("Requestor", description=Doc("certificates.v1.CertificateSigningRequestSpec", "request")),
        Column(
            "RequestedDuration",
            description=Doc("certificates.v1.CertificateSigningRequestSpec", "expirationSeconds"),
        ),
        Column("Condition", description=Doc("certificates.v1.CertificateSigningRequestStatus", "conditions")),
    ),
    _csr_row,
)

PRINTERS: dict[tuple[str, str], Printer] = {("certificates.k8s.io", "certificatesigningrequests"): _CSR}
