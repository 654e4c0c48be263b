"""TLS for the agent's kubelet endpoint: a self-signed serving certificate, client CAs.

As the kubelet does without --tls-cert-file, the agent makes its own CA ("<host>-ca@<time>")
and a serving certificate it signs ("<host>@<time>"), kept under the data directory when there
is one (`pki/kubelet.crt` holds the serving certificate followed by that CA, `pki/kubelet.key`
its key) and otherwise only in memory. Clients must present a certificate the cluster CA
signed: the API server's kubelet client certificate, or an admin's.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ca_from_kubeconfig",
    "load_or_create_serving_cert",
    "self_signed_serving_cert",
    "server_ssl_context",
]

VALIDITY = timedelta(days=365)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sans(dns_names: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    general.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips))
    return general


def self_signed_serving_cert(
    host: str, dns_names: Sequence[str], ips: Sequence[str], now: datetime | None = None
) -> tuple[bytes, bytes]:
    """(PEM of the serving certificate followed by its CA, PEM of the serving key)."""
    now = now or datetime.now(UTC)
    stamp = int(now.timestamp())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{host}-ca@{stamp}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{host}@{stamp}"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(_sans(dns_names, ips)), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key_pem


def _covers(cert_pem: bytes, dns_names: Sequence[str], ips: Sequence[str], now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_dns = set(names.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    fresh = cert.not_valid_after_utc - now > timedelta(days=30)
    return fresh and set(dns_names) <= have_dns and {str(ipaddress.ip_address(i)) for i in ips} <= have_ips


def load_or_create_serving_cert(
    data_dir: Path | None,
    host: str,
    dns_names: Sequence[str],
    ips: Sequence[str],
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """The serving certificate under `data_dir/pki` if it still fits, else a new one (saved there)."""
    now = now or datetime.now(UTC)
    if data_dir is not None:
        cert_path, key_path = data_dir / "pki" / "kubelet.crt", data_dir / "pki" / "kubelet.key"
        if cert_path.exists() and key_path.exists():
            cert_pem = cert_path.read_bytes()
            if _covers(cert_pem, dns_names, ips, now):
                return cert_pem, key_path.read_bytes()
    cert_pem, key_pem = self_signed_serving_cert(host, dns_names, ips, now)
    if data_dir is not None:
        pki = data_dir / "pki"
        pki.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(pki, 0o700)
        cert_path.write_bytes(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
    return cert_pem, key_pem


def ca_from_kubeconfig(path: Path, context: str = "") -> bytes | None:
    """The cluster CA a kubeconfig trusts (embedded or by file), as PEM."""
    doc = yaml.safe_load(path.read_text()) or {}
    ctx_name = context or doc.get("current-context", "")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == ctx_name), None)
    if ctx is None:
        return None
    cluster = next(
        (c["cluster"] for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")), None
    )
    if cluster is None:
        return None
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    if cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = path.parent / ca_path
        return ca_path.read_bytes()
    return None


def server_ssl_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes) -> ssl.SSLContext:
    """TLS 1.2+ serving context that requires a client certificate signed by `client_ca_pem`."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=client_ca_pem.decode())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    # ssl loads key material only from files: a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_path.write_bytes(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx
