"""Client certificates, verified after the handshake as kube-apiserver's x509 authenticator does.

The TLS layer asks for a client certificate and takes whatever the client presents (Go's
`tls.RequestClientCert`), so a certificate from another CA reaches authentication, where it is an
error (401), not a failed handshake. This module decides what a presented chain is worth, with the
rules of Go's `x509.Certificate.Verify` under upstream's `DefaultVerifyOptions`:

- the leaf chains, through the intermediates the client sent, to one of the client CAs;
- every issuer is a CA (basicConstraints cA, or a v1 certificate), may sign certificates when it
  has a keyUsage, and its pathLenConstraint allows the intermediates below it;
- every certificate on the chain is within its validity period at the time of the request;
- every certificate that has an extendedKeyUsage allows clientAuth (or any usage): Go treats a
  certificate without one as good for any usage, and so do we;
- a critical extension we do not understand, or name constraints over a leaf with names, reject
  the chain (Go enforces name constraints; we refuse rather than half-check them).

Only `ClientCAVerifier` makes a `VerifiedChain`: the constructor refuses to run without the
module's private seal, so holding one is proof the chain passed. Authentication turns only a
`VerifiedChain` into a user (`authn.user_from_certificate`).

Chains are built once per connection and cached (`ClientCertificate`); only the validity window is
re-checked on each request, so a long-lived connection stops authenticating when its certificate
expires, as upstream, which verifies on every request.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "MAX_INTERMEDIATES",
    "CertificateRejected",
    "ClientCAVerifier",
    "ClientCertificate",
    "VerifiedChain",
]

# Go stops building chains at this many intermediates' worth of work; a client sending more is
# either broken or trying to make us search.
MAX_INTERMEDIATES = 8

# Extensions whose meaning we apply (or that carry no constraint on the path), so their being
# critical does not reject the chain.
_HANDLED = (
    x509.BasicConstraints,
    x509.KeyUsage,
    x509.ExtendedKeyUsage,
    x509.SubjectAlternativeName,
    x509.SubjectKeyIdentifier,
    x509.AuthorityKeyIdentifier,
    x509.CertificatePolicies,
    x509.NameConstraints,
)

_SEAL = object()
_DER = Encoding.DER
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


class CertificateRejected(Exception):
    """The presented certificate does not verify; the message is for the server log only."""


class VerifiedChain:
    """A chain `ClientCAVerifier` verified: the leaf first, a client CA last.

    Not a dataclass on purpose: nothing (`dataclasses.replace`, a keyword constructor) may make
    one from a verified one with other certificates in it. The constructor wants the module's
    private seal, and the attributes are read-only.
    """

    __slots__ = ("_chain", "_not_after", "_not_before")

    def __init__(
        self, chain: tuple[x509.Certificate, ...], not_before: datetime, not_after: datetime, seal: object
    ) -> None:
        if seal is not _SEAL:
            raise TypeError("a VerifiedChain is made only by ClientCAVerifier")
        self._chain = chain
        self._not_before = not_before
        self._not_after = not_after

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"VerifiedChain.{name} is read-only")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"VerifiedChain({_describe(self.leaf)}, {len(self._chain)} certificates)"

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def leaf(self) -> x509.Certificate:
        return self._chain[0]

    @property
    def not_before(self) -> datetime:
        return self._not_before

    @property
    def not_after(self) -> datetime:
        return self._not_after


def _describe(cert: x509.Certificate) -> str:
    """Upstream's certificateIdentifier: enough to find the certificate, nothing secret."""
    try:
        return f'"{cert.subject.rfc4514_string()}" [serial={cert.serial_number:x}] issued by "{cert.issuer.rfc4514_string()}"'
    except Exception:  # a garbled name must not turn a rejection into a crash
        return "(malformed certificate)"


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CertificateRejected(f"malformed extensions: {exc}") from None


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return _extensions(cert).get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_critical(cert: x509.Certificate) -> None:
    for ext in _extensions(cert):
        if ext.critical and not isinstance(ext.value, _HANDLED):
            raise CertificateRejected(f"x509: unhandled critical extension {ext.oid.dotted_string}")


def _allows_client_auth(cert: x509.Certificate) -> bool:
    usages = _extension(cert, x509.ExtendedKeyUsage)
    if usages is None:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _may_issue(parent: x509.Certificate, intermediates_below: int) -> bool:
    """Go's CheckSignatureFrom and isValid for an issuer at this depth."""
    constraints = _extension(parent, x509.BasicConstraints)
    if constraints is None:
        # Go lets a v1 certificate (which cannot carry extensions) issue; a v3 one must say cA.
        if parent.version != x509.Version.v1:
            return False
    elif not constraints.ca:
        return False
    if constraints is not None and constraints.path_length is not None:
        return intermediates_below <= constraints.path_length and _may_sign(parent)
    return _may_sign(parent)


def _may_sign(parent: x509.Certificate) -> bool:
    usage = _extension(parent, x509.KeyUsage)
    return usage is None or usage.key_cert_sign


