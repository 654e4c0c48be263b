"""What every request handler shares: registry, object store, allocators, clock, settings."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controlplane.api.resources import Registry
from controlplane.apiserver.admission import Admission, default_admission
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage.interface import Storage

__all__ = ["ServerContext", "rfc3339", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Seconds precision with `Z`, as metav1.Time marshals."""
    global _last_formatted
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    second = moment.replace(microsecond=0)
    # A busy server stamps many objects within one second: format each second once.
    last_second, text = _last_formatted
    if second == last_second:
        return text
    text = second.strftime("%Y-%m-%dT%H:%M:%SZ")
    _last_formatted = (second, text)
    return text


_last_formatted: tuple[datetime | None, str] = (None, "")


@dataclass
class ServerContext:
    registry: Registry
    storage: Storage
    store: ObjectStore
    services: ServiceAllocation
    clock: Callable[[], datetime] = utcnow
    # Kubernetes sends a BOOKMARK about every minute; kopf drops watches silent for 70 s.
    bookmark_interval: float = 60.0
    # Watches without timeoutSeconds end after a random 30-60 min like upstream's --min-request-timeout.
    min_request_timeout: float = 1800.0
    garbage_collection: bool = True
    # The server passes its own chain. This default is for contexts built without a controller
    # manager, which would make every namespace's `default` ServiceAccount: like upstream's
    # integration test servers, they run without the ServiceAccount plugin.
    admission: Admission = field(default_factory=lambda: default_admission(disabled=("ServiceAccount",)))
    # TLS towards kubelets (pods/log): the apiserver's kubelet client certificate, no
    # verification of the kubelet's own (upstream without --kubelet-certificate-authority).
    kubelet_tls: ssl.SSLContext | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def now(self) -> str:
        return rfc3339(self.clock())
