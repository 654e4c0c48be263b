"""The cluster PKI: creation, file modes, SANs, reuse, re-issue and chain validation."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from controlplane.apiserver.pki import (
    PKI,
    PKIError,
    ensure_pki,
    issue_client_cert,
    sign_csr,
    write_private_file,
)

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(pki: PKI) -> list[Path]:
    return [pki.ca_cert, pki.ca_key, pki.serving_cert, pki.serving_key, pki.admin_cert, pki.admin_key]


def _snapshot(pki: PKI) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in _files(pki)}


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    }


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _openssl_verify(ca: Path, cert: Path, purpose: str) -> bool:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    # -attime: the certificates are issued at NOW, in the future of the real clock
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(ca),
            "-purpose",
            purpose,
            "-attime",
            str(int(NOW.timestamp()) + 60),
            str(cert),
        ],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "pki"


@pytest.fixture
def pki(pki_dir: Path) -> PKI:
    return ensure_pki(pki_dir, hostnames=["api.example.com", "10.0.0.5"], ips=["192.168.1.10"], now=NOW)


def test_first_start_creates_private_files_and_directories(pki: PKI, pki_dir: Path) -> None:
    assert _mode(pki_dir) == 0o700
    assert _mode(pki_dir.parent) == 0o700  # created for us, so created private
    for path in _files(pki):
        assert path.parent == pki_dir
        assert _mode(path) == 0o600, path
    # nothing but the six files: no temporary leftovers
    assert sorted(p.name for p in pki_dir.iterdir()) == sorted(p.name for p in _files(pki))
    assert pki.serving_cert.name == "apiserver.crt" and pki.ca_key.name == "ca.key"


def test_serving_certificate_sans_and_usage(pki: PKI) -> None:
    serving = _cert(pki.serving_cert)
    dns, ips = _sans(serving)
    assert {"localhost", socket.gethostname().lower(), "api.example.com", "kubernetes.default.svc"} <= dns
    # an IP literal passed as a hostname lands in the IP SANs, not the DNS ones
    assert "10.0.0.5" not in dns
    assert ips == {"127.0.0.1", "::1", "10.0.0.5", "192.168.1.10"}
    assert _eku(serving) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert serving.not_valid_after_utc - serving.not_valid_before_utc == timedelta(days=365, minutes=5)
    assert isinstance(serving.public_key(), ec.EllipticCurvePublicKey)


def test_ca_and_admin_certificates(pki: PKI) -> None:
    ca = _cert(pki.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - NOW == timedelta(days=3650)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pinnace-ca"

    admin = _cert(pki.admin_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubernetes-admin"
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]
    assert _eku(admin) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert admin.issuer == ca.subject


def test_chain_verifies_for_server_and_client_roles(pki: PKI) -> None:
    store = Store([_cert(pki.ca_cert)])
    builder = PolicyBuilder().store(store).time(NOW + timedelta(days=1))
    for name in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("192.168.1.10"))):
        chain = builder.build_server_verifier(name).verify(_cert(pki.serving_cert), [])
        assert chain[-1] == _cert(pki.ca_cert)
    # Client certificates carry no SANs, which cryptography's web-PKI client policy demands, so
    # the client role is checked with OpenSSL, the same library the server's handshake uses.
    assert _openssl_verify(pki.ca_cert, pki.admin_cert, "sslclient")
    # the EKUs keep the roles apart: the serving cert is no client credential and vice versa
    assert not _openssl_verify(pki.ca_cert, pki.serving_cert, "sslclient")
    assert not _openssl_verify(pki.ca_cert, pki.admin_cert, "sslserver")


def test_restart_reuses_everything_byte_for_byte(pki: PKI, pki_dir: Path) -> None:
    before = _snapshot(pki)
    again = ensure_pki(
        pki_dir,
        hostnames=["API.example.com.", "10.0.0.5"],
        ips=["192.168.1.10"],
        now=NOW + timedelta(days=100),
    )
    assert again == pki
    assert _snapshot(again) == before


def test_added_san_reissues_only_the_serving_certificate(pki: PKI, pki_dir: Path) -> None:
    before = _snapshot(pki)
    ensure_pki(
        pki_dir,
        hostnames=["api.example.com", "10.0.0.5", "lb.example.com"],
        ips=["192.168.1.10"],
        now=NOW + timedelta(days=1),
    )
    after = _snapshot(pki)
    assert after["apiserver.crt"] != before["apiserver.crt"]
    assert after["apiserver.key"] != before["apiserver.key"]
    for unchanged in ("ca.crt", "ca.key", "admin.crt", "admin.key"):
        assert after[unchanged] == before[unchanged]
    assert "lb.example.com" in _sans(_cert(pki.serving_cert))[0]


def test_removed_san_also_reissues(pki: PKI, pki_dir: Path) -> None:
    ensure_pki(pki_dir, hostnames=[], ips=["192.168.1.10"], now=NOW)
    dns, ips = _sans(_cert(pki.serving_cert))
    assert "api.example.com" not in dns and "10.0.0.5" not in ips


def test_near_expiry_leaves_are_reissued_but_the_ca_is_kept(pki: PKI, pki_dir: Path) -> None:
    before = _snapshot(pki)
    later = NOW + timedelta(days=340)
    ensure_pki(pki_dir, hostnames=["api.example.com", "10.0.0.5"], ips=["192.168.1.10"], now=later)
    after = _snapshot(pki)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert after["apiserver.crt"] != before["apiserver.crt"]
    assert after["admin.crt"] != before["admin.crt"]
    assert _cert(pki.serving_cert).not_valid_after_utc == later + timedelta(days=365)


def test_mismatched_key_after_a_crash_is_repaired(pki: PKI, pki_dir: Path) -> None:
    # What a crash between writing a new key and its certificate leaves behind.
    stray = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private_file(pki.serving_key, stray)
    ensure_pki(pki_dir, hostnames=["api.example.com", "10.0.0.5"], ips=["192.168.1.10"], now=NOW)
    key = serialization.load_pem_private_key(pki.serving_key.read_bytes(), password=None)
    cert_spki = (
        _cert(pki.serving_cert)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert cert_spki == key_spki


def test_leaves_from_a_replaced_ca_are_reissued(pki: PKI, pki_dir: Path, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other", hostnames=[], ips=[], now=NOW)
    shutil.copy(other.admin_cert, pki.admin_cert)
    shutil.copy(other.admin_key, pki.admin_key)
    ensure_pki(pki_dir, hostnames=["api.example.com", "10.0.0.5"], ips=["192.168.1.10"], now=NOW)
    assert _cert(pki.admin_cert).issuer == _cert(pki.ca_cert).subject
    _cert(pki.admin_cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_ca_certificate_without_key_is_refused(pki: PKI, pki_dir: Path) -> None:
    pki.ca_key.unlink()
    with pytest.raises(PKIError, match="refusing to replace the cluster CA"):
        ensure_pki(pki_dir, hostnames=[], ips=[], now=NOW)


def test_ca_key_without_certificate_starts_over(pki_dir: Path) -> None:
    pki_dir.mkdir(parents=True)
    write_private_file(pki_dir / "ca.key", b"left by a crash before ca.crt was written")
    pki = ensure_pki(pki_dir, hostnames=[], ips=[], now=NOW)
    _cert(pki.serving_cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_loose_modes_are_tightened(pki: PKI, pki_dir: Path) -> None:
    os.chmod(pki.ca_key, 0o644)
    os.chmod(pki_dir, 0o755)
    ensure_pki(pki_dir, hostnames=["api.example.com", "10.0.0.5"], ips=["192.168.1.10"], now=NOW)
    assert _mode(pki.ca_key) == 0o600
    assert _mode(pki_dir) == 0o700


def test_invalid_ip_is_rejected(pki_dir: Path) -> None:
    with pytest.raises(ValueError, match="invalid IP address"):
        ensure_pki(pki_dir, hostnames=[], ips=["not-an-ip"], now=NOW)


def test_non_ascii_host_name_is_rejected(pki_dir: Path) -> None:
    with pytest.raises(ValueError, match="A-labels"):
        ensure_pki(pki_dir, hostnames=["bücher.example"], ips=[], now=NOW)


def test_ca_public_key_hash_matches_openssl(pki: PKI) -> None:
    value = pki.ca_public_key_hash()
    assert value.startswith("sha256:") and len(value) == len("sha256:") + 64
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    # kubeadm's documented recipe for --discovery-token-ca-cert-hash
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(pki.ca_cert)], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True
    ).stdout
    assert value == "sha256:" + hashlib.sha256(der).hexdigest()


def test_issue_client_cert(pki: PKI) -> None:
    cert_pem, key_pem = issue_client_cert(pki, "system:node:n1", ["system:nodes"], days=30, now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_client_cert_never_outlives_the_ca(pki: PKI) -> None:
    cert_pem, _ = issue_client_cert(pki, "long", [], days=20 * 365, now=NOW)
    assert (
        x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc == _cert(pki.ca_cert).not_valid_after_utc
    )


def test_sign_csr_keeps_subject_and_sans(pki: PKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1"),
                ]
            )
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("n1.internal"), x509.IPAddress(ipaddress.ip_address("10.1.2.3"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = sign_csr(
        pki, csr.public_bytes(serialization.Encoding.PEM), server_auth=True, client_auth=False, now=NOW
    )
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject == csr.subject
    assert _sans(cert) == ({"n1.internal"}, {"10.1.2.3"})
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    with pytest.raises(ValueError, match="at least one"):
        sign_csr(pki, csr.public_bytes(serialization.Encoding.PEM), client_auth=False)


def test_write_private_file_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "secret.key"
    write_private_file(target, b"old")
    assert _mode(target) == 0o600

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_private_file(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
