"""PKCS#10 requests and CSR objects for the certificate tests."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from controlplane.controllers.csrsigning_authority import CertificateAuthority

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def csr_pem(
    cn: str,
    orgs: Sequence[str] = (),
    *,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    emails: Sequence[str] = (),
    rsa_key: bool = False,
) -> bytes:
    key: Any = rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    names += [x509.RFC822Name(e) for e in emails]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr_object(
    pem: bytes,
    signer: str = "kubernetes.io/kube-apiserver-client",
    usages: Sequence[str] = ("client auth",),
    *,
    name: str = "csr-1",
    username: str = "",
    conditions: Sequence[dict[str, Any]] = (),
    certificate: str = "",
    expiration: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"request": b64(pem), "signerName": signer, "usages": list(usages)}
    if username:
        spec["username"] = username
        spec["groups"] = ["system:authenticated"]
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    status: dict[str, Any] = {}
    if conditions:
        status["conditions"] = [dict(c) for c in conditions]
    if certificate:
        status["certificate"] = certificate
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "5"},
        "spec": spec,
        "status": status,
    }


def approved(message: str = "ok") -> dict[str, Any]:
    return {"type": "Approved", "status": "True", "reason": "Test", "message": message}


def make_ca(now: datetime = T0) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)
