"""CSR cleaner (upstream pkg/controller/certificates/cleaner/cleaner.go): with kubelets requesting
and approvers approving certificates unattended, CertificateSigningRequests pile up; every polling
interval (an hour upstream) this deletes those that are done with:

- approved and issued, approved more than an hour ago (the condition's lastUpdateTime);
- denied or failed more than an hour ago (lastUpdateTime);
- pending (no conditions at all) and created more than 24 hours ago;
- approved and issued with a certificate whose NotAfter has passed.

A condition without lastUpdateTime never counts as old, as upstream's zero metav1.Time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from controlplane.api import certificates as certapi
from controlplane.api import errors
from controlplane.controllers.csrsigning import CSRS
from controlplane.controllers.podutil import parse_time
from controlplane.controllers.runtime import Controller

__all__ = [
    "APPROVED_EXPIRATION",
    "DENIED_EXPIRATION",
    "PENDING_EXPIRATION",
    "POLLING_INTERVAL",
    "CSRCleanerController",
    "cleanup_reason",
]

Obj = Mapping[str, Any]

POLLING_INTERVAL = 3600.0
APPROVED_EXPIRATION = timedelta(hours=1)
DENIED_EXPIRATION = timedelta(hours=1)
PENDING_EXPIRATION = timedelta(hours=24)
# The one key of the queue: the sweep is periodic, not per object (upstream's wait.Until loop).
SWEEP_KEY = "csrcleaner"


def _is_older_than(value: Any, age: timedelta, now: datetime) -> bool:
    """isOlderThan: a set time more than `age` before now."""
    if not isinstance(value, str) or not value:
        return False
    try:
        moment = parse_time(value)
    except ValueError:
        return False
    return moment is not None and now - moment > age


def _conditions(csr: Obj) -> list[Mapping[str, Any]]:
    return [c for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, Mapping)]


def _is_issued(csr: Obj) -> bool:
    return bool((csr.get("status") or {}).get("certificate"))


def _is_expired(csr: Obj, now: datetime) -> bool:
    """isExpired: the first certificate of status.certificate is past its NotAfter; a certificate
    that does not parse is not."""
    pem = certapi.decode_bytes((csr.get("status") or {}).get("certificate"))
    if not pem:
        return False
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    return now > cert.not_valid_after_utc


def cleanup_reason(csr: Obj, now: datetime) -> str | None:
    """Why the CSR is to go (upstream's log line), or None to keep it; the checks in upstream's order."""
    conditions = _conditions(csr)
    issued = _is_issued(csr)
    for cond in conditions:
        if (
            cond.get("type") == certapi.APPROVED
            and issued
            and _is_older_than(cond.get("lastUpdateTime"), APPROVED_EXPIRATION, now)
        ):
            return "it is more than approvedExpiration duration old and approved"
    for cond in conditions:
        if cond.get("type") == certapi.DENIED and _is_older_than(
            cond.get("lastUpdateTime"), DENIED_EXPIRATION, now
        ):
            return "it is more than deniedExpiration duration old and denied"
    for cond in conditions:
        if cond.get("type") == certapi.FAILED and _is_older_than(
            cond.get("lastUpdateTime"), DENIED_EXPIRATION, now
        ):
            return "it is more than deniedExpiration duration old and failed"
    created = (csr.get("metadata") or {}).get("creationTimestamp")
    if not conditions and _is_older_than(created, PENDING_EXPIRATION, now):
        return "it is more than pendingExpiration duration old and unhandled"
    if issued and any(c.get("type") == certapi.APPROVED for c in conditions) and _is_expired(csr, now):
        return "the associated certificate is expired"
    return None


class CSRCleanerController(Controller):
    name = "csrcleaner"
    event_source = "certificate-controller"
    workers = 1

    def setup(self) -> None:
        self.csrs = self.ctx.informers.informer(CSRS)
        # Injectable for tests and small clusters; upstream's pollingInterval is fixed.
        self.period = float(self.ctx.config.extra.get("csr_cleaner_polling_interval", POLLING_INTERVAL))
        self.enqueue(SWEEP_KEY)

    async def reconcile(self, key: str) -> float | None:
        await self.sweep()
        return self.period

    async def sweep(self) -> None:
        """One pass over the cache; a failed delete is logged and retried on the next pass."""
        now = self.ctx.clock.now()
        for csr in self.csrs.list():
            reason = cleanup_reason(csr, now)
            if reason is None:
                continue
            name = str(csr["metadata"]["name"])
            self.log.info("Cleaning CSR %s as %s", name, reason)
            try:
                await self.ctx.client.delete(CSRS, name)
            except errors.NotFound:
                pass
            except (errors.StatusError, OSError, TimeoutError) as exc:
                self.log.warning("unable to delete CSR %s: %s", name, exc)
