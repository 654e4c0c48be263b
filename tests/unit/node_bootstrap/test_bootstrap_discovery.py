"""kubeadm's token discovery against a loopback HTTPS server serving cluster-info: the CA is
taken only from a kubeconfig the token's JWS vouches for, only if pinned, and only if the server
then proves it holds a certificate of it; anything else is refused with kubeadm's words."""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.api.bootstrap_jws import compute_detached_signature
from controlplane.tokens_cli import ca_cert_hash
from node_bootstrap.agent.bootstrap import BootstrapError, bootstrap_source
from node_bootstrap.agent.clock import FakeClock
from node_bootstrap.agent.discovery import (
    CLUSTER_INFO_PATH,
    DiscoveryError,
    discover_ca,
    parse_pins,
    spki_hash,
)

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


TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"


def cluster_info_kubeconfig(ca: x509.Certificate) -> str:
    """What the server publishes in kube-public/cluster-info: a kubeconfig with the CA only."""
    data = base64.b64encode(pem(ca)).decode()
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ''\n  cluster:\n"
        f"    certificate-authority-data: {data}\n    server: https://127.0.0.1:6443\n"
        "contexts: []\ncurrent-context: ''\nusers: []\n"
    )


def signed(kubeconfig: str, secret: str = TOKEN_SECRET) -> dict[str, str]:
    return {
        "kubeconfig": kubeconfig,
        f"jws-kubeconfig-{TOKEN_ID}": compute_detached_signature(kubeconfig, TOKEN_ID, secret),
    }


@dataclass
class ClusterInfoServer:
    """A loopback HTTPS server serving cluster-info; `data` may change between requests."""

    url: str
    data: dict[str, str] | None
    requests: list[dict[str, str]] = field(default_factory=list)
    after_request: Callable[[], None] = lambda: None


