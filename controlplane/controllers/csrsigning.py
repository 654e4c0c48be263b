"""The CSR signing controller (upstream `csrsigning`, pkg/controller/certificates/signer): issues
certificates with the cluster CA for approved CertificateSigningRequests of the
`kubernetes.io/kube-apiserver-client`, `kubernetes.io/kube-apiserver-client-kubelet` and
`kubernetes.io/kubelet-serving` signers, after checking each request fits its signer. A request
that does not gets a `Failed` condition (reason `SignerValidationFailure`) instead; requests for
other signers are left to their own signers.

The CA comes from files, as kube-controller-manager's `--cluster-signing-cert-file` and
`--cluster-signing-key-file` (ControllerConfig.extra `cluster_signing_cert_file` and
`cluster_signing_key_file`); `cluster_signing_duration` (seconds, default one year) caps each
certificate's lifetime. Without a CA the controller watches and does nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from controlplane.api import certificates as certapi
from controlplane.client import ResourcePath
from controlplane.controllers.csrsigning_authority import (
    CertificateAuthority,
    load_authority,
    signing_duration,
)
from controlplane.controllers.runtime import Controller, rfc3339

__all__ = ["CSRS", "DEFAULT_SIGNING_DURATION", "CSRSigningController", "signer_check"]

CSRS = ResourcePath("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
DEFAULT_SIGNING_DURATION = timedelta(days=365)
_RETRY_SECONDS = 60.0

_Check = Callable[[certapi.ParsedCSR, Sequence[str]], None]


def _api_server_client(_parsed: certapi.ParsedCSR, usages: Sequence[str]) -> None:
    """validAPIServerClientUsages: client auth, optionally digital signature and key encipherment."""
    has_client_auth = False
    for usage in usages:
        if usage in ("digital signature", "key encipherment"):
            continue
        if usage == "client auth":
            has_client_auth = True
            continue
        raise certapi.CSRError(f"invalid usage for client certificate: {usage}")
    if not has_client_auth:
        raise certapi.CSRError("missing required usage for client certificate: client auth")


_CHECKS: dict[str, _Check] = {
    certapi.KUBELET_SERVING: certapi.validate_kubelet_serving,
    certapi.KUBE_APISERVER_CLIENT_KUBELET: certapi.validate_kubelet_client,
    certapi.KUBE_APISERVER_CLIENT: _api_server_client,
}


def signer_check(signer_name: str) -> _Check | None:
    """The request check of a signer this controller serves, or None for any other signer."""
    return _CHECKS.get(signer_name)


def _usages(csr: dict[str, Any]) -> list[str]:
    return [str(u) for u in (csr.get("spec") or {}).get("usages") or []]


class CSRSigningController(Controller):
    name = "csrsigning"
    event_source = "certificate-controller"

    def setup(self) -> None:
        self.csrs = self.ctx.informers.informer(CSRS)
        self.csrs.add_handler(self._on_csr)
        extra = self.ctx.config.extra
        seconds = extra.get("cluster_signing_duration")
        self.duration = (
            timedelta(seconds=float(seconds))
            if isinstance(seconds, int | float) and seconds > 0
            else DEFAULT_SIGNING_DURATION
        )
        self.authority: CertificateAuthority | None = None
        cert_file, key_file = extra.get("cluster_signing_cert_file"), extra.get("cluster_signing_key_file")
        if cert_file and key_file:
            try:
                self.authority = load_authority(Path(str(cert_file)), Path(str(key_file)))
            except (OSError, ValueError) as exc:
                self.log.warning("cannot load the cluster signing CA; not signing: %s", exc)
        else:
            self.log.info("no --cluster-signing-cert-file/--cluster-signing-key-file; not signing")

    def _on_csr(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None and self.authority is not None:
            self.enqueue_obj(new)

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or self.authority is None:
            return None
        status = csr.get("status") or {}
        if status.get("certificate"):
            return None
        approved, denied = certapi.approval_state(csr)
        if not approved or denied or certapi.has_true_condition(csr, certapi.FAILED):
            return None
        spec = csr.get("spec") or {}
        check = signer_check(str(spec.get("signerName") or ""))
        if check is None:
            return None
        try:
            parsed = certapi.parse_csr(certapi.decode_bytes(spec.get("request")))
        except certapi.CSRError as exc:
            self.log.warning("unable to parse csr %s: %s", key, exc)
            return None
        usages = _usages(csr)
        updated = dict(csr)
        try:
            check(parsed, usages)
        except certapi.CSRError as exc:
            updated["status"] = {
                **status,
                "conditions": [
                    *(status.get("conditions") or []),
                    {
                        "type": certapi.FAILED,
                        "status": "True",
                        "reason": "SignerValidationFailure",
                        "message": str(exc),
                        "lastUpdateTime": rfc3339(self.ctx.clock.now()),
                    },
                ],
            }
            self.log.info("not signing %s: %s", key, exc)
            await self._update_status(updated)
            return None
        expiration = spec.get("expirationSeconds")
        duration = signing_duration(
            self.duration,
            expiration if isinstance(expiration, int) and not isinstance(expiration, bool) else None,
        )
        try:
            pem = self.authority.sign(parsed, usages, duration, self.ctx.clock.now())
        except certapi.CSRError as exc:
            self.log.warning("error auto signing csr %s: %s", key, exc)
            return _RETRY_SECONDS
        updated["status"] = {**status, "certificate": base64.b64encode(pem).decode()}
        await self._update_status(updated)
        self.log.info("signed %s for %s", key, parsed.common_name)
        return None

    async def _update_status(self, csr: dict[str, Any]) -> None:
        name = csr["metadata"]["name"]
        await self.ctx.client.request("PUT", CSRS.url(None, name, "status"), body=csr)
