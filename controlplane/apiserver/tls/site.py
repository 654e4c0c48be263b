"""The HTTPS listener: an aiohttp site whose connections go through `TLSServerProtocol`.

aiohttp's TCPSite takes only an `ssl.SSLContext`, so `TLSSite` is TCPSite with the protocol
factory wrapped: the same `loop.create_server` call (host, port, backlog, address reuse), the
same registration with the runner, so `runner.cleanup()` stops it and shuts its connections
down exactly as before.

`serving_site` picks the TLS stack (`pinnace server --tls-backend`): `openssl` (default;
upstream's behaviour for certificates from another CA) or `stdlib` (the `ssl` module, which
refuses such certificates in the handshake).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web
from yarl import URL

from controlplane.apiserver import pki as pki_module
from controlplane.apiserver.tls.context import server_context
from controlplane.apiserver.tls.transport import HANDSHAKE_TIMEOUT, TLSServerProtocol
from controlplane.apiserver.tls.verify import ClientCAVerifier

__all__ = ["Backend", "TLSSite", "serving_site"]

Backend = Literal["openssl", "stdlib"]


class TLSSite(web.BaseSite):
    __slots__ = ("_bound_port", "_credentials", "_handshake_timeout", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        credentials: pki_module.PKI,
        *,
        backlog: int = 128,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._credentials = credentials
        self._handshake_timeout = handshake_timeout
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        return self._bound_port if self._bound_port is not None else self._port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="https", host=self._host or "0.0.0.0", port=self.port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        # Read once: every connection shares the context and the client CAs.
        context = server_context(self._credentials)
        verifier = ClientCAVerifier.from_pem_file(self._credentials.ca_cert)
        timeout = self._handshake_timeout

        def protocol() -> TLSServerProtocol:
            return TLSServerProtocol(context, verifier, server, handshake_timeout=timeout)

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def serving_site(
    runner: web.BaseRunner,
    host: str | None,
    port: int,
    credentials: pki_module.PKI,
    *,
    backlog: int = 128,
    backend: Backend = "openssl",
) -> web.BaseSite:
    if backend == "stdlib":
        return web.TCPSite(
            runner, host, port, ssl_context=pki_module.server_ssl_context(credentials), backlog=backlog
        )
    if backend != "openssl":
        raise ValueError(f"the TLS backend must be 'openssl' or 'stdlib', not {backend!r}")
    return TLSSite(runner, host, port, credentials, backlog=backlog)