@asynccontextmanager
async def tls_server(
    chain: list[x509.Certificate], key: Key, data: dict[str, str] | None = None
) -> AsyncIterator[ClusterInfoServer]:
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
    served = ClusterInfoServer("", data)

    async def cluster_info(request: web.Request) -> web.Response:
        served.requests.append(dict(request.headers))
        data = served.data
        served.after_request()
        if data is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        return web.json_response({"kind": "ConfigMap", "apiVersion": "v1", "data": data})

    app = web.Application()
    app.router.add_get(CLUSTER_INFO_PATH, cluster_info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.url = f"https://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


class StepClock(FakeClock):
    """Each sleep moves time on at once and runs `on_sleep` (what changed meanwhile)."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self.on_sleep = on_sleep
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        self.on_sleep()


def test_hash_is_kubeadms() -> None:
    assert spki_hash(CA) == ca_cert_hash(pem(CA))
    assert spki_hash(CA) != spki_hash(OTHER_CA)


def test_pins_are_sha256_hex() -> None:
    good = spki_hash(CA)
    assert parse_pins([good.upper().replace("SHA256", "sha256")]) == (good,)
    for bad in ("", "sha256:abc", "md5:" + "0" * 64, "0" * 64):
        with pytest.raises(ValueError, match="invalid hash"):
            parse_pins([bad])


async def test_the_signed_and_pinned_ca_is_found_and_the_token_never_sent() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key, signed(cluster_info_kubeconfig(CA))) as server:
        found = await discover_ca(server.url, [spki_hash(OTHER_CA), spki_hash(CA)], TOKEN_ID, TOKEN_SECRET)
        assert found == pem(CA)
        source = await bootstrap_source(
            bootstrap_kubeconfig=None, server=server.url, token=TOKEN, ca_cert_hashes=[spki_hash(CA)]
        )
        assert source.ca_pem == pem(CA)
        # Two reads each (unverified, then verified against the pinned CA), all anonymous.
        assert len(server.requests) == 4
        assert not any("Authorization" in headers for headers in server.requests)


async def test_discovery_waits_for_the_signer_to_sign_for_the_token() -> None:
    kubeconfig = cluster_info_kubeconfig(CA)
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key, {"kubeconfig": kubeconfig}) as server:
        # Published but not yet signed; the signature appears while discovery waits.
        clock = StepClock(lambda: setattr(server, "data", signed(kubeconfig)))
        found = await discover_ca(server.url, [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET, clock=clock)
        assert found == pem(CA)
        assert clock.slept == [5.0]  # kubeadm's retry interval


async def test_no_signature_for_the_token_within_the_timeout_is_refused() -> None:
    kubeconfig = cluster_info_kubeconfig(CA)
    other = {"kubeconfig": kubeconfig, "jws-kubeconfig-zzzzzz": "x..y"}
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key, other) as server:
        clock = StepClock()
        with pytest.raises(DiscoveryError) as info:
            await discover_ca(server.url, [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET, clock=clock, timeout=30)
        assert (
            str(info.value)
            == 'could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"'
        )
        assert clock.slept == [5.0] * 6  # read at 0, 5, ... 30 s


async def test_a_signature_made_with_another_secret_is_refused() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    forged = signed(cluster_info_kubeconfig(CA), secret="ffffffffffffffff")
    async with tls_server([leaf, CA], key, forged) as server:
        with pytest.raises(DiscoveryError) as info:
            await discover_ca(server.url, [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET)
        assert str(info.value) == (
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
        )


async def test_an_unpinned_ca_is_refused() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    async with tls_server([leaf, CA], key, signed(cluster_info_kubeconfig(CA))) as server:
        wrong = "sha256:" + "0" * 64
        with pytest.raises(
            DiscoveryError, match="cluster CA found in cluster-info ConfigMap is invalid"
        ) as info:
            await discover_ca(server.url, [wrong], TOKEN_ID, TOKEN_SECRET)
        assert spki_hash(CA) in str(info.value) and wrong in str(info.value)
        # The same through the agent's entry point.
        with pytest.raises(BootstrapError, match="none of the public keys"):
            await bootstrap_source(
                bootstrap_kubeconfig=None, server=server.url, token=TOKEN, ca_cert_hashes=[wrong]
            )


async def test_a_server_that_only_shows_the_pinned_ca_is_refused() -> None:
    # The real CA's certificate is public, and so is a signature over a kubeconfig naming it;
    # a server holding another CA's leaf must not pass.
    leaf, key = make_leaf(OTHER_CA, OTHER_KEY)
    async with tls_server([leaf, CA], key, signed(cluster_info_kubeconfig(CA))) as server:
        with pytest.raises(DiscoveryError, match="does not present a certificate of the pinned CA"):
            await discover_ca(server.url, [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET)


async def test_a_cluster_info_that_changes_between_the_reads_is_refused() -> None:
    leaf, key = make_leaf(CA, CA_KEY)
    first = signed(cluster_info_kubeconfig(CA))
    async with tls_server([leaf, CA], key, first) as server:
        # The first (unverified) read gets the signed kubeconfig; the verified one another.
        server.after_request = lambda: setattr(
            server, "data", {**first, "kubeconfig": first["kubeconfig"] + "# changed\n"}
        )
        with pytest.raises(DiscoveryError, match="differs from the signed one"):
            await discover_ca(server.url, [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET)


async def test_unreachable_and_malformed_servers() -> None:
    with pytest.raises(DiscoveryError, match="https://host"):
        await discover_ca("http://127.0.0.1:1", [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET)
    clock = StepClock()
    with pytest.raises(DiscoveryError, match="cannot reach"):
        await discover_ca(
            "https://127.0.0.1:1", [spki_hash(CA)], TOKEN_ID, TOKEN_SECRET, clock=clock, timeout=10
        )
    assert clock.slept == [5.0, 5.0]  # tried at 0, 5 and 10 s
    with pytest.raises(DiscoveryError, match="at least one"):
        await discover_ca("https://127.0.0.1:1", [], TOKEN_ID, TOKEN_SECRET)
