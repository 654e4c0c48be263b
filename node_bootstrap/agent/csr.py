"""The kubelet's client-certificate requests: key, CSR object, and when to rotate.

Shapes follow upstream: a bootstrap request is named `node-csr-<digest>` after its key, subject
and usages (kubelet `bootstrap.digestedName`), so a restarted bootstrap finds its own request
again; a rotation request uses generateName `csr-` (the certificate manager's). The subject is
CN=system:node:<name>, O=system:nodes, the signer kubernetes.io/kube-apiserver-client-kubelet and
the usages those of an ECDSA key: digital signature and client auth.
"""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "KUBELET_SIGNER",
    "NODES_GROUP",
    "USAGES",
    "csr_object",
    "digested_name",
    "new_key",
    "node_user",
    "pem_request",
    "rotation_deadline",
]

KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODES_GROUP = "system:nodes"
USAGES = ("digital signature", "client auth")


def node_user(node_name: str) -> str:
    return f"system:node:{node_name}"


def new_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256, the kubelet's key type."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # SEC 1 ("EC PRIVATE KEY"), as the kubelet writes its keys.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def pem_request(key: ec.EllipticCurvePrivateKey, node_name: str) -> bytes:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name)),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def digested_name(key: ec.EllipticCurvePrivateKey, node_name: str) -> str:
    """Upstream's digestedName: the same key asking for the same thing gets the same name, so a
    restarted bootstrap picks up its pending request instead of piling up new ones."""
    digest = hashlib.new("sha512_256")

    def write(data: bytes) -> None:
        digest.update(_b64(data).encode() + b"|")

    write(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    write(node_user(node_name).encode())
    write(NODES_GROUP.encode())
    for usage in USAGES:
        write(usage.encode())
    return f"node-csr-{_b64(digest.digest())}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def csr_object(
    request_pem: bytes, *, name: str = "", generate_name: str = "", expiration_seconds: int | None = None
) -> dict[str, Any]:
    meta: dict[str, str] = {"name": name} if name else {"generateName": generate_name or "csr-"}
    spec: dict[str, Any] = {
        "request": base64.b64encode(request_pem).decode(),
        "signerName": KUBELET_SIGNER,
        "usages": list(USAGES),
    }
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": meta,
        "spec": spec,
    }


def rotation_deadline(
    not_before: datetime, not_after: datetime, rng: random.Random | None = None
) -> datetime:
    """Upstream's jittered deadline: somewhere in 70-90% of the certificate's lifetime."""
    fraction = 0.7 + 0.2 * (rng or random).random()
    return not_before + (not_after - not_before) * fraction
