"""The CSR cleaner: upstream's deletion rules (which timestamp each uses, its threshold, strict
comparisons) and the periodic sweep driven by the controller's clock."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.csrcleaner import (
    POLLING_INTERVAL,
    SWEEP_KEY,
    CSRCleanerController,
    cleanup_reason,
)
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    rfc3339,
)
from tests.unit.rbac.bootstrap_resolver import bootstrap_policy_allows

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(not_after: datetime) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(not_after - timedelta(days=1))
        .not_valid_after(not_after)
        .sign(_KEY, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def cond(kind: str, updated: datetime | None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "status": "True", "reason": "Test"}
    if updated is not None:
        c["lastUpdateTime"] = rfc3339(updated)
    return c


def csr(
    name: str,
    *,
    created: datetime = T0,
    conditions: list[dict[str, Any]] | None = None,
    cert: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if conditions:
        status["conditions"] = conditions
    if cert is not None:
        status["certificate"] = cert
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(created),
        },
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet"},
        "status": status,
    }


HOUR = timedelta(hours=1)
SEC = timedelta(seconds=1)
VALID = certificate(T0 + 365 * 24 * HOUR)
EXPIRED = certificate(T0 - SEC)


def test_pending_goes_after_24_hours_from_creation() -> None:
    assert cleanup_reason(csr("p", created=T0 - 24 * HOUR), T0) is None  # strictly older
    assert cleanup_reason(csr("p", created=T0 - 24 * HOUR - SEC), T0) == (
        "it is more than pendingExpiration duration old and unhandled"
    )
    # Pending means no conditions at all, however old the request.
    odd = csr("p", created=T0 - 48 * HOUR, conditions=[{"type": "Approved", "status": "True"}])
    assert cleanup_reason(odd, T0) is None


def test_denied_and_failed_go_an_hour_after_the_condition_update() -> None:
    old = T0 - HOUR - SEC
    assert cleanup_reason(csr("d", conditions=[cond("Denied", T0 - HOUR)]), T0) is None
    assert "denied" in str(cleanup_reason(csr("d", conditions=[cond("Denied", old)]), T0))
    assert "failed" in str(cleanup_reason(csr("f", conditions=[cond("Failed", old)]), T0))
    # The creation time does not count for them; a condition without lastUpdateTime never ages.
    fresh = csr("d", created=T0 - 100 * HOUR, conditions=[cond("Denied", T0)])
    assert cleanup_reason(fresh, T0) is None
    assert cleanup_reason(csr("d", created=T0 - 100 * HOUR, conditions=[cond("Denied", None)]), T0) is None


def test_approved_goes_an_hour_after_approval_only_once_issued() -> None:
    old = [cond("Approved", T0 - HOUR - SEC)]
    assert cleanup_reason(csr("a", conditions=old), T0) is None  # approved, never issued: kept
    assert cleanup_reason(csr("a", conditions=old, cert=VALID), T0) == (
        "it is more than approvedExpiration duration old and approved"
    )
    assert cleanup_reason(csr("a", conditions=[cond("Approved", T0 - HOUR)], cert=VALID), T0) is None


def test_issued_goes_once_its_certificate_expired() -> None:
    recent = [cond("Approved", T0 - 60 * SEC)]
    assert cleanup_reason(csr("i", conditions=recent, cert=VALID), T0) is None
    assert (
        cleanup_reason(csr("i", conditions=recent, cert=EXPIRED), T0)
        == "the associated certificate is expired"
    )
    at_not_after = certificate(T0)  # time.Now().After(NotAfter) is strict
    assert cleanup_reason(csr("i", conditions=recent, cert=at_not_after), T0) is None
    # Without an Approved condition, or with a certificate that does not parse: kept.
    assert cleanup_reason(csr("i", conditions=[cond("Denied", T0)], cert=EXPIRED), T0) is None
    garbage = base64.b64encode(b"not a certificate").decode()
    assert cleanup_reason(csr("i", conditions=recent, cert=garbage), T0) is None


class FakeClient:
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.fail: set[str] = set()

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> None:
        assert rp.plural == "certificatesigningrequests" and namespace is None
        if name in self.fail:
            raise errors.InternalError(message="etcd is sad")
        self.deleted.append(name)


def _cleaner(client: FakeClient, clock: FakeClock, **extra: Any) -> CSRCleanerController:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("test"),  # type: ignore[arg-type]
        clock=clock,
        config=ControllerConfig(extra=extra),
    )
    return CSRCleanerController(ctx)


async def _settle() -> None:
    # A few loop turns: the woken sleeper, then run_delays moving the key into the queue.
    for _ in range(10):
        await asyncio.sleep(0)


async def _drain(cleaner: CSRCleanerController) -> None:
    """Process every key that is ready now, as the workers would."""
    await _settle()
    while len(cleaner.queue):
        key = await cleaner.queue.get()
        try:
            await cleaner.process(key)
        finally:
            cleaner.queue.done(key)
        await _settle()


async def test_sweeps_at_start_and_then_every_period_on_the_clock() -> None:
    client, clock = FakeClient(), FakeClock(T0)
    cleaner = _cleaner(client, clock)
    assert cleaner.period == POLLING_INTERVAL == 3600.0
    cleaner.csrs.apply("ADDED", csr("stale", created=T0 - 25 * HOUR))
    cleaner.csrs.apply("ADDED", csr("young", created=T0 - 23 * HOUR))
    cleaner.csrs.apply("ADDED", csr("broken", conditions=[cond("Denied", T0 - 2 * HOUR)]))
    cleaner.csrs.apply("ADDED", csr("kept", created=T0 - HOUR))
    client.fail.add("broken")
    assert list(cleaner.queue._queue) == [SWEEP_KEY]

    delays = asyncio.create_task(cleaner.queue.run_delays())
    try:
        await _drain(cleaner)
        assert client.deleted == ["stale"]  # a failed delete does not stop the pass
        cleaner.csrs.apply("DELETED", csr("stale"))
        client.fail.clear()

        clock.advance(3599)  # "young" turns 24h+ old only at T0 + 1h + 1s
        await _drain(cleaner)
        assert client.deleted == ["stale"]
        clock.advance(2)
        await _drain(cleaner)
        assert sorted(client.deleted) == ["broken", "stale", "young"]
    finally:
        cleaner.queue.shutdown()
        await delays


async def test_period_is_injectable() -> None:
    client, clock = FakeClient(), FakeClock(T0)
    cleaner = _cleaner(client, clock, csr_cleaner_polling_interval=5.0)
    await cleaner.process(SWEEP_KEY)
    assert [due for due, _, key in cleaner.queue._waiting if key == SWEEP_KEY] == [clock.monotonic() + 5.0]


def _controller_manager_may(
    verb: str, resource: str, group: str = "", *, ns: str = "", name: str = ""
) -> bool:
    """The controller manager's identity runs this controller in `pinnace server`."""
    return bootstrap_policy_allows("system:kube-controller-manager", verb, resource, group, ns=ns, name=name)


def test_controller_manager_may_list_watch_and_delete_csrs() -> None:
    for verb in ("list", "watch", "delete"):
        assert _controller_manager_may(
            verb, "certificatesigningrequests", "certificates.k8s.io", name="x" if verb == "delete" else ""
        )
