"""The kubelet's HTTPS endpoint, as far as logs go: `GET /containerLogs/{ns}/{pod}/{container}`.

One server serves every simulated node of the process; the namespace and pod name pick the pod.
Errors are plain text with the kubelet's status codes and wording (its go-restful handler writes
the error string): 404 for an unknown pod or container, 400 when there is nothing to read yet or
no previous run, 422 for invalid options.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from node_bootstrap.agent.clock import Clock
from node_bootstrap.agent.logs import LogStore, parse_log_options, stream

__all__ = ["LogServer"]

log = logging.getLogger("pinnace.nodeagent.server")


class LogServer:
    def __init__(
        self,
        store: LogStore,
        *,
        clock: Clock,
        ssl_context: ssl.SSLContext,
        bind_address: str = "0.0.0.0",
        port: int = 10250,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ssl = ssl_context
        self._bind = bind_address
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._bind, self._port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])
        log.info("serving container logs on https://%s:%d", self._bind, self.port)
        return self.port

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod_name = request.match_info["pod"]
        container = request.match_info["container"]
        try:
            options = parse_log_options(dict(request.query))
        except ValueError:
            return _text(422, '{"message": "Invalid request."}')
        pod = self._store.get(namespace, pod_name)
        if pod is None:
            return _text(404, f'pod "{pod_name}" does not exist')
        if container not in pod.container_names:
            return _text(404, f'container "{container}" not found in pod "{pod_name}"')
        entry = pod.containers.get(container)
        if options.previous:
            buffer = entry.previous if entry is not None else None
            if buffer is None:
                return _text(
                    400, f'previous terminated container "{container}" in pod "{pod_name}" not found'
                )
        else:
            buffer = entry.current if entry is not None else None
            if buffer is None:
                return _text(
                    400, f'container "{container}" in pod "{pod_name}" is waiting to start: ContainerCreating'
                )
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        now = self._clock.now().timestamp()
        async for chunk in stream(buffer, options, now, self._closing):
            await response.write(chunk)
        await response.write_eof()
        return response


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")
