"""Pinning the cluster CA by its public-key hash (kubeadm's token discovery) against a loopback
TLS server: the pinned CA is found in the served chain; anything else is refused."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.tokens_cli import ca_cert_hash
from node_bootstrap.agent.bootstrap import BootstrapError, bootstrap_source
from node_bootstrap.agent.discovery import DiscoveryError, discover_ca, parse_pins, spki_hash

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2025, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: x509.Certificate, ca_key: Key) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2025, 1, 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


CA, CA_KEY = make_ca("cluster-ca")
OTHER_CA, OTHER_KEY = make_ca("mallory-ca")


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@asynccontextmanager
async def tls_server(chain: list[x509.Certificate], key: Key) -> AsyncIterator[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cert_path.write_bytes(b"".join(pem(c) for c in chain))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        ctx.load_cert_chain(str(cert_path), str(key_path))

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def test_hash_is_kubeadms() -> None:
    assert spki_hash(CA) == ca_cert_hash(pem(CA))
    assert spki_hash(CA) != spki_hash(OTHER_CA)


def test_pins_are_sha256_hex() -> None:
    good = spki_hash(CA)
    assert parse_pins([good.upper().replace("SHA256", "sha256")]) == (good,)
    for bad in ("", "sha256:abc", "md5:" + "0" * 64, "0" * 64):
        with pytest.raises(ValueError, match="invalid hash"):
            parse_pins([bad])


async def test_the_pinned_ca_is_found_in_the_served_chain() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key) as url:
        assert await discover_ca(url, [spki_hash(OTHER_CA), spki_hash(CA)]) == pem(CA)


async def test_an_unpinned_ca_is_refused() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key) as url:
        wrong = "sha256:" + "0" * 64
        with pytest.raises(DiscoveryError, match="none of the public keys") as info:
            await discover_ca(url, [wrong])
        assert spki_hash(CA) in str(info.value) and wrong in str(info.value)
        # The same through the agent's entry point, which also never sends the token.
        with pytest.raises(BootstrapError, match="none of the public keys"):
            await bootstrap_source(
                bootstrap_kubeconfig=None, server=url, token="abcdef.0123456789abcdef", ca_cert_hashes=[wrong]
            )


async def test_a_server_that_only_shows_the_pinned_ca_is_refused() -> None:
    # The real CA's certificate is public; a server holding another CA's leaf must not pass.
    leaf, key = make_leaf(OTHER_CA, OTHER_KEY)
    async with tls_server([leaf, CA], key) as url:
        with pytest.raises(DiscoveryError, match="does not present a certificate of the pinned CA"):
            await discover_ca(url, [spki_hash(CA)])


async def test_a_chain_without_the_ca_is_refused() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf], key) as url:
        with pytest.raises(DiscoveryError, match="cluster CA not found"):
            await discover_ca(url, [spki_hash(CA)])


async def test_unreachable_and_malformed_servers() -> None:
    with pytest.raises(DiscoveryError, match="https://host"):
        await discover_ca("http://127.0.0.1:1", [spki_hash(CA)])
    with pytest.raises(DiscoveryError, match="cannot reach"):
        await discover_ca("https://127.0.0.1:1", [spki_hash(CA)])