class ClientCAVerifier:
    """Verifies presented chains against a fixed set of client CAs (the cluster CA bundle)."""

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        if not roots:
            raise ValueError("at least one client CA is needed")
        self._roots: dict[x509.Name, list[x509.Certificate]] = {}
        for root in roots:
            self._roots.setdefault(root.subject, []).append(root)
        self._root_ders = {root.public_bytes(_DER) for root in roots}

    @classmethod
    def from_pem_file(cls, path: Path) -> ClientCAVerifier:
        return cls(x509.load_pem_x509_certificates(path.read_bytes()))

    def verify(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime | None = None
    ) -> VerifiedChain:
        """The first chain that passes every rule, or `CertificateRejected` saying why none did."""
        try:
            return self._verify(leaf, intermediates, now or datetime.now(UTC))
        except CertificateRejected:
            raise
        except Exception as exc:
            # cryptography parses fields lazily, so a garbled certificate can fail anywhere (even
            # with KeyError); whatever it is, it is a rejection, never a user and never a crash.
            raise CertificateRejected(
                f"verifying certificate {_describe(leaf)} failed: x509: malformed certificate: {exc!r}"
            ) from None

    def _verify(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime
    ) -> VerifiedChain:
        _check_critical(leaf)
        if not _allows_client_auth(leaf):
            raise CertificateRejected(
                f"verifying certificate {_describe(leaf)} failed: "
                "x509: certificate specifies an incompatible key usage"
            )
        pool = [c for c in intermediates[:MAX_INTERMEDIATES] if c != leaf]
        reasons: list[str] = []
        for chain in self._chains(leaf, pool, [leaf]):
            try:
                return self._check_chain(tuple(chain), now)
            except CertificateRejected as exc:
                reasons.append(str(exc))
        reason = reasons[0] if reasons else "x509: certificate signed by unknown authority"
        raise CertificateRejected(f"verifying certificate {_describe(leaf)} failed: {reason}")

    def _chains(
        self, cert: x509.Certificate, pool: list[x509.Certificate], path: list[x509.Certificate]
    ) -> Iterator[list[x509.Certificate]]:
        if cert.public_bytes(_DER) in self._root_ders and len(path) == 1:
            # The client presented a client CA itself (and proved it holds its key).
            yield path
            return
        below = len(path) - 1
        for root in self._roots.get(cert.issuer, ()):
            if _may_issue(root, below) and _signed_by(cert, root):
                yield [*path, root]
        if below >= MAX_INTERMEDIATES:
            return
        for candidate in pool:
            if candidate in path or candidate.subject != cert.issuer:
                continue
            if _may_issue(candidate, below) and _signed_by(cert, candidate):
                yield from self._chains(candidate, pool, [*path, candidate])

    def _check_chain(self, chain: tuple[x509.Certificate, ...], now: datetime) -> VerifiedChain:
        # The leaf's subject names the user; parse it now, so a VerifiedChain always has one.
        _ = chain[0].subject.rdns
        for issuer in chain[1:-1]:
            _check_critical(issuer)
        for cert in chain[1:]:
            if not _allows_client_auth(cert):
                raise CertificateRejected("x509: certificate specifies an incompatible key usage")
            if _extension(cert, x509.NameConstraints) is not None and _extension(
                chain[0], x509.SubjectAlternativeName
            ):
                raise CertificateRejected("x509: name constraints are not supported for client certificates")
        verified = VerifiedChain(
            chain,
            not_before=max(c.not_valid_before_utc for c in chain),
            not_after=min(c.not_valid_after_utc for c in chain),
            seal=_SEAL,
        )
        _check_validity(verified, now)
        return verified


def _check_validity(verified: VerifiedChain, now: datetime) -> None:
    if now < verified.not_before or now > verified.not_after:
        raise CertificateRejected(
            f"x509: certificate has expired or is not yet valid: current time {now:%Y-%m-%dT%H:%M:%SZ} "
            f"is outside {verified.not_before:%Y-%m-%dT%H:%M:%SZ} - {verified.not_after:%Y-%m-%dT%H:%M:%SZ}"
        )


class ClientCertificate:
    """What one connection's client presented (DER, leaf first), verified at most once."""

    __slots__ = ("_outcome", "_verifier", "presented")

    def __init__(self, presented: Sequence[bytes], verifier: ClientCAVerifier) -> None:
        if not presented:
            raise ValueError("a client certificate has at least a leaf")
        self.presented = tuple(presented)
        self._verifier = verifier
        self._outcome: VerifiedChain | CertificateRejected | None = None

    def _verify(self, now: datetime) -> VerifiedChain:
        try:
            certs = [x509.load_der_x509_certificate(der) for der in self.presented]
        except Exception as exc:  # ValueError, InvalidVersion, ...: all mean "not a certificate"
            raise CertificateRejected(f"x509: malformed certificate: {exc}") from None
        return self._verifier.verify(certs[0], certs[1:], now)

    def verified(self, now: datetime | None = None) -> VerifiedChain:
        """The verified chain, or `CertificateRejected`; only the validity window is checked again."""
        now = now or datetime.now(UTC)
        outcome = self._outcome
        if outcome is None:
            try:
                outcome = self._verify(now)
            except CertificateRejected as exc:
                outcome = exc
            self._outcome = outcome
        if isinstance(outcome, CertificateRejected):
            raise CertificateRejected(str(outcome))
        try:
            _check_validity(outcome, now)
        except CertificateRejected as exc:
            raise CertificateRejected(
                f"verifying certificate {_describe(outcome.leaf)} failed: {exc}"
            ) from None
        return outcome
