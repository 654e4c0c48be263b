"""The pyOpenSSL listener end to end over loopback: client certificates requested but verified by
authentication (a stranger's is a 401, not a handshake failure), what aiohttp sees of the
transport, flow control both ways, close_notify, and quiet handling of broken handshakes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.api import errors
from controlplane.apiserver.authn import (
    AnonymousAuthenticator,
    ClientCertAuthenticator,
    TokenFileAuthenticator,
    UnionAuthenticator,
    require_user,
)
from controlplane.apiserver.pki import (
    PKI,
    client_ssl_context,
    ensure_pki,
    issue_client_cert,
    write_private_file,
)
from controlplane.apiserver.tls import TLSSite, client_certificate

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
CHUNK = 256 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("data") / "pki", hostnames=[], ips=[])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Another cluster's PKI: its admin certificate says system:masters, signed by another CA."""
    return ensure_pki(tmp_path_factory.mktemp("foreign") / "pki", hostnames=[], ips=[])


@dataclass
class Server:
    url: str
    port: int
    buffer_sizes: list[int]


@pytest.fixture
async def server(pki: PKI, tmp_path: Path) -> AsyncIterator[Server]:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cr3t,alice,uid-alice,"devs"\n')
    authenticator = AnonymousAuthenticator(
        UnionAuthenticator([ClientCertAuthenticator(), TokenFileAuthenticator(tokens)])
    )
    buffer_sizes: list[int] = []

    async def whoami(request: web.Request) -> web.Response:
        try:
            user = await require_user(authenticator, request)
        except errors.StatusError as exc:
            return web.json_response(exc.to_status(), status=exc.code)
        return web.json_response({"name": user.name, "groups": list(user.groups)})

    async def info(request: web.Request) -> web.Response:
        transport = request.transport
        assert transport is not None
        conn = transport.get_extra_info("ssl_object")
        peercert = transport.get_extra_info("peercert")
        return web.json_response(
            {
                "secure": request.secure,
                "alpn": conn.get_alpn_proto_negotiated().decode(),
                "version": conn.get_protocol_version_name(),
                "peername": list(transport.get_extra_info("peername"))[:2],
                "socket": transport.get_extra_info("socket") is not None,
                "presented": client_certificate(transport) is not None,
                "peercert_subject": peercert["subject"] if peercert else None,
            }
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        assert request.transport is not None
        block = bytes(range(256)) * (CHUNK // 256)
        for _ in range(int(request.query["chunks"])):
            await response.write(block)
            buffer_sizes.append(request.transport.get_write_buffer_size())
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0.001)  # a slow consumer: aiohttp pauses reading meanwhile
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/info", info)
    app.router.add_get("/stream", stream)
    app.router.add_post("/upload", upload)
    app.router.add_get("/{tail:.*}", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = TLSSite(runner, "127.0.0.1", 0, pki, handshake_timeout=0.5)
    await site.start()
    try:
        yield Server(f"https://127.0.0.1:{site.port}", site.port, buffer_sizes)
    finally:
        await runner.cleanup()


def _ctx(pki: PKI, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    if cert is None or key is None:
        return ssl.create_default_context(cafile=pki.ca_cert)
    return client_ssl_context(pki, cert, key)


async def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_cluster_certificate_authenticates_and_the_transport_looks_like_asyncios(
    server: Server, pki: PKI
) -> None:
    ctx = _ctx(pki, pki.admin_cert, pki.admin_key)
    assert await _get(server.url + "/api", ctx) == (
        200,
        {"name": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
    )
    status, info = await _get(server.url + "/info", ctx)
    assert status == 200
    assert info["secure"] is True
    assert info["alpn"] == "http/1.1"
    assert info["version"] in {"TLSv1.2", "TLSv1.3"}
    assert info["peername"][0] == "127.0.0.1"
    assert info["socket"] is True
    assert info["presented"] is True
    assert info["peercert_subject"] == [
        [["organizationName", "system:masters"]],
        [["commonName", "kubernetes-admin"]],
    ]


async def test_a_tls_12_client_is_served(server: Server, pki: PKI) -> None:
    ctx = _ctx(pki, pki.admin_cert, pki.admin_key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    status, info = await _get(server.url + "/info", ctx)
    assert (status, info["version"]) == (200, "TLSv1.2")


async def test_no_certificate_is_anonymous_only_on_public_paths(server: Server, pki: PKI) -> None:
    assert await _get(server.url + "/healthz", _ctx(pki)) == (
        200,
        {"name": "system:anonymous", "groups": ["system:unauthenticated"]},
    )
    assert await _get(server.url + "/api", _ctx(pki)) == (401, UNAUTHORIZED)
    status, info = await _get(server.url + "/info", _ctx(pki))
    assert (status, info["presented"], info["peercert_subject"]) == (200, False, None)


async def test_certificate_from_another_ca_completes_the_handshake_and_gets_401(
    server: Server, pki: PKI, foreign: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = _ctx(pki, foreign.admin_cert, foreign.admin_key)
    caplog.set_level(logging.INFO, logger="controlplane.apiserver.authn")
    # Bad credentials are never anonymous, not even where anonymous may go (NewFailOnError).
    for path in ("/api", "/api/v1/namespaces", "/healthz", "/version"):
        assert await _get(server.url + path, ctx) == (401, UNAUTHORIZED), path
    assert "certificate signed by unknown authority" in caplog.text
    status, info = await _get(server.url + "/info", ctx)
    assert (status, info["presented"], info["peercert_subject"]) == (200, True, None)


async def test_bad_certificate_with_a_valid_token_is_the_tokens_user(
    server: Server, pki: PKI, foreign: PKI
) -> None:
    ctx = _ctx(pki, foreign.admin_cert, foreign.admin_key)
    # Upstream's union goes on after the x509 error and the token authenticates.
    assert await _get(server.url + "/api", ctx, {"Authorization": "Bearer s3cr3t"}) == (
        200,
        {"name": "alice", "groups": ["devs", "system:authenticated"]},
    )
    assert await _get(server.url + "/api", ctx, {"Authorization": "Bearer wrong"}) == (401, UNAUTHORIZED)


async def test_serving_certificate_is_not_a_client_certificate(server: Server, pki: PKI) -> None:
    ctx = _ctx(pki, pki.serving_cert, pki.serving_key)
    assert await _get(server.url + "/api", ctx) == (401, UNAUTHORIZED)


async def test_issued_certificate_carries_its_groups(server: Server, pki: PKI, tmp_path: Path) -> None:
    cert, key = issue_client_cert(pki, "system:node:n1", ["system:nodes"])
    write_private_file(tmp_path / "n1.crt", cert)
    write_private_file(tmp_path / "n1.key", key)
    ctx = _ctx(pki, tmp_path / "n1.crt", tmp_path / "n1.key")
    assert await _get(server.url + "/api", ctx) == (
        200,
        {"name": "system:node:n1", "groups": ["system:nodes", "system:authenticated"]},
    )


async def test_large_response_to_a_slow_client_is_paced_by_the_socket(server: Server, pki: PKI) -> None:
    """aiohttp waits on drain when the socket transport pauses writing; without that propagation
    the whole 24 MiB would pile up in the write buffer."""
    chunks = 96
    ctx = _ctx(pki, pki.admin_cert, pki.admin_key)
    digest = hashlib.sha256()
    size = 0
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(server.url + f"/stream?chunks={chunks}") as resp,
    ):
        assert resp.headers["Transfer-Encoding"] == "chunked"
        async for block in resp.content.iter_chunked(64 * 1024):
            digest.update(block)
            size += len(block)
            if size < 4 * 1024 * 1024:
                await asyncio.sleep(0.002)
    expected = hashlib.sha256(bytes(range(256)) * (CHUNK // 256 * chunks)).hexdigest()
    assert (size, digest.hexdigest()) == (chunks * CHUNK, expected)
    assert max(server.buffer_sizes) < 4 * 1024 * 1024


async def test_large_upload_to_a_slow_handler_arrives_intact(server: Server, pki: PKI) -> None:
    body = hashlib.sha256(b"seed").digest() * (16 * 1024 * 1024 // 32)
    ctx = _ctx(pki, pki.admin_cert, pki.admin_key)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.post(server.url + "/upload", data=body) as resp,
    ):
        assert resp.status == 200
        assert await resp.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def test_keep_alive_then_connection_close_ends_with_close_notify(server: Server, pki: PKI) -> None:
    ctx = _ctx(pki, pki.admin_cert, pki.admin_key)

    def talk() -> bytes:
        with (
            socket.create_connection(("127.0.0.1", server.port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as tls,
        ):
            received = b""
            for connection in ("keep-alive", "keep-alive", "close"):
                tls.sendall(f"GET /api HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n".encode())
            # Without close_notify before the FIN, this raises SSLEOFError.
            while chunk := tls.recv(65536):
                received += chunk
            return received

    received = await asyncio.to_thread(talk)
    assert received.count(b"HTTP/1.1 200 OK") == 3


async def test_broken_handshakes_are_closed_quietly(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def exchange(payload: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(payload)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return data

    # Plain HTTP to the TLS port: an alert back, then the connection closes.
    assert (await exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))[:1] in (b"\x15", b"")
    # Nothing at all: the handshake timeout (0.5 s here) closes it.
    assert await exchange(b"") == b""
    # Half a ClientHello, then EOF.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "controlplane.apiserver.tls.transport"]
    assert any("handshake" in m and "failed" in m for m in messages)
    assert any("timed out" in m for m in messages)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
