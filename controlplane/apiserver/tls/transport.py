"""TLS over asyncio with pyOpenSSL memory BIOs: a Protocol for the socket, a Transport for aiohttp.

The shape is Twisted's TLSMemoryBIOProtocol (and asyncio's own sslproto): `TLSServerProtocol` is
the socket transport's protocol; it feeds what arrives into the OpenSSL connection's read BIO,
sends what OpenSSL writes to its write BIO, and, once the handshake is done, hands decrypted bytes
to the application protocol (aiohttp's RequestHandler) through `TLSTransport`, which behaves as
asyncio's SSL transport does for it: writes are encrypted and sent at once (so the socket
transport's buffer is the only one, and its pause_writing/resume_writing reach aiohttp
unchanged), pause_reading stops decryption as well as the socket, close sends close_notify.

The application protocol is made only after a successful handshake, as asyncio does; a handshake
that fails, times out or sees the connection close is logged at debug level and the socket
closed: clients probing with the wrong protocol are not the server's problem.

What the client presented is kept as a `verify.ClientCertificate` (`client_certificate()` is the
typed accessor authentication uses); "peercert" in `get_extra_info` is the stdlib's dict and,
as there, only for a certificate that verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

from OpenSSL import SSL, crypto

from controlplane.apiserver.tls.peercert import peercert_dict
from controlplane.apiserver.tls.verify import CertificateRejected, ClientCAVerifier, ClientCertificate

__all__ = ["HANDSHAKE_TIMEOUT", "TLSServerProtocol", "TLSTransport", "client_certificate"]

log = logging.getLogger(__name__)

# asyncio's default ssl_handshake_timeout, which the stdlib path has.
HANDSHAKE_TIMEOUT = 60.0
# SSL_read returns at most one record's plaintext (16 KiB).
_READ_SIZE = 16384
# Below glibc's mmap threshold, so each flush buffer is a cheap malloc; bigger output loops.
_FLUSH_SIZE = 65536

_Buffer = bytes | bytearray | memoryview


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        # [(library, function, reason), ...] from OpenSSL's error queue.
        return "; ".join(str(entry[-1]) for entry in exc.args[0]) or type(exc).__name__
    return str(exc) or type(exc).__name__


class TLSServerProtocol(asyncio.Protocol):
    """One accepted connection: TLS between the socket transport and the application protocol."""

    def __init__(
        self,
        context: SSL.Context,
        verifier: ClientCAVerifier,
        app_factory: Callable[[], asyncio.Protocol],
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self._conn = SSL.Connection(context, None)
        self._conn.set_accept_state()
        self._verifier = verifier
        self._app_factory = app_factory
        self._handshake_timeout = handshake_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._raw: asyncio.Transport | None = None
        self._app: asyncio.Protocol | None = None
        self._transport: TLSTransport | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._peer_eof = False
        self._closing = False
        self._lost = False
        self._error: Exception | None = None
        self.client_certificate: ClientCertificate | None = None

    # --- the socket side -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(self._handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            # After close, abort or a failed handshake nothing more is read (nor connected).
            return
        try:
            self._conn.bio_write(data)
        except SSL.Error as exc:
            self._fail(exc)
            return
        if self._app is None and not self._handshake():
            return
        self._deliver()

    def eof_received(self) -> bool:
        if self._app is None:
            log.debug("TLS handshake with %s failed: connection closed by the peer", self._peer())
            return False
        self._peer_eof = True
        if not self._reading_paused:
            self._finish_eof()
        # Closing is ours to do (after close_notify and whatever is still queued).
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._closing = True
        if self._app is not None and not self._lost:
            self._lost = True
            self._app.connection_lost(exc if exc is not None else self._error)
        self._lost = True

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._app is not None and not self._lost:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._app is not None and not self._lost:
            self._app.resume_writing()

    # --- the handshake ---------------------------------------------------------------------------

    def _handshake(self) -> bool:
        """Advance the handshake; True once it completed and the application protocol is connected."""
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return False
        except SSL.Error as exc:
            log.debug("TLS handshake with %s failed: %s", self._peer(), _reason(exc))
            self._flush()  # the alert tells the client why
            self._closing = True
            self._cancel_timer()
            assert self._raw is not None
            self._raw.close()
            return False
        self._cancel_timer()
        self._flush()
        self.client_certificate = self._presented()
        self._transport = TLSTransport(self)
        app = self._app_factory()
        self._app = app
        app.connection_made(self._transport)
        if self._writing_paused:
            app.pause_writing()
        return True

    def _presented(self) -> ClientCertificate | None:
        leaf = self._conn.get_peer_certificate()
        if leaf is None:
            return None
        # On the server side OpenSSL's peer chain leaves the leaf out; parsing waits for the first
        # request that needs the certificate.
        chain = self._conn.get_peer_cert_chain() or []
        ders = [crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) for cert in (leaf, *chain)]
        return ClientCertificate(ders, self._verifier)

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._app is None and self._raw is not None:
            log.debug("TLS handshake with %s timed out after %.0f s", self._peer(), self._handshake_timeout)
            self._closing = True
            self._raw.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- data ------------------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Decrypt what has arrived and pass it on, until OpenSSL wants more or reading pauses."""
        conn = self._conn
        while not self._reading_paused and not self._closing:
            app = self._app
            if app is None:
                return
            try:
                chunk = conn.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._close_notify_received()
                return
            except SSL.Error as exc:
                self._fail(exc)
                return
            app.data_received(chunk)
        # Reading can make OpenSSL answer (a TLS 1.3 KeyUpdate, an alert).
        self._flush()

    def _flush(self) -> None:
        raw = self._raw
        if raw is None:
            return
        conn = self._conn
        while True:
            try:
                data = conn.bio_read(_FLUSH_SIZE)
            except SSL.WantReadError:
                return
            raw.write(data)
            if len(data) < _FLUSH_SIZE:
                return

    def write(self, data: _Buffer) -> None:
        if not data or self._closing:
            # asyncio's SSL transport drops writes after close too; aiohttp checks is_closing().
            return
        try:
            self._conn.sendall(data)
        except SSL.Error as exc:
            self._fail(exc)
            return
        self._flush()

    def pause_reading(self) -> None:
        self._reading_paused = True
        if self._raw is not None:
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self._raw is not None:
            self._raw.resume_reading()
        # Plaintext may be waiting inside OpenSSL; deliver it outside the caller's stack, as a
        # socket transport would.
        asyncio.get_running_loop().call_soon(self._resume_delivery)

    def _resume_delivery(self) -> None:
        if self._reading_paused or self._app is None or self._closing:
            return
        self._deliver()
        if self._peer_eof and not self._closing:
            self._finish_eof()

    # --- closing ---------------------------------------------------------------------------------

    def _close_notify_received(self) -> None:
        app = self._app
        if app is not None:
            # TLS has no half-close: whatever eof_received answers, the connection ends.
            app.eof_received()
        self.close()

    def _finish_eof(self) -> None:
        """The peer closed the TCP connection without close_notify: deliver, then end."""
        self._deliver()
        if self._closing:
            return
        app = self._app
        if app is not None:
            app.eof_received()
        self.close()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()  # close_notify
        self._flush()
        if self._raw is not None:
            self._raw.close()

    def abort(self) -> None:
        self._closing = True
        if self._raw is not None:
            self._raw.abort()

    def _fail(self, exc: SSL.Error) -> None:
        log.debug("TLS error on the connection from %s: %s", self._peer(), _reason(exc))
        self._error = ConnectionResetError(f"TLS error: {_reason(exc)}")
        self._closing = True
        self._flush()
        if self._raw is not None:
            self._raw.close()

    # --- what the transport tells ----------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing or self._raw is None or self._raw.is_closing()

    def _peer(self) -> Any:
        return self._raw.get_extra_info("peername") if self._raw is not None else None

    def extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peercert":
            cert = self.client_certificate
            if cert is None:
                return default
            try:
                return peercert_dict(cert.verified().leaf)
            except CertificateRejected:
                return default
        if name == "sslcontext":
            return self._conn.get_context()
        if name == "ssl_object":
            return self._conn
        if name == "cipher":
            return (self._conn.get_cipher_name(), self._conn.get_protocol_version_name(), None)
        if self._raw is None:
            return default
        return self._raw.get_extra_info(name, default)


