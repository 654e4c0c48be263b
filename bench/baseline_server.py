"""The bare baseline server: aiohttp + orjson with pinnace's TLS setup (its serving certificate,
client certificates required), doing the least work that still answers the same requests.

- GET  /api/v1/namespaces/{ns}/pods/{name}: orjson-encodes one stored Pod dict (the bytes pinnace
  returned for the same pod) per request;
- POST /api/v1/namespaces/{ns}/pods: parses the body, stamps a resourceVersion from an in-memory
  counter (no storage), encodes the event once and queues it to every watcher, answers 201;
- GET  /api/v1/namespaces/{ns}/pods?watch=true: one chunked stream per watcher, fed from its queue.

Usage: baseline_server.py PKI_DIR POD_JSON_FILE (prints "listening on https://127.0.0.1:PORT").
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web


def _ssl(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Baseline:
    def __init__(self, pod_json: bytes) -> None:
        self.pod: dict[str, Any] = orjson.loads(pod_json)
        # Keep pinnace's framing (it ends bodies with a newline, as kube-apiserver does).
        self.suffix = pod_json[len(pod_json.rstrip()) :]
        self.revision = 1
        self.watchers: set[asyncio.Queue[bytes | None]] = set()

    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.pod) + self.suffix, content_type="application/json")

    async def collection(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") in ("true", "1"):
            return await self.watch(request)
        body = {"kind": "PodList", "metadata": {"resourceVersion": str(self.revision)}, "items": [self.pod]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def create(self, request: web.Request) -> web.Response:
        obj = orjson.loads(await request.read())
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        line = orjson.dumps({"type": "ADDED", "object": obj}) + b"\n"
        for q in self.watchers:
            q.put_nowait(line)
        return web.Response(status=201, body=orjson.dumps(obj), content_type="application/json")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.watchers.add(q)
        try:
            while (line := await q.get()) is not None:
                await response.write(line)
        finally:
            self.watchers.discard(q)
        return response

    def close(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)


async def main(pki: Path, pod: bytes) -> None:
    baseline = Baseline(pod)
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", baseline.get)
    app.router.add_get("/api/v1/namespaces/{ns}/pods", baseline.collection)
    app.router.add_post("/api/v1/namespaces/{ns}/pods", baseline.create)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_ssl(pki), backlog=1024)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on https://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    baseline.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()))
