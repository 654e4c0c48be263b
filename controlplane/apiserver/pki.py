"""The cluster's PKI: a CA, the API server's serving certificate and the admin credential.

`ensure_pki` is what `pinnace server` calls on every start. The first start creates, under a
0700 directory, a cluster CA (10 years), a serving certificate (1 year, serverAuth) and an admin
client certificate (1 year, clientAuth, CN `kubernetes-admin`, O `system:masters`), with the
file names kubeadm uses. Later starts reuse them byte for byte; a leaf is re-issued only when it
no longer fits: the requested SANs changed, it is within `RENEW_BEFORE` of expiry, its key does
not match, or it was not issued by the current CA. The CA itself is never replaced once a
certificate exists for it (every node and kubeconfig pins it): a CA certificate without its key
is an error, not a reason to start over.

Keys are ECDSA P-256. kubeadm defaults to RSA 2048 but supports ECDSA-P256 as well; P-256 keys
are generated in about a millisecond instead of tens to hundreds (this matters for test suites
and for every node that joins through a CSR), are smaller on the wire, and are accepted by every
client we care about: Go's crypto/tls (kubectl, kubelet), OpenSSL (Python's ssl, urllib3,
aiohttp). An RSA or EC CA brought from elsewhere (e.g. a kubeadm CA) is also accepted for signing.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over the
target, so a crash leaves either the old file or the new one, never half a key. Keys are written
before their certificates; a crash between the two leaves a mismatched pair that the next start
detects and re-issues. Files are 0600, directories 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "CA_VALIDITY",
    "LEAF_VALIDITY",
    "PKI",
    "RENEW_BEFORE",
    "PKIError",
    "client_ssl_context",
    "ensure_pki",
    "ensure_private_dir",
    "issue_client_cert",
    "public_key_hash",
    "server_ssl_context",
    "serving_sans",
    "sign_csr",
    "write_private_file",
]

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
SERVING_COMMON_NAME = "kube-apiserver"

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Certificates start a little in the past so a peer whose clock runs slightly behind ours does
# not reject a certificate issued a second ago as "not yet valid".
BACKDATE = timedelta(minutes=5)

# Names every API server answers to: loopback for the laptop case, and the in-cluster names of
# the `kubernetes` Service that pods use (kubeadm puts the same ones in its serving cert).
DEFAULT_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
DEFAULT_IPS = ("127.0.0.1", "::1")

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class PKIError(Exception):
    """The PKI directory is in a state we refuse to repair automatically."""


@dataclass(frozen=True)
class PKI:
    """Where the cluster's certificates and keys live."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path

    @classmethod
    def at(cls, pki_dir: Path) -> PKI:
        """The standard layout under `pki_dir` (kubeadm's file names)."""
        return cls(
            ca_cert=pki_dir / "ca.crt",
            ca_key=pki_dir / "ca.key",
            serving_cert=pki_dir / "apiserver.crt",
            serving_key=pki_dir / "apiserver.key",
            admin_cert=pki_dir / "admin.crt",
            admin_key=pki_dir / "admin.key",
        )

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    def ca_public_key_hash(self) -> str:
        """`sha256:<hex>` of the CA's SubjectPublicKeyInfo: kubeadm's discovery-token-ca-cert-hash."""
        return public_key_hash(x509.load_pem_x509_certificate(self.ca_pem()))


