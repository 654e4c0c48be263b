"""Client-certificate verification after the handshake (Go's x509 Verify under kube-apiserver's
DefaultVerifyOptions) and the invariant that only a verified chain yields a user."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.apiserver.authn import UserInfo, user_from_certificate
from controlplane.apiserver.tls import (
    CertificateRejected,
    ClientCAVerifier,
    ClientCertificate,
    VerifiedChain,
)
from controlplane.apiserver.tls.peercert import peercert_dict

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(6)]


@dataclasses.dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)


def issue(
    subject: str,
    issuer: Issued | None = None,
    *,
    key: int = 0,
    ca: bool | None = False,
    path_length: int | None = None,
    usages: Sequence[ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    cert_sign: bool | None = None,
    organizations: Sequence[str] = (),
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    private = _KEYS[key]
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject))
    name = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, cert_sign, cert_sign, False, False), critical=True
        )
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    return Issued(builder.sign(issuer.key if issuer else private, hashes.SHA256()), private)


ROOT = issue("cluster-ca", key=1, ca=True, usages=None, cert_sign=True)
OTHER_ROOT = issue("evil-ca", key=2, ca=True, usages=None, cert_sign=True)
VERIFIER = ClientCAVerifier([ROOT.cert])


def verify(leaf: Issued, *intermediates: Issued, now: datetime = NOW) -> VerifiedChain:
    return ClientCertificate([leaf.der, *(i.der for i in intermediates)], VERIFIER).verified(now)


def test_a_leaf_signed_by_the_cluster_ca_verifies_and_names_its_user() -> None:
    leaf = issue("jane", ROOT, organizations=("devs", "ops"))
    verified = verify(leaf)
    assert verified.chain == (leaf.cert, ROOT.cert)
    assert user_from_certificate(verified) == UserInfo("jane", groups=("devs", "ops", "system:authenticated"))


def test_the_last_common_name_counts_and_no_common_name_is_no_user() -> None:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "first"), x509.NameAttribute(NameOID.COMMON_NAME, "last")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ROOT.cert.subject)
        .public_key(_KEYS[0].public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ROOT.key, hashes.SHA256())
    )
    user = user_from_certificate(ClientCertificate([cert.public_bytes(Encoding.DER)], VERIFIER).verified(NOW))
    assert user is not None and user.name == "last"
    orgs_only = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]))
        .issuer_name(ROOT.cert.subject)
        .public_key(_KEYS[0].public_key())
        .serial_number(8)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ROOT.key, hashes.SHA256())
    )
    verified = ClientCertificate([orgs_only.public_bytes(Encoding.DER)], VERIFIER).verified(NOW)
    assert user_from_certificate(verified) is None


def test_another_cas_leaf_is_rejected_even_with_its_ca_attached() -> None:
    leaf = issue("kubernetes-admin", OTHER_ROOT, organizations=("system:masters",))
    with pytest.raises(CertificateRejected, match="signed by unknown authority"):
        verify(leaf, OTHER_ROOT)


def test_a_forged_issuer_name_does_not_help() -> None:
    # Same subject as the cluster CA, different key: the signature decides.
    impostor = issue("cluster-ca", key=2, ca=True, usages=None, cert_sign=True)
    leaf = issue("kubernetes-admin", impostor, organizations=("system:masters",))
    with pytest.raises(CertificateRejected):
        verify(leaf)
    with pytest.raises(CertificateRejected):
        verify(leaf, impostor)


def test_intermediates_sent_by_the_client_are_used() -> None:
    intermediate = issue("intermediate", ROOT, key=3, ca=True, usages=None, cert_sign=True)
    leaf = issue("jane", intermediate)
    assert verify(leaf, intermediate).chain == (leaf.cert, intermediate.cert, ROOT.cert)
    with pytest.raises(CertificateRejected):
        verify(leaf)  # without it, no chain


def test_issuer_constraints() -> None:
    not_ca = issue("not-a-ca", ROOT, key=3, ca=False, usages=None)
    with pytest.raises(CertificateRejected):
        verify(issue("jane", not_ca), not_ca)
    no_basic_constraints = issue("no-bc", ROOT, key=3, ca=None, usages=None)
    with pytest.raises(CertificateRejected):
        verify(issue("jane", no_basic_constraints), no_basic_constraints)
    no_cert_sign = issue("no-certsign", ROOT, key=3, ca=True, usages=None, cert_sign=False)
    with pytest.raises(CertificateRejected):
        verify(issue("jane", no_cert_sign), no_cert_sign)
    # pathLen 0 on the root: no intermediate may sit below it.
    strict_root = issue("strict-ca", key=4, ca=True, path_length=0, usages=None, cert_sign=True)
    strict = ClientCAVerifier([strict_root.cert])
    intermediate = issue("intermediate", strict_root, key=3, ca=True, usages=None, cert_sign=True)
    leaf = issue("jane", intermediate)
    with pytest.raises(CertificateRejected):
        ClientCertificate([leaf.der, intermediate.der], strict).verified(NOW)
    direct = issue("jane", strict_root)
    assert ClientCertificate([direct.der], strict).verified(NOW).leaf == direct.cert


def test_extended_key_usage_as_go() -> None:
    with pytest.raises(CertificateRejected, match="incompatible key usage"):
        verify(issue("server", ROOT, usages=(ExtendedKeyUsageOID.SERVER_AUTH,)))
    assert verify(issue("any", ROOT, usages=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)))
    assert verify(
        issue("both", ROOT, usages=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH))
    )
    # No extendedKeyUsage at all: good for any usage, in Go as here.
    assert verify(issue("none", ROOT, usages=None))
    # An intermediate restricted to serverAuth cannot vouch for a client.
    server_only = issue("intermediate", ROOT, key=3, ca=True, usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
    with pytest.raises(CertificateRejected):
        verify(issue("jane", server_only), server_only)


def test_validity_period_of_every_certificate_on_the_chain() -> None:
    with pytest.raises(CertificateRejected, match="expired or is not yet valid"):
        verify(issue("late", ROOT, not_after=NOW - timedelta(seconds=1)))
    with pytest.raises(CertificateRejected, match="expired or is not yet valid"):
        verify(issue("early", ROOT, not_before=NOW + timedelta(hours=1)))
    short = issue("intermediate", ROOT, key=3, ca=True, usages=None, not_after=NOW - timedelta(days=1))
    with pytest.raises(CertificateRejected):
        verify(issue("jane", short), short)


def test_the_connection_cache_rechecks_expiry() -> None:
    leaf = issue("jane", ROOT, not_after=NOW + timedelta(minutes=5))
    presented = ClientCertificate([leaf.der], VERIFIER)
    assert presented.verified(NOW).leaf == leaf.cert
    with pytest.raises(CertificateRejected, match="expired"):
        presented.verified(NOW + timedelta(minutes=6))
    # A rejection is cached too: the next request on the connection is refused without work.
    bad = ClientCertificate([issue("x", OTHER_ROOT).der], VERIFIER)
    for _ in range(2):
        with pytest.raises(CertificateRejected):
            bad.verified(NOW)


def test_unhandled_critical_extensions_reject() -> None:
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    with pytest.raises(CertificateRejected, match="unhandled critical extension"):
        verify(issue("jane", ROOT, extra=[(unknown, True)]))
    assert verify(issue("jane", ROOT, extra=[(unknown, False)]))


def test_the_client_ca_itself_is_accepted_as_go_does() -> None:
    # Presenting the CA needs its private key in the handshake; whoever has it can mint anything.
    assert verify(ROOT).chain == (ROOT.cert,)


def test_verified_chains_are_made_only_by_the_verifier() -> None:
    leaf = issue("jane", ROOT)
    with pytest.raises(TypeError, match="only by ClientCAVerifier"):
        VerifiedChain((leaf.cert, ROOT.cert), NOW, NOW, object())
    foreign = issue("kubernetes-admin", OTHER_ROOT, organizations=("system:masters",))
    verified = verify(leaf)
    with pytest.raises(AttributeError, match="read-only"):
        verified._chain = (foreign.cert,)  # type: ignore[misc]
    with pytest.raises(TypeError):
        dataclasses.replace(verified, chain=(foreign.cert,))  # type: ignore[type-var]
    assert verified.leaf == leaf.cert


def test_peercert_dict_has_the_stdlib_shape() -> None:
    leaf = issue("jane", ROOT, organizations=("devs",))
    d = peercert_dict(leaf.cert)
    assert d["subject"] == ((("organizationName", "devs"),), (("commonName", "jane"),))
    assert d["issuer"] == ((("commonName", "cluster-ca"),),)
    assert d["version"] == 3
    assert d["notAfter"] == (NOW + timedelta(days=30)).strftime("%b %e %H:%M:%S %Y GMT")
    assert len(d["serialNumber"]) % 2 == 0


# --- nothing but a verified chain authenticates ----------------------------------------------------

_POOL = [
    ROOT,
    OTHER_ROOT,
    issue("kubernetes-admin", OTHER_ROOT, organizations=("system:masters",)),
    issue("cluster-ca", key=2, ca=True, usages=None, cert_sign=True),
    issue("intermediate", OTHER_ROOT, key=3, ca=True, usages=None, cert_sign=True),
    issue("server", ROOT, usages=(ExtendedKeyUsageOID.SERVER_AUTH,)),
    issue("expired", ROOT, not_after=NOW - timedelta(days=1)),
]
_GOOD = issue("jane", ROOT)


def _garble(der: bytes, data: st.DataObject) -> bytes:
    if not der:
        return der
    mutation = data.draw(st.sampled_from(["flip", "truncate", "append", "keep"]))
    if mutation == "flip":
        i = data.draw(st.integers(0, len(der) - 1))
        return der[:i] + bytes([der[i] ^ data.draw(st.integers(1, 255))]) + der[i + 1 :]
    if mutation == "truncate":
        return der[: data.draw(st.integers(0, len(der) - 1))]
    if mutation == "append":
        return der + data.draw(st.binary(min_size=1, max_size=8))
    return der


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_and_garbled_chains_never_authenticate(data: st.DataObject) -> None:
    """Chains of foreign, misused or garbled certificates, in any order, never yield a user; the
    one good leaf only does when it arrives intact."""
    members = data.draw(st.lists(st.sampled_from([*_POOL, _GOOD]), min_size=1, max_size=4))
    ders = [_garble(m.der, data) for m in members]
    ders += data.draw(st.lists(st.binary(max_size=64), max_size=2))
    presented = ClientCertificate(ders, VERIFIER)
    try:
        verified = presented.verified(NOW)
    except CertificateRejected:
        return
    # Whatever verified must be the intact good leaf (or the CA itself) chained to our CA.
    assert verified.chain[-1] == ROOT.cert
    assert ders[0] in (_GOOD.der, ROOT.der)
    assert verified.leaf.public_bytes(Encoding.DER) == ders[0]


@settings(max_examples=50, deadline=None)
@given(noise=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=3))
def test_arbitrary_bytes_are_rejected(noise: list[bytes]) -> None:
    with pytest.raises(CertificateRejected):
        ClientCertificate(noise, VERIFIER).verified(NOW)
