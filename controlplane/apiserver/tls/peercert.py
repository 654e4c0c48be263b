"""A certificate as `ssl.SSLSocket.getpeercert()` describes it, for code written against the stdlib."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["peercert_dict"]

# OpenSSL's long names, which the stdlib uses as keys.
_NAMES = {
    NameOID.COMMON_NAME: "commonName",
    NameOID.ORGANIZATION_NAME: "organizationName",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
    NameOID.COUNTRY_NAME: "countryName",
    NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    NameOID.LOCALITY_NAME: "localityName",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "domainComponent",
    NameOID.USER_ID: "userId",
}

_TIME = "%b %e %H:%M:%S %Y GMT"


def _name(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple(
            (_NAMES.get(attr.oid, attr.oid.dotted_string), attr.value if isinstance(attr.value, str) else "")
            for attr in rdn
        )
        for rdn in name.rdns
    )


def _serial(number: int) -> str:
    digits = f"{number:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def peercert_dict(cert: x509.Certificate) -> dict[str, Any]:
    """subject, issuer, version, serialNumber, notBefore, notAfter and subjectAltName, as the stdlib."""
    out: dict[str, Any] = {
        "subject": _name(cert.subject),
        "issuer": _name(cert.issuer),
        "version": cert.version.value + 1,
        "serialNumber": _serial(cert.serial_number),
        "notBefore": cert.not_valid_before_utc.strftime(_TIME),
        "notAfter": cert.not_valid_after_utc.strftime(_TIME),
    }
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return out
    alt: list[tuple[str, str]] = [("DNS", name) for name in sans.get_values_for_type(x509.DNSName)]
    alt += [("IP Address", str(ip)) for ip in sans.get_values_for_type(x509.IPAddress)]
    alt += [("email", e) for e in sans.get_values_for_type(x509.RFC822Name)]
    alt += [("URI", u) for u in sans.get_values_for_type(x509.UniformResourceIdentifier)]
    if alt:
        out["subjectAltName"] = tuple(alt)
    return out