def public_key_hash(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


# --- files -------------------------------------------------------------------------------------


def ensure_private_dir(path: Path) -> None:
    """Create `path` and any missing parents as 0700 and make `path` itself 0700."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    # mkdir's mode is filtered by the umask, and a pre-existing directory may be wider.
    os.chmod(path, 0o700)


def write_private_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace `path` with `data` (temp file, fsync, rename, fsync the directory)."""
    ensure_private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- certificate building (pure) ---------------------------------------------------------------


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: _SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(key: x509.Certificate | _SigningKey) -> bytes:
    public = key.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _make_ca(cluster_name: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    subject = _name(f"{cluster_name}-ca")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _sign_leaf(
    ca_cert: x509.Certificate,
    ca_key: _SigningKey,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    subject: x509.Name,
    *,
    usages: Sequence[x509.ObjectIdentifier],
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[_IPAddress] = (),
    validity: timedelta,
    now: datetime,
) -> x509.Certificate:
    # A leaf never outlives its issuer: clients would reject the chain past the CA's end anyway.
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA key exchange needs keyEncipherment; for EC keys it would be meaningless.
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if dns_names or ip_addresses:
        general: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        general.extend(x509.IPAddress(ip) for ip in ip_addresses)
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def serving_sans(hostnames: Sequence[str], ips: Sequence[str]) -> tuple[list[str], list[_IPAddress]]:
    """The serving certificate's SANs: the defaults, this host's name, and what was asked for.

    IP literals given as hostnames are moved to the IP list, so one `--tls-san` flag can take both.
    Returns sorted, de-duplicated lists so two equal requests always compare equal.
    """
    dns: set[str] = set(DEFAULT_DNS_NAMES)
    addrs: set[_IPAddress] = {ipaddress.ip_address(ip) for ip in DEFAULT_IPS}
    local = socket.gethostname().strip().lower().rstrip(".")
    # A host name that cannot be a DNS SAN (non-ASCII) must not stop the server from starting.
    if local and local.isascii():
        dns.add(local)
    for name in hostnames:
        cleaned = name.strip().lower().rstrip(".")
        if not cleaned:
            continue
        try:
            addrs.add(ipaddress.ip_address(cleaned))
        except ValueError:
            if not cleaned.isascii():
                raise ValueError(
                    f"serving certificate host names must be ASCII (IDNA A-labels): {name!r}"
                ) from None
            dns.add(cleaned)
    for ip in ips:
        try:
            addrs.add(ipaddress.ip_address(ip.strip()))
        except ValueError as exc:
            raise ValueError(f"invalid IP address for the serving certificate: {ip!r}") from exc
    return sorted(dns), sorted(addrs, key=lambda a: (a.version, int(a)))


def _cert_sans(cert: x509.Certificate) -> tuple[list[str], list[_IPAddress]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = sorted(ext.get_values_for_type(x509.DNSName))
    addrs = [
        a
        for a in ext.get_values_for_type(x509.IPAddress)
        if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    return dns, sorted(addrs, key=lambda a: (a.version, int(a)))


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _leaf_fits(
    cert: x509.Certificate,
    key: _SigningKey,
    ca_cert: x509.Certificate,
    now: datetime,
    sans: tuple[list[str], list[_IPAddress]] | None,
) -> bool:
    return (
        _spki(cert) == _spki(key)
        and _issued_by(cert, ca_cert)
        and cert.not_valid_before_utc <= now
        and now + RENEW_BEFORE < cert.not_valid_after_utc
        and (sans is None or _cert_sans(cert) == sans)
    )


# --- loading -----------------------------------------------------------------------------------


def _load_key(path: Path) -> _SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path}: unsupported key type {type(key).__name__} (want RSA or ECDSA)")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_ca(pki: PKI) -> tuple[x509.Certificate, _SigningKey]:
    try:
        cert, key = _load_cert(pki.ca_cert), _load_key(pki.ca_key)
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot load the cluster CA from {pki.ca_cert} and {pki.ca_key}: {exc}") from exc
    if _spki(cert) != _spki(key):
        raise PKIError(f"{pki.ca_key} does not match {pki.ca_cert}")
    return cert, key


def _load_leaf(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, _SigningKey] | None:
    """The pair, or None when either is missing or unreadable: a leaf is ours to re-issue."""
    try:
        return _load_cert(cert_path), _load_key(key_path)
    except (OSError, ValueError, PKIError):
        return None


# --- the IO shell --------------------------------------------------------------------------------


def _ensure_ca(pki: PKI, cluster_name: str, now: datetime) -> tuple[x509.Certificate, _SigningKey]:
    if pki.ca_cert.exists():
        if not pki.ca_key.exists():
            raise PKIError(
                f"{pki.ca_cert} exists but {pki.ca_key} does not; refusing to replace the cluster CA"
            )
        return _load_ca(pki)
    # No CA certificate means nothing can have been issued by it (a key alone is what a crash
    # between the two writes leaves behind), so starting over is safe.
    cert, key = _make_ca(cluster_name, now)
    write_private_file(pki.ca_key, _key_pem(key))
    write_private_file(pki.ca_cert, _cert_pem(cert))
    return cert, key


def _ensure_leaf(
    cert_path: Path,
    key_path: Path,
    ca: tuple[x509.Certificate, _SigningKey],
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    sans: tuple[list[str], list[_IPAddress]] | None,
    now: datetime,
) -> None:
    ca_cert, ca_key = ca
    existing = _load_leaf(cert_path, key_path)
    if existing is not None and _leaf_fits(existing[0], existing[1], ca_cert, now, sans):
        return
    key = _new_key()
    dns, addrs = sans if sans is not None else ([], [])
    cert = _sign_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        subject,
        usages=[usage],
        dns_names=dns,
        ip_addresses=addrs,
        validity=LEAF_VALIDITY,
        now=now,
    )
    write_private_file(key_path, _key_pem(key))
    write_private_file(cert_path, _cert_pem(cert))


def ensure_pki(
    pki_dir: Path,
    *,
    hostnames: Sequence[str],
    ips: Sequence[str],
    cluster_name: str = "pinnace",
    now: datetime | None = None,
) -> PKI:
    """Create or reuse the PKI under `pki_dir`; see the module docstring for the rules."""
    now = now or datetime.now(UTC)
    ensure_private_dir(pki_dir)
    pki = PKI.at(pki_dir)
    ca = _ensure_ca(pki, cluster_name, now)
    _ensure_leaf(
        pki.serving_cert,
        pki.serving_key,
        ca,
        _name(SERVING_COMMON_NAME),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=serving_sans(hostnames, ips),
        now=now,
    )
    _ensure_leaf(
        pki.admin_cert,
        pki.admin_key,
        ca,
        _name(ADMIN_USER, [ADMIN_GROUP]),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=None,
        now=now,
    )
    # Files restored from a backup or copied by hand may be wider than they should be.
    for path in (pki.ca_key, pki.serving_key, pki.admin_key, pki.ca_cert, pki.serving_cert, pki.admin_cert):
        os.chmod(path, 0o600)
    return pki


def issue_client_cert(
    pki: PKI,
    common_name: str,
    organizations: Sequence[str],
    *,
    days: int = 365,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A new client certificate (CN = user, O = groups) and its key, both PEM."""
    now = now or datetime.now(UTC)
    ca_cert, ca_key = _load_ca(pki)
    key = _new_key()
    cert = _sign_leaf(
        ca_cert,
        ca_key,
        key.public_key(),
        _name(common_name, organizations),
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        validity=timedelta(days=days),
        now=now,
    )
    return _cert_pem(cert), _key_pem(key)


def sign_csr(
    pki: PKI,
    csr_pem: bytes,
    *,
    server_auth: bool = False,
    client_auth: bool = True,
    days: int = 365,
    now: datetime | None = None,
) -> bytes:
    """Sign a PKCS#10 request with the cluster CA, keeping its subject and SANs (upstream's signer).

    Whether the request may be signed (who asked, for which name) is the caller's decision; this
    only checks that the request is well formed and signed by the key it carries.
    """
    now = now or datetime.now(UTC)
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the certificate signing request's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError(  # noqa: TRY004 - a malformed request is bad input, not a caller's type bug
            f"unsupported key type in the certificate signing request: {type(public_key).__name__}"
        )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_auth else []
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if not usages:
        raise ValueError("a certificate needs at least one of server auth and client auth")
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = list(requested.get_values_for_type(x509.DNSName))
        addrs = [
            a
            for a in requested.get_values_for_type(x509.IPAddress)
            if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
        ]
    except x509.ExtensionNotFound:
        dns, addrs = [], []
    ca_cert, ca_key = _load_ca(pki)
    cert = _sign_leaf(
        ca_cert,
        ca_key,
        public_key,
        csr.subject,
        usages=usages,
        dns_names=dns,
        ip_addresses=addrs,
        validity=timedelta(days=days),
        now=now,
    )
    return _cert_pem(cert)


# --- TLS contexts ------------------------------------------------------------------------------


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    """TLS 1.2+ with the serving certificate; client certificates are optional but, when
    presented, must chain to the cluster CA (a bad one fails the handshake).

    This is the stdlib listener (`--tls-backend stdlib`). The default listener,
    `controlplane.apiserver.tls`, takes the same files but verifies client certificates after the
    handshake, so a certificate from another CA gets upstream's 401 instead of a TLS alert.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=pki.serving_cert, keyfile=pki.serving_key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # aiohttp serves HTTP/1.1 only; advertising it lets Go clients settle ALPN without guessing.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_ssl_context(pki: PKI, cert: Path, key: Path) -> ssl.SSLContext:
    """A client context that trusts only the cluster CA and presents `cert`/`key`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=pki.ca_cert)
    ctx.load_cert_chain(certfile=cert, keyfile=key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
