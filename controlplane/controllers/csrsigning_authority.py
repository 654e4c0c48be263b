"""The certificate authority of the CSR signing controller (upstream
pkg/controller/certificates/authority): issue a certificate for a PKCS#10 request with the
cluster CA, the request's subject and SANs, and exactly the requested usages.

Pure apart from the randomness of serial numbers: the caller gives the CA, the lifetime and now.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from controlplane.api.certificates import CSRError, ParsedCSR

__all__ = ["BACKDATE", "MIN_DURATION", "CertificateAuthority", "load_authority", "signing_duration"]

# Certificates start this far in the past so slightly slow clocks accept them at once.
BACKDATE = timedelta(minutes=5)
# spec.expirationSeconds below this is raised to it (2x the hard-coded clock skew, upstream).
MIN_DURATION = timedelta(minutes=10)

_KEY_USAGES = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
_EXT_KEY_USAGES = {
    "any": ObjectIdentifier("2.5.29.37.0"),
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}

_SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def signing_duration(default: timedelta, expiration_seconds: int | None) -> timedelta:
    """The lifetime of a certificate: the requested one when shorter than the signer's, at least
    ten minutes (upstream's signer.duration)."""
    if expiration_seconds is None:
        return default
    requested = timedelta(seconds=expiration_seconds)
    if requested > default:
        return default
    return max(requested, MIN_DURATION)


def _key_usage(usages: Iterable[str]) -> tuple[x509.KeyUsage | None, list[ObjectIdentifier]]:
    flags = dict.fromkeys(set(_KEY_USAGES.values()), False)
    ext: list[ObjectIdentifier] = []
    unknown: list[str] = []
    for usage in usages:
        if usage in _KEY_USAGES:
            flags[_KEY_USAGES[usage]] = True
        elif usage in _EXT_KEY_USAGES:
            if _EXT_KEY_USAGES[usage] not in ext:
                ext.append(_EXT_KEY_USAGES[usage])
        else:
            unknown.append(usage)
    if unknown:
        raise CSRError("unrecognized usage values: " + "[" + " ".join(f'"{u}"' for u in unknown) + "]")
    if not flags["key_agreement"]:
        # X.509 defines these two only together with keyAgreement.
        flags["encipher_only"] = flags["decipher_only"] = False
    if not any(flags.values()):
        return None, ext
    return x509.KeyUsage(**flags), ext


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: _SigningKey

    def sign(self, parsed: ParsedCSR, usages: Iterable[str], duration: timedelta, now: datetime) -> bytes:
        """A PEM certificate for `parsed`; raises CSRError when it cannot be issued."""
        csr = parsed.csr
        if not csr.is_signature_valid:
            raise CSRError("unable to verify certificate request signature")
        public_key = csr.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CSRError(f"unsupported public key type {type(public_key).__name__}")
        ca_not_after = self.certificate.not_valid_after_utc
        if now >= ca_not_after:
            raise CSRError("refusing to sign a certificate that expired in the past")
        key_usage, ext_usages = _key_usage(usages)
        not_after = min(now + duration, ca_not_after)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        if ext_usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ext_usages), critical=False)
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
        except x509.ExtensionNotFound:
            pass
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in parsed.dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in parsed.ip_addresses]
        names += [x509.RFC822Name(e) for e in parsed.emails]
        names += [x509.UniformResourceIdentifier(u) for u in parsed.uris]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)


def load_authority(cert_file: Path, key_file: Path) -> CertificateAuthority:
    """The CA from PEM files (upstream's --cluster-signing-cert-file / --cluster-signing-key-file)."""
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(  # noqa: TRY004 - a bad file is bad input
            f"{key_file}: unsupported key type {type(key).__name__} (want RSA or ECDSA)"
        )
    return CertificateAuthority(certificate, key)
