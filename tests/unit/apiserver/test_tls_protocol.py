"""TLSServerProtocol against an in-memory pyOpenSSL client: deterministic checks of the states a
socket test cannot force (plaintext held while reading is paused, EOF while paused, close_notify
both ways, flow control before the application exists, a fatal record after the handshake)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from OpenSSL import SSL

from controlplane.apiserver.pki import PKI, ensure_pki
from controlplane.apiserver.tls.context import server_context
from controlplane.apiserver.tls.transport import TLSServerProtocol, TLSTransport
from controlplane.apiserver.tls.verify import ClientCAVerifier


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("data") / "pki", hostnames=[], ips=[])


class RawTransport(asyncio.Transport):
    """The socket transport's side: what the server sent, and whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.sent += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default


@dataclass
class App(asyncio.Protocol):
    received: list[bytes] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    transport: TLSTransport | None = None
    pause_after_first: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TLSTransport)
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        if self.pause_after_first and len(self.received) == 1:
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> None:
        self.events.append("eof")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(f"lost:{type(exc).__name__ if exc else None}")

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")


@dataclass
class Pair:
    server: TLSServerProtocol
    raw: RawTransport
    client: SSL.Connection
    app: App

    def to_server(self) -> None:
        try:
            data = self.client.bio_read(1 << 20)
        except SSL.WantReadError:
            return
        self.server.data_received(data)

    def to_client(self) -> None:
        if self.raw.sent:
            self.client.bio_write(bytes(self.raw.sent))
            self.raw.sent.clear()

    def handshake(self) -> None:
        for _ in range(10):
            try:
                self.client.do_handshake()
            except SSL.WantReadError:
                pass
            else:
                if self.app.transport is not None:
                    return
            self.to_server()
            self.to_client()
        raise AssertionError("no handshake")

    def client_reads(self) -> bytes:
        self.to_client()
        out = b""
        while True:
            try:
                out += self.client.recv(65536)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                return out


def make_pair(pki: PKI, app: App, *, max_version: int | None = None) -> Pair:
    server = TLSServerProtocol(server_context(pki), ClientCAVerifier.from_pem_file(pki.ca_cert), lambda: app)
    raw = RawTransport()
    server.connection_made(raw)
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
        ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    client = SSL.Connection(ctx, None)
    client.set_connect_state()
    return Pair(server, raw, client, app)


async def test_plaintext_held_while_paused_is_delivered_on_resume(pki: PKI) -> None:
    pair = make_pair(pki, App(pause_after_first=True))
    pair.handshake()
    for part in (b"one", b"two", b"three"):
        pair.client.sendall(part)  # three records
    pair.to_server()
    assert pair.app.received == [b"one"]
    assert not pair.raw.reading
    assert pair.app.transport is not None and not pair.app.transport.is_reading()
    pair.app.transport.resume_reading()
    assert pair.raw.reading
    await asyncio.sleep(0)  # delivery happens on the next loop iteration, no new bytes needed
    assert pair.app.received == [b"one", b"two", b"three"]


async def test_eof_while_paused_waits_for_resume(pki: PKI) -> None:
    pair = make_pair(pki, App(pause_after_first=True))
    pair.handshake()
    pair.client.sendall(b"a")
    pair.client.sendall(b"b")
    pair.to_server()
    assert pair.server.eof_received() is True
    assert pair.app.events == ["made"] and not pair.raw.closed
    assert pair.app.transport is not None
    pair.app.transport.resume_reading()
    await asyncio.sleep(0)
    assert pair.app.received == [b"a", b"b"]
    assert pair.app.events == ["made", "eof"]
    assert pair.raw.closed


async def test_close_notify_both_ways(pki: PKI) -> None:
    pair = make_pair(pki, App())
    pair.handshake()
    assert pair.app.transport is not None
    pair.app.transport.write(b"response")
    assert pair.client_reads() == b"response"
    pair.client.shutdown()
    pair.to_server()
    assert pair.app.events == ["made", "eof"]
    assert pair.raw.closed and pair.app.transport.is_closing()
    pair.to_client()
    # The server answered with its own close_notify.
    with pytest.raises(SSL.ZeroReturnError):
        pair.client.recv(10)
    pair.server.connection_lost(None)
    assert pair.app.events == ["made", "eof", "lost:None"]
    pair.app.transport.write(b"late")  # dropped, as asyncio's SSL transport does
    assert pair.raw.sent == b""


async def test_server_close_sends_close_notify(pki: PKI) -> None:
    pair = make_pair(pki, App())
    pair.handshake()
    assert pair.app.transport is not None
    pair.app.transport.writelines([b"a", b"b"])
    pair.app.transport.close()
    assert pair.raw.closed
    assert pair.client_reads() == b"ab"
    with pytest.raises(SSL.ZeroReturnError):
        pair.client.recv(10)


async def test_writing_paused_during_the_handshake_reaches_the_app_once_it_exists(pki: PKI) -> None:
    pair = make_pair(pki, App())
    pair.server.pause_writing()
    pair.handshake()
    assert pair.app.events == ["made", "pause_writing"]
    pair.server.resume_writing()
    assert pair.app.events[-1] == "resume_writing"


async def test_garbage_after_the_handshake_is_a_connection_error(pki: PKI) -> None:
    pair = make_pair(pki, App())
    pair.handshake()
    pair.server.data_received(b"\x17\x03\x03\x00\x05hello")  # a record that does not decrypt
    assert pair.raw.closed
    pair.server.connection_lost(None)
    assert pair.app.events == ["made", "lost:ConnectionResetError"]


async def test_tls_11_is_refused_by_the_server(pki: PKI) -> None:
    pair = make_pair(pki, App(), max_version=SSL.TLS1_1_VERSION)
    with pytest.raises(SSL.Error, match="protocol version"):
        pair.handshake()
    assert pair.raw.closed
    assert pair.app.events == []


async def test_handshake_timeout_aborts(pki: PKI) -> None:
    app = App()
    server = TLSServerProtocol(
        server_context(pki), ClientCAVerifier.from_pem_file(pki.ca_cert), lambda: app, handshake_timeout=0.01
    )
    raw = RawTransport()
    server.connection_made(raw)
    await asyncio.sleep(0.05)
    assert raw.aborted
    # A ClientHello that arrives after the abort (before connection_lost) starts nothing.
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    server.data_received(client.bio_read(65536))
    assert raw.sent == b""
    assert app.events == []


async def test_abort_sends_nothing_more(pki: PKI) -> None:
    pair = make_pair(pki, App())
    pair.handshake()
    assert pair.app.transport is not None
    pair.app.transport.abort()
    assert pair.raw.aborted and pair.app.transport.is_closing()
    pair.app.transport.write(b"after abort")
    assert pair.raw.sent == b""
    assert not pair.app.transport.can_write_eof()
    with pytest.raises(NotImplementedError):
        pair.app.transport.write_eof()
