"""Request bodies as the handlers read them: whole, however the client framed them, and refused
over the limit before being read."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api import errors
from controlplane.apiserver import codec

BODY = orjson.dumps({"kind": "Pod", "metadata": {"name": "p"}, "data": "x" * 70_000})


async def _echo(request: web.Request) -> web.Response:
    try:
        raw = await codec.read_body(request)
    except errors.StatusError as exc:
        return codec.status_response(exc)
    return web.Response(body=raw)


async def _client() -> TestClient[web.Request, web.Application]:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/", _echo)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_bodies_are_read_whole_however_they_are_framed() -> None:
    client = await _client()
    try:
        sized = await client.post("/", data=BODY)  # Content-Length
        assert sized.status == 200 and await sized.read() == BODY

        async def chunks() -> AsyncIterator[bytes]:
            for at in range(0, len(BODY), 10_000):
                yield BODY[at : at + 10_000]

        chunked = await client.post("/", data=chunks())  # Transfer-Encoding: chunked
        assert chunked.status == 200 and await chunked.read() == BODY

        compressed = await client.post("/", data=gzip.compress(BODY), headers={"Content-Encoding": "gzip"})
        assert compressed.status == 200 and await compressed.read() == BODY
    finally:
        await client.close()


async def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    client = await _client()
    try:
        big = b"x" * (codec.MAX_BODY_BYTES + 1)
        resp = await client.post("/", data=big)
        assert resp.status == 413
        assert (await resp.json())["message"] == "Request entity too large: limit is 3145728"
    finally:
        await client.close()