class TLSTransport(asyncio.Transport):
    """What the application protocol writes to and reads from: asyncio's SSL transport's API."""

    __slots__ = ("_tls",)

    def __init__(self, tls: TLSServerProtocol) -> None:
        super().__init__()
        self._tls = tls

    @property
    def client_certificate(self) -> ClientCertificate | None:
        return self._tls.client_certificate

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tls.extra_info(name, default)

    def is_closing(self) -> bool:
        return self._tls.is_closing()

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.abort()

    def write(self, data: _Buffer) -> None:
        self._tls.write(data)

    def writelines(self, list_of_data: Iterable[_Buffer]) -> None:
        self._tls.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        raise NotImplementedError("TLS does not support half-closed connections")

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self._tls.pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_reading()

    def is_reading(self) -> bool:
        return not self._tls._reading_paused and not self._tls.is_closing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        raw = self._tls._raw
        if raw is not None:
            raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        raw = self._tls._raw
        return raw.get_write_buffer_size() if raw is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        raw = self._tls._raw
        return raw.get_write_buffer_limits() if raw is not None else (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls._app = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        app = self._tls._app
        assert app is not None
        return app


def client_certificate(transport: asyncio.BaseTransport | None) -> ClientCertificate | None:
    """What the client presented on this connection, when it is one of ours and presented one."""
    if isinstance(transport, TLSTransport):
        return transport.client_certificate
    return None
