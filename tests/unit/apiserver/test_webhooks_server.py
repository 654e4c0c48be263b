"""A real HTTPS webhook server for tests (a CA and serving certificate made with cryptography,
aiohttp in a thread of its own so that blocking callers such as kubectl work too), and the
tests of the webhook client against it: TLS checked against caBundle, the service's DNS name
as TLS server name, and the failures worded as upstream's."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.api.resources import default_registry
from controlplane.apiserver.webhooks import client

Obj = dict[str, Any]
Handler = Callable[[str, Obj], Awaitable[Obj] | Obj]


@dataclass(frozen=True)
class TLS:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(str(cert), str(key))
        return context


def make_tls(dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ("127.0.0.1",)) -> TLS:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TLS(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@dataclass
class WebhookServer:
    """Answers POSTs on any path with `handler(path, body)`; records what it was sent."""

    port: int
    requests: list[tuple[str, Obj]] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[Obj]:
        return [body for p, body in self.requests if p == path]


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server private; port 0 needs its socket
    assert isinstance(server, asyncio.Server)
    return int(server.sockets[0].getsockname()[1])


@contextmanager
def serve(tls: TLS, handler: Handler) -> Iterator[WebhookServer]:
    """The server runs on its own event loop in a thread until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        server: WebhookServer = state["server"]
        server.requests.append((request.path, body))
        answer = handler(request.path, body)
        if asyncio.iscoroutine(answer):
            answer = await answer
        return web.json_response(answer)

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
        await site.start()
        port = _bound_port(site)
        state["runner"] = runner
        state["server"] = WebhookServer(port=port)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    ready.wait(10)
    try:
        yield state["server"]
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def allow(uid_from: Obj, **response: Any) -> Obj:
    """An AdmissionReview answer to `uid_from` (the request body)."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid_from["request"]["uid"], "allowed": True, **response},
    }


# ---------------------------------------------------------------------------------------------
# The client against it


class _Ctx:
    """Only what `client.resolve` reads: the registry and an object store."""

    def __init__(self, objects: dict[tuple[str, str, str], Obj]) -> None:
        self.registry = default_registry()
        self.store = self
        self.objects = objects

    async def get_or_none(self, info: Any, namespace: str, name: str) -> Obj | None:
        return self.objects.get((info.plural, namespace, name))


@pytest.fixture(scope="module")
def tls() -> TLS:
    return make_tls(dns_names=("hook.webhooks.svc",))


def echo(path: str, body: Obj) -> Obj:
    return {"path": path, "got": body}


async def test_url_config_is_verified_against_the_ca_bundle(tls: TLS) -> None:
    with serve(tls, echo) as server:
        target = await client.resolve(
            _Ctx({}),  # type: ignore[arg-type]
            {"url": server.url("/check"), "caBundle": tls.ca_bundle},
            10,
        )
        assert target.url == f"{server.url('/check')}?timeout=10s"
        answer = await client.post_json(target, {"x": 1}, 10)
    assert answer == {"path": "/check", "got": {"x": 1}}


async def test_service_config_dials_the_endpoint_with_the_service_name_for_tls(tls: TLS) -> None:
    with serve(tls, echo) as server:
        objects = {
            ("services", "webhooks", "hook"): {
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}
            },
            ("endpoints", "webhooks", "hook"): {
                "subsets": [
                    {
                        "addresses": [{"ip": "127.0.0.1"}],
                        "ports": [{"name": "https", "port": server.port}],
                    }
                ]
            },
        }
        config = {
            "service": {"namespace": "webhooks", "name": "hook", "path": "/mutate"},
            "caBundle": tls.ca_bundle,
        }
        target = await client.resolve(_Ctx(objects), config, 5)  # type: ignore[arg-type]
        assert target.url == "https://hook.webhooks.svc:443/mutate?timeout=5s"
        assert target.server_hostname == "hook.webhooks.svc"
        answer = await client.post_json(target, {"y": 2}, 5)
    assert answer["path"] == "/mutate"


async def test_a_service_without_endpoints_is_worded_as_upstream() -> None:
    objects = {("services", "ns", "hook"): {"spec": {"ports": [{"port": 443}]}}}
    with pytest.raises(client.WebhookCallFailed, match=r'^no endpoints available for service "hook"$'):
        await client.resolve(_Ctx(objects), {"service": {"namespace": "ns", "name": "hook"}}, 10)  # type: ignore[arg-type]
    with pytest.raises(client.WebhookCallFailed, match=r'^service "gone" not found$'):
        await client.resolve(_Ctx({}), {"service": {"namespace": "ns", "name": "gone"}}, 10)  # type: ignore[arg-type]


async def test_an_unknown_authority_is_refused(tls: TLS) -> None:
    other = make_tls()
    with serve(tls, echo) as server:
        target = await client.resolve(
            _Ctx({}),  # type: ignore[arg-type]
            {"url": server.url("/x"), "caBundle": other.ca_bundle},
            10,
        )
        with pytest.raises(client.WebhookCallFailed) as caught:
            await client.post_json(target, {}, 10)
    assert str(caught.value) == (
        f'Post "{server.url("/x")}?timeout=10s": tls: failed to verify certificate: '
        "x509: certificate signed by unknown authority"
    )


async def test_a_slow_webhook_is_a_deadline_exceeded(tls: TLS) -> None:
    async def slow(path: str, body: Obj) -> Obj:
        await asyncio.sleep(1.3)
        return {}

    with serve(tls, slow) as server:
        target = await client.resolve(
            _Ctx({}),  # type: ignore[arg-type]
            {"url": server.url("/slow"), "caBundle": tls.ca_bundle},
            1,
        )
        with pytest.raises(client.WebhookCallFailed) as caught:
            await client.post_json(target, {}, 1)
    assert str(caught.value) == f'Post "{server.url("/slow")}?timeout=1s": context deadline exceeded'


async def test_a_refused_connection_reads_as_go_dial_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = await client.resolve(_Ctx({}), {"url": f"https://127.0.0.1:{port}/x"}, 10)  # type: ignore[arg-type]
    with pytest.raises(client.WebhookCallFailed) as caught:
        await client.post_json(target, {}, 10)
    assert str(caught.value) == (
        f'Post "https://127.0.0.1:{port}/x?timeout=10s": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
