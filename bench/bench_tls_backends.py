"""The API server's two TLS stacks side by side: `openssl` (pyOpenSSL over memory BIOs, the
default: upstream's 401 for a client certificate from another CA) against `stdlib` (asyncio's
`ssl` transport, which refuses such certificates in the handshake).

    .venv/bin/python bench/bench_tls_backends.py                        # ~3 minutes
    .venv/bin/python bench/bench_tls_backends.py --duration 4 --rounds 2  # quicker, noisier

Two `pinnace server`s (`--tls-backend stdlib` and `openssl`) run at once, both pinned to CPU 0;
the client runs on CPU 1 and measures them alternately (stdlib, openssl, openssl, stdlib, ...)
so drift hits both alike; rates are medians of the runs. Measured: keep-alive single-object
GETs (the request-rate cost of the record layer), GETs on a new connection each (handshake plus
client-certificate verification), and durable creates. Target: openssl >= 0.85x stdlib on
keep-alive GETs.

Because the machine is shared, it also measures each TLS layer alone, in memory (no sockets, no
HTTP): server CPU time per request/response of a 5 KB body through asyncio's SSLProtocol and
through TLSServerProtocol, and per full handshake with the admin client certificate (for openssl
including the first authentication's chain verification). CPU time per operation holds up far
better than requests/s when something else is using the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import statistics
import time
from asyncio import sslproto
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import bench_get
import bench_writes
import loadgen
from common import (
    BenchResult,
    CpuMeter,
    PinnaceServer,
    Row,
    pin_self_to_client_cpu,
    pinnace_server,
    pods_path,
    print_result,
    scratch_dir,
)

from controlplane.apiserver.authn import user_from_certificate
from controlplane.apiserver.pki import PKI, server_ssl_context
from controlplane.apiserver.tls.context import server_context
from controlplane.apiserver.tls.transport import TLSServerProtocol
from controlplane.apiserver.tls.verify import ClientCAVerifier

BACKENDS = ("stdlib", "openssl")


@contextlib.contextmanager
def _server(root: Path, backend: str, server_args: tuple[str, ...]) -> Iterator[PinnaceServer]:
    args = (*server_args, "--tls-backend", backend)
    with pinnace_server(root / backend, args, name=f"tls-{backend}") as server:
        yield server


async def _new_connection_gets(
    url: str, ssl_ctx: ssl.SSLContext, server_pid: int, concurrency: int, duration: float
) -> tuple[loadgen.LoadStats, float]:
    path = url + pods_path() + "/" + bench_get.POD_NAME
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=concurrency, force_close=True)

    async def get(s: aiohttp.ClientSession, _: int) -> bool:
        async with s.get(path) as resp:
            await resp.read()
            return resp.status == 200

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as sess:
        meter = CpuMeter([server_pid])
        asyncio.get_running_loop().call_later(1.0, meter.start)
        stats = await loadgen.closed_loop(sess, get, concurrency=concurrency, duration=duration)
        return stats, meter.percent()


async def _body_size(url: str, ssl_ctx: ssl.SSLContext) -> int:
    async with (
        loadgen.session(ssl_ctx, 1) as sess,
        sess.get(url + pods_path() + "/" + bench_get.POD_NAME) as resp,
    ):
        assert resp.status == 200
        return len(await resp.read())


def _alternating(rounds: int) -> list[str]:
    """stdlib, openssl, openssl, stdlib, ...: each backend goes first as often as second."""
    order: list[str] = []
    for i in range(rounds):
        order += list(BACKENDS) if i % 2 == 0 else list(reversed(BACKENDS))
    return order


# --- the TLS layers alone, in memory ------------------------------------------------------------

_REQUEST = b"GET /api/v1/namespaces/bench/pods/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000


class _Socket(asyncio.Transport):
    """The socket transport's place: collects what the server sends."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class _Echo(asyncio.Protocol):
    """Answers every chunk with the 5 KB response, as a handler would."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(_RESPONSE)


class _Layer:
    """One server-side TLS layer under test and an in-memory stdlib client talking to it."""

    def __init__(self, backend: str, pki: PKI, server_ctx: Any, verifier: ClientCAVerifier) -> None:
        self.backend = backend
        self.socket = _Socket()
        self.app = _Echo()
        client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        client_ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client_ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.tls: TLSServerProtocol | None = None
        self.spent = 0.0
        t0 = time.process_time()
        if backend == "openssl":
            self.tls = TLSServerProtocol(server_ctx, verifier, lambda: self.app)
            self.tls.connection_made(self.socket)
            self._proto: Any = self.tls
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._proto = sslproto.SSLProtocol(
                asyncio.get_running_loop(), self.app, server_ctx, waiter, server_side=True
            )
            self._proto.connection_made(self.socket)
        self.spent += time.process_time() - t0

    def feed(self, data: bytes) -> None:
        t0 = time.process_time()
        if self.tls is not None:
            self.tls.data_received(data)
        else:
            buffer = self._proto.get_buffer(len(data))
            memoryview(buffer)[: len(data)] = data
            self._proto.buffer_updated(len(data))
        self.spent += time.process_time() - t0

    def deliver(self) -> None:
        if self.socket.out:
            self.incoming.write(bytes(self.socket.out))
            self.socket.out.clear()

    async def handshake(self) -> None:
        for _ in range(20):
            try:
                self.client.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            if data := self.outgoing.read():
                self.feed(data)
            await asyncio.sleep(0)
            self.deliver()
        # The first request, where openssl verifies the client certificate.
        self.client.write(_REQUEST)
        self.feed(self.outgoing.read())
        if self.tls is not None:
            t0 = time.process_time()
            assert self.tls.client_certificate is not None
            assert user_from_certificate(self.tls.client_certificate.verified()) is not None
            self.spent += time.process_time() - t0
        for _ in range(3):
            await asyncio.sleep(0)
        self.deliver()
        self.read_all()

    def read_all(self) -> int:
        got = 0
        with contextlib.suppress(ssl.SSLWantReadError):
            while True:
                got += len(self.client.read(65536))
        return got

    def request(self) -> None:
        self.client.write(_REQUEST)
        self.feed(self.outgoing.read())
        self.deliver()
        assert self.read_all() == len(_RESPONSE)


async def _layer_costs(pki_dir: Path, repeats: int, requests: int, handshakes: int) -> dict[str, list[float]]:
    pki = PKI.at(pki_dir)
    verifier = ClientCAVerifier.from_pem_file(pki.ca_cert)
    contexts = {"stdlib": server_ssl_context(pki), "openssl": server_context(pki)}
    costs: dict[str, list[float]] = {}
    for backend in _alternating(repeats):
        layer = _Layer(backend, pki, contexts[backend], verifier)
        await layer.handshake()
        layer.spent = 0.0
        for _ in range(requests):
            layer.request()
        costs.setdefault(f"request {backend}", []).append(layer.spent / requests * 1e6)
        total = 0.0
        for _ in range(handshakes):
            fresh = _Layer(backend, pki, contexts[backend], verifier)
            await fresh.handshake()
            total += fresh.spent
        costs.setdefault(f"handshake {backend}", []).append(total / handshakes * 1e6)
    return costs


def layer_rows(pki_dir: Path, repeats: int = 3, requests: int = 10_000, handshakes: int = 100) -> list[Row]:
    costs = asyncio.run(_layer_costs(pki_dir, repeats, requests, handshakes))
    rows = []
    for kind, label in (
        ("request", "TLS layer CPU per 5 KB request/response (in memory)"),
        ("handshake", "TLS layer CPU per handshake with client cert (in memory)"),
    ):
        new, old = costs[f"{kind} openssl"], costs[f"{kind} stdlib"]
        rows.append(
            Row(
                label,
                statistics.median(new),
                "us",
                statistics.median(old),
                "stdlib; runs " + ", ".join(f"{v:.1f}" for v in old),
            )
        )
    return rows


def run(
    duration: float = 8.0, concurrency: int = 64, rounds: int = 3, server_args: tuple[str, ...] = ()
) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult("TLS stacks: pyOpenSSL (openssl) against asyncio's ssl (stdlib), same run")
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    p99: dict[tuple[str, str], list[float]] = {}
    cpu_per_request: dict[tuple[str, str], list[float]] = {}

    def record(kind: str, backend: str, stats: loadgen.LoadStats, cpu: float) -> None:
        rates.setdefault((kind, backend), []).append(stats.rate)
        cpus.setdefault((kind, backend), []).append(cpu)
        # CPU time per request holds up better than req/s when the machine is shared.
        cpu_per_request.setdefault((kind, backend), []).append(
            cpu * 10_000 / stats.rate if stats.rate else 0.0
        )
        p99.setdefault((kind, backend), []).append(stats.p(99) * 1000)
        if stats.failed:
            result.notes.append(f"{kind} on {backend}: {stats.failed} failed ({stats.errors})")

    with (
        scratch_dir("pinnace-bench-tls-backends-") as root,
        _server(root, "stdlib", server_args) as stdlib_server,
        _server(root, "openssl", server_args) as openssl_server,
    ):
        servers = {"stdlib": stdlib_server, "openssl": openssl_server}
        contexts = {name: server.client_ssl() for name, server in servers.items()}
        for name, s in servers.items():
            asyncio.run(bench_get._prepare(s.url, contexts[name]))
        for backend in _alternating(rounds):
            server = servers[backend]
            # The scheduler may have written the pod's status since; GET what is there now.
            size = asyncio.run(_body_size(server.url, contexts[backend]))
            stats, cpu = asyncio.run(
                bench_get._measure(server.url, contexts[backend], server.pid, concurrency, duration, size)
            )
            record("GET keep-alive", backend, stats, cpu)
        for backend in _alternating(rounds):
            server = servers[backend]
            stats, cpu = asyncio.run(
                _new_connection_gets(
                    server.url, contexts[backend], server.pid, max(1, concurrency // 4), duration
                )
            )
            record("GET new connection", backend, stats, cpu)
        layer = layer_rows(stdlib_server.pki)
        # One run each: the pod names restart from 0 on every run, so a second would conflict.
        for backend in _alternating(1):
            server = servers[backend]
            stats, cpu, _ = asyncio.run(
                bench_writes._load(server.url, contexts[backend], concurrency, duration, server.pid)
            )
            record("create", backend, stats, cpu)

    for kind, target in (("GET keep-alive", 0.85), ("GET new connection", None), ("create", None)):
        new = statistics.median(rates[(kind, "openssl")])
        old = statistics.median(rates[(kind, "stdlib")])
        runs = ", ".join(f"{r:,.0f}" for r in rates[(kind, "stdlib")])
        result.rows.append(
            Row(
                f"{kind} req/s",
                new,
                "/s",
                old,
                f"stdlib, median; runs {runs}",
                f">= {target}x" if target else "",
                (new >= target * old) if target else None,
            )
        )
        for metric, samples, unit, average, label in (
            ("p99", p99, "ms", statistics.mean, "stdlib"),
            ("server CPU per request", cpu_per_request, "us", statistics.median, "stdlib, median of runs"),
            ("server CPU", cpus, "% of a core", statistics.mean, "stdlib"),
        ):
            result.rows.append(
                Row(
                    f"{kind} {metric}",
                    average(samples[(kind, "openssl")]),
                    unit,
                    average(samples[(kind, "stdlib")]),
                    label,
                )
            )
    result.rows += layer
    result.notes.append(
        "openssl runs: "
        + "; ".join(
            f"{kind}: " + ", ".join(f"{r:,.0f}" for r in rates[(kind, "openssl")])
            for kind in ("GET keep-alive", "GET new connection", "create")
        )
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per backend for the GETs")
    args = parser.parse_args()
    print_result(run(args.duration, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
