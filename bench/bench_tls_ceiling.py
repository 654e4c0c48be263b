"""The machine's ceiling for watch fan-out: how many bytes per second one core can push to 1,000
TLS connections through asyncio, with no HTTP, no storage and no Kubernetes at all.

G3 asks for 1,000 watchers x 100 events/s of the ~5 KiB Pod pinnace stores, i.e. about
`watchers x rate x event_bytes` of TLS payload per second leaving CPU 0. This benchmark measures
what the bare transport can do on the same machine, in the same layout as the other benchmarks:

- server (CPU 0): asyncio `create_server` with pinnace's serving certificate and client
  certificates required (the TLS setup of `pinnace server`), holding `watchers` connections; it
  writes the same `event_bytes` payload to every connection, round after round, as fast as it can
  (each round is one `transport.write` per connection: the fewest possible calls);
- client (CPU 1): non-blocking `ssl.SSLSocket`s under one `selectors` loop that only counts the
  bytes it reads: far cheaper than any HTTP client, so the server side sets the pace.

It prints the server's TLS fan-out throughput (MB/s and writes/s), its CPU per write, and the
ratio of that throughput to what G3 needs. A ratio under 1.0 means no server written on asyncio
TLS can meet G3 on this machine, whatever it does above the transport.

Usage: bench_tls_ceiling.py [--watchers 1000] [--event-bytes 5034] [--rate 100] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from common import (
    CLIENT_CPU,
    SERVER_CPU,
    BenchResult,
    Row,
    client_ssl_context,
    pinned,
    print_result,
    scratch_dir,
    server_ssl_context,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from controlplane.apiserver.pki import ensure_pki


async def _serve(pki: Path, watchers: int, size: int, duration: float) -> None:
    transports: list[asyncio.WriteTransport] = []
    all_connected = asyncio.Event()
    paused: set[Sink] = set()
    writable = asyncio.Event()
    writable.set()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.WriteTransport)
            transports.append(transport)
            if len(transports) == watchers:
                all_connected.set()

        # Flow control as a real server has it: stop writing while any socket's buffer is full.
        def pause_writing(self) -> None:
            paused.add(self)
            writable.clear()

        def resume_writing(self) -> None:
            paused.discard(self)
            if not paused:
                writable.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", 0, ssl=server_ssl_context(pki), backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await all_connected.wait()
    await asyncio.sleep(0.5)
    payload = b"x" * size
    rounds = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < duration:
        for t in transports:
            t.write(payload)
        rounds += 1
        await asyncio.sleep(0)
        await writable.wait()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    print(f"{rounds} {cpu:.6f} {wall:.6f}", flush=True)
    server.close()
    for t in transports:
        t.close()


def _read(port: int, pki: Path, watchers: int, stop: float) -> int:
    ctx = client_ssl_context(pki)
    selector = selectors.DefaultSelector()
    for _ in range(watchers):
        raw = socket.create_connection(("127.0.0.1", port))
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    total = 0
    deadline = time.monotonic() + stop
    while time.monotonic() < deadline and selector.get_map():
        for key, _ in selector.select(0.2):
            conn = key.fileobj
            assert isinstance(conn, ssl.SSLSocket)
            try:
                while data := conn.recv(1 << 18):
                    total += len(data)
                selector.unregister(conn)  # b"": the server closed
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError:
                selector.unregister(conn)
    return total


def run(
    watchers: int = 1000,
    event_bytes: int = 5034,
    rate: float = 100.0,
    duration: float = 5.0,
    coalesce: int = 1,
) -> BenchResult:
    """`coalesce` events are joined into each write (a server that delays flushes to batch them)."""
    write_bytes = event_bytes * coalesce
    result = BenchResult(
        f"TLS fan-out ceiling: {watchers:,} connections, {coalesce} event(s) of {event_bytes:,} bytes per write"
    )
    with scratch_dir("pinnace-bench-tls-") as root:
        pki_dir = root / "pki"
        ensure_pki(pki_dir, hostnames=["localhost"], ips=["127.0.0.1"])
        cmd = [
            sys.executable,
            __file__,
            "--serve",
            str(pki_dir),
            str(watchers),
            str(write_bytes),
            str(duration),
        ]
        server = subprocess.Popen(pinned(cmd, SERVER_CPU), stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            reader = subprocess.run(
                pinned(
                    [
                        sys.executable,
                        __file__,
                        "--read",
                        str(port),
                        str(pki_dir),
                        str(watchers),
                        str(duration + 30),
                    ],
                    CLIENT_CPU,
                ),
                capture_output=True,
                text=True,
                check=True,
            )
            rounds_s, cpu_s, wall_s = server.stdout.readline().split()
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    received = int(reader.stdout.split()[0])
    rounds, cpu, wall = int(rounds_s), float(cpu_s), float(wall_s)
    writes = rounds * watchers
    sent_mb_s = writes * write_bytes / wall / 1e6
    needed_mb_s = watchers * rate * event_bytes / 1e6
    busy = cpu / wall
    result.rows += [
        # A property of the machine, not a pinnace goal: informational, no verdict.
        Row("TLS payload pushed by one core", sent_mb_s, "MB/s", needed_mb_s, "what G3 needs"),
        Row(
            "writes/s (one per connection per round)",
            writes / wall,
            "/s",
            watchers * rate / coalesce,
            "G3 needs",
        ),
        Row("server CPU per write", 1e6 * cpu / writes if writes else float("nan"), "us"),
        Row("share of the core G3's bytes alone would take", 100 * busy * needed_mb_s / sent_mb_s, "%"),
        Row("server CPU (CPU0)", 100 * busy, "% of a core"),
    ]
    result.notes.append(
        f"client received {received / 1e6:,.0f} MB ({received / max(1, writes * write_bytes):.0%} of what was written "
        "while measuring; the rest was still in flight when the server stopped counting)"
    )
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        pki, watchers, size, duration = sys.argv[2:6]
        asyncio.run(_serve(Path(pki), int(watchers), int(size), float(duration)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--read":
        port, pki, watchers, stop = sys.argv[2:6]
        print(_read(int(port), Path(pki), int(watchers), float(stop)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument(
        "--event-bytes", type=int, default=5034, help="pinnace's stored ~2 KiB Pod is 5,034 bytes"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="G3's events per second")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--coalesce", type=int, default=1, help="events joined into one write")
    args = parser.parse_args()
    print_result(run(args.watchers, args.event_bytes, args.rate, args.duration, args.coalesce))


if __name__ == "__main__":
    main()
