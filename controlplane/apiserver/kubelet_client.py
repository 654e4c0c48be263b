"""How the API server reaches a node's kubelet: its client certificate, its TLS settings and the
address and port it dials (upstream's kubelet ConnectionInfoGetter)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from controlplane.api import errors
from controlplane.apiserver import pki

__all__ = [
    "CLIENT_COMMON_NAME",
    "CLIENT_GROUP",
    "DEFAULT_KUBELET_PORT",
    "PREFERRED_ADDRESS_TYPES",
    "UnknownError",
    "ensure_client_cert",
    "kubelet_address",
    "ssl_context",
]

# kubeadm's names: the certificate kube-apiserver presents to kubelets.
CLIENT_COMMON_NAME = "kube-apiserver-kubelet-client"
CLIENT_GROUP = "system:masters"
CERT_FILE = "apiserver-kubelet-client.crt"
KEY_FILE = "apiserver-kubelet-client.key"

DEFAULT_KUBELET_PORT = 10250
# kubeadm's --kubelet-preferred-address-types: node names need not resolve, addresses do.
PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")


class UnknownError(errors.StatusError):
    """A failure upstream reports as a bare error: a 500 Status without a reason, e.g.
    `Get "https://10.0.0.5:10250/containerLogs/...": dial tcp ...: connect: connection refused`."""

    code = 500
    reason = ""


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _fits(cert_path: Path, key_path: Path, ca_path: Path, now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    groups = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (
        _public_der(cert.public_key()) == _public_der(key.public_key())
        and bool(names)
        and names[0].value == CLIENT_COMMON_NAME
        and groups == [CLIENT_GROUP]
        and now + pki.RENEW_BEFORE < cert.not_valid_after_utc
    )


def ensure_client_cert(credentials: pki.PKI, *, now: datetime | None = None) -> tuple[Path, Path]:
    """The API server's kubelet client certificate and key under the PKI directory, issued by the
    cluster CA (CN kube-apiserver-kubelet-client, O system:masters) unless a fitting one exists."""
    now = now or datetime.now(UTC)
    pki_dir = credentials.ca_cert.parent
    cert_path, key_path = pki_dir / CERT_FILE, pki_dir / KEY_FILE
    if not _fits(cert_path, key_path, credentials.ca_cert, now):
        cert_pem, key_pem = pki.issue_client_cert(credentials, CLIENT_COMMON_NAME, [CLIENT_GROUP], now=now)
        # Key first: a crash between the writes leaves a mismatched pair the next start re-issues.
        pki.write_private_file(key_path, key_pem)
        pki.write_private_file(cert_path, cert_pem)
    return cert_path, key_path


def ssl_context(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Client TLS towards kubelets: present our certificate, do not verify theirs (upstream's
    behaviour without --kubelet-certificate-authority; kubelets serve self-signed certificates)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def kubelet_address(node: dict[str, Any]) -> tuple[str, int]:
    """(host, port) of the node's kubelet: the first address of the preferred types, and the
    port the kubelet reported (10250 when it reported none)."""
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]
    host = ""
    for wanted in PREFERRED_ADDRESS_TYPES:
        host = next(
            (str(a.get("address")) for a in addresses if a.get("type") == wanted and a.get("address")), ""
        )
        if host:
            break
    if not host:
        known = " ".join(f"{{{a.get('type', '')} {a.get('address', '')}}}" for a in addresses)
        raise UnknownError(message=f"no preferred addresses found; known addresses: [{known}]")
    endpoint = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint")) or {}
    port = endpoint.get("Port")
    if not isinstance(port, int) or isinstance(port, bool) or port <= 0:
        port = DEFAULT_KUBELET_PORT
    return host, port
