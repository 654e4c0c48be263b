"""G3, watch fan-out: 1,000 concurrent watchers on one namespace's pods while a writer creates
~2 KiB Pods at a fixed rate (100/s); every event must reach every watcher, quickly.

Processes: the server on CPU 0; the writer (this process) and `procs` watcher processes on
CPU 1, each holding watchers/procs HTTPS watch streams (one aiohttp session per process).

Definitions (all timestamps are CLOCK_MONOTONIC, which every process on the host shares):
- t_send(rv): the writer's clock just before it sent the POST that produced revision rv;
- t_ack(rv): the writer's clock when the 201 response (the commit acknowledgement) was read;
- t_recv(w, rv): watcher w's clock when it read the event line carrying rv off its stream.
- delivery latency = t_recv(w, rv) - t_send(rv), for every (watcher, event). This is an upper
  bound on commit-to-client latency: the commit happens between send and ack. Target p99 <= 100 ms.
  The same from t_ack is also shown; it can be negative, since the server may publish an event
  to watchers before the writer reads its own acknowledgement.
- last-watcher latency(rv) = max over watchers of t_recv(w, rv) - t_send(rv).
- complete: every watcher received every written event (checked by revision) before the drain
  deadline (`drain` seconds after the last write was acknowledged). Target: no missing delivery.

The same client code is first run against the bare baseline server (aiohttp + orjson, encode
once, one queue per watcher, no storage): if the baseline misses the latency target too, the
client processes on the shared CPU 1 are the bottleneck, not pinnace.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import os
import ssl
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from common import (
    CLIENT_CPU,
    BaselineServer,
    BenchResult,
    CpuMeter,
    Row,
    client_ssl_context,
    namespace_body,
    percentile,
    pin_self_to_client_cpu,
    pinnace_server,
    pinned,
    pod_bytes,
    pods_path,
    print_result,
    scratch_dir,
)

_RV = b'"resourceVersion":"'


# --- watcher process ------------------------------------------------------------------------------


async def _child(url: str, pki: Path, start_rv: str, count: int, out: Path, timeout: int) -> None:
    ssl_ctx = client_ssl_context(pki)
    watcher_ids = array.array("i")
    rvs = array.array("q")
    times = array.array("d")
    counts = [0] * count
    errors = {"error_events": 0, "disconnects": 0, "bad_status": 0}
    query = f"?watch=true&resourceVersion={start_rv}&timeoutSeconds={timeout}&allowWatchBookmarks=false"
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=0)
    ready = 0
    all_ready = asyncio.Event()
    target = [1 << 62]
    done = asyncio.Event()
    complete = 0

    async def watch(index: int, sess: aiohttp.ClientSession) -> None:
        nonlocal ready, complete
        async with sess.get(url + pods_path() + query) as resp:
            ready += 1
            if ready == count:
                all_ready.set()
            if resp.status != 200:
                errors["bad_status"] += 1
                return
            clock = time.monotonic
            pending = b""
            # Read whatever arrived (one timestamp per read) and scan it for event lines: the
            # client must cost far less than the server it measures, so no per-line readline
            # or JSON decoding, only the resourceVersion of each complete line.
            async for data in resp.content.iter_any():
                t = clock()
                buf = pending + data if pending else data
                start = 0
                end = buf.find(b"\n", start)
                while end >= 0:
                    i = buf.find(_RV, start, end)
                    if i < 0 or buf.startswith(b'{"type":"ERROR"', start):
                        if buf[start:end].strip():
                            errors["error_events"] += 1
                    else:
                        j = i + len(_RV)
                        rv = int(buf[j : buf.index(b'"', j)])
                        watcher_ids.append(index)
                        rvs.append(rv)
                        times.append(t)
                        counts[index] += 1
                        if counts[index] == target[0]:
                            complete += 1
                            if complete == count:
                                done.set()
                    start = end + 1
                    end = buf.find(b"\n", start)
                pending = buf[start:]
        errors["disconnects"] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as sess:
        tasks = [asyncio.ensure_future(watch(i, sess)) for i in range(count)]
        await asyncio.wait_for(all_ready.wait(), 120)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        expected, drain = line.split()
        target[0] = int(expected)
        complete = sum(1 for c in counts if c >= target[0])
        if complete == count:
            done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), float(drain))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    with out.open("wb") as f:
        f.write(struct.pack("<q", len(rvs)))
        f.write(watcher_ids.tobytes())
        f.write(rvs.tobytes())
        f.write(times.tobytes())
    print(orjson.dumps(errors).decode(), flush=True)


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class WatchRun:
    writes: dict[int, tuple[float, float]] = field(default_factory=dict)  # rv -> (t_send, t_ack)
    write_failures: int = 0
    write_rate: float = 0.0
    latencies: list[float] = field(default_factory=list)  # t_recv - t_send, every delivery
    ack_latencies: list[float] = field(default_factory=list)
    last_watcher: list[float] = field(default_factory=list)
    expected: int = 0
    delivered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    span: float = 0.0  # first write sent to last event received
    server_cpu_seconds: float = 0.0  # writes and drain: the whole cost of this run's events

    @property
    def cpu_per_delivery_us(self) -> float:
        return 1e6 * self.server_cpu_seconds / self.delivered if self.delivered else float("nan")

    @property
    def missing(self) -> int:
        return self.expected - self.delivered


async def _writer(url: str, ssl_ctx: ssl.SSLContext, rate: float, duration: float, run: WatchRun) -> None:
    headers = {"Content-Type": "application/json"}
    total = int(rate * duration)
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=64)
    async with aiohttp.ClientSession(connector=connector) as sess:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def write(k: int) -> None:
            t_send = time.monotonic()
            try:
                async with sess.post(
                    url + pods_path(), data=pod_bytes(f"w-{k:07d}"), headers=headers
                ) as resp:
                    body = await resp.read()
                    t_ack = time.monotonic()
                    if resp.status != 201:
                        run.write_failures += 1
                        return
            except aiohttp.ClientError:
                run.write_failures += 1
                return
            rv = int(orjson.loads(body)["metadata"]["resourceVersion"])
            run.writes[rv] = (t_send, t_ack)

        tasks = []
        for k in range(total):  # open loop: write k is due at start + k/rate whatever came before
            delay = start + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(write(k)))
        await asyncio.gather(*tasks)
        run.write_rate = total / (loop.time() - start)


async def _prepare(url: str, ssl_ctx: ssl.SSLContext) -> str:
    """Create the namespace; return the collection's current resourceVersion to watch from."""
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx)) as sess:
        async with sess.post(url + "/api/v1/namespaces", data=namespace_body(), headers=headers) as resp:
            await resp.read()
        async with sess.get(url + pods_path()) as resp:
            return str(orjson.loads(await resp.read())["metadata"].get("resourceVersion", "0"))


def _watch_run(
    url: str,
    pki: Path,
    server_pid: int,
    workdir: Path,
    *,
    watchers: int,
    procs: int,
    rate: float,
    duration: float,
    drain: float,
) -> WatchRun:
    ssl_ctx = client_ssl_context(pki)
    start_rv = asyncio.run(_prepare(url, ssl_ctx))
    timeout = int(duration + drain + 120)
    per = [watchers // procs + (1 if i < watchers % procs else 0) for i in range(procs)]
    children: list[tuple[subprocess.Popen[str], Path]] = []
    for i, count in enumerate(per):
        out = workdir / f"watch-{os.getpid()}-{time.monotonic_ns()}-{i}.bin"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            url,
            str(pki),
            start_rv,
            str(count),
            str(out),
            str(timeout),
        ]
        proc = subprocess.Popen(
            pinned(cmd, CLIENT_CPU), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        children.append((proc, out))
    run = WatchRun()
    try:
        for proc, _ in children:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"watcher process failed to start: {line!r}")
        time.sleep(0.5)
        server_meter = CpuMeter([server_pid])
        client_meter = CpuMeter([os.getpid(), *(p.pid for p, _ in children)])
        server_meter.start()
        client_meter.start()
        asyncio.run(_writer(url, ssl_ctx, rate, duration, run))
        run.server_cpu = server_meter.percent()
        run.client_cpu = client_meter.percent()
        all_cpu_start = server_meter.start_cpu
        for proc, _ in children:
            assert proc.stdin is not None
            proc.stdin.write(f"{len(run.writes)} {drain}\n")
            proc.stdin.flush()
        for proc, _ in children:
            assert proc.stdout is not None
            summary = orjson.loads(proc.stdout.readline() or "{}")
            for k, v in summary.items():
                run.errors[k] = run.errors.get(k, 0) + v
            proc.wait(30)
        run.server_cpu_seconds = server_meter.total() - all_cpu_start
    finally:
        for proc, _ in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _analyse(run, [out for _, out in children], watchers)
    return run


def _analyse(run: WatchRun, files: list[Path], watchers: int) -> None:
    run.expected = watchers * len(run.writes)
    last: dict[int, float] = {}
    seen: set[tuple[int, int, int]] = set()
    for n, path in enumerate(files):
        data = path.read_bytes()
        (count,) = struct.unpack_from("<q", data)
        off = 8
        ids = array.array("i", data[off : off + 4 * count])
        off += 4 * count
        rvs = array.array("q", data[off : off + 8 * count])
        off += 8 * count
        times = array.array("d", data[off : off + 8 * count])
        path.unlink()
        for w, rv, t in zip(ids, rvs, times, strict=True):
            sent = run.writes.get(rv)
            if sent is None or (n, w, rv) in seen:
                continue
            seen.add((n, w, rv))
            run.latencies.append(t - sent[0])
            run.ack_latencies.append(t - sent[1])
            if t > last.get(rv, 0.0):
                last[rv] = t
    run.delivered = len(seen)
    if last and run.writes:
        # Throughput over the time events were actually flowing: first send to last receipt.
        run.span = max(last.values()) - min(sent for sent, _ in run.writes.values())
    run.last_watcher = [t - run.writes[rv][0] for rv, t in last.items()]


def _rows(run: WatchRun, label: str, watchers: int, rate: float, base: WatchRun | None) -> list[Row]:
    def b(value: float | None) -> tuple[float | None, str]:
        return (value, "bare fan-out server") if base is not None else (None, "")

    p99 = percentile(run.latencies, 99)
    rows = [
        Row(
            f"{label}: missing deliveries",
            float(run.missing),
            f"of {run.expected:,}",
            *b(float(base.missing) if base else None),
            "0",
            run.missing == 0,
        ),
        Row(
            f"{label}: delivery latency p99 (from send)",
            p99 * 1000,
            "ms",
            *b(percentile(base.latencies, 99) * 1000 if base else None),
            "<= 100 ms",
            p99 <= 0.1,
        ),
        Row(
            f"{label}: delivery latency p50 (from send)",
            percentile(run.latencies, 50) * 1000,
            "ms",
            *b(percentile(base.latencies, 50) * 1000 if base else None),
        ),
        Row(
            f"{label}: delivery latency p99 (from ack)",
            percentile(run.ack_latencies, 99) * 1000,
            "ms",
            *b(percentile(base.ack_latencies, 99) * 1000 if base else None),
        ),
        Row(
            f"{label}: last-watcher latency p99",
            percentile(run.last_watcher, 99) * 1000,
            "ms",
            *b(percentile(base.last_watcher, 99) * 1000 if base else None),
        ),
        Row(
            f"{label}: achieved write rate (target {rate:.0f}/s)",
            run.write_rate,
            "/s",
            *b(base.write_rate if base else None),
        ),
        Row(
            f"{label}: deliveries/s (first send to last receipt)",
            run.delivered / run.span if run.span else 0.0,
            "/s",
            *b(base.delivered / base.span if base and base.span else None),
        ),
        Row(
            f"{label}: server CPU per delivered event",
            run.cpu_per_delivery_us,
            "us",
            *b(base.cpu_per_delivery_us if base else None),
        ),
        Row(
            f"{label}: server CPU (CPU0)",
            run.server_cpu,
            "% of a core",
            *b(base.server_cpu if base else None),
        ),
        Row(
            f"{label}: client CPU (CPU1, writer+watchers)",
            run.client_cpu,
            "% of a core",
            *b(base.client_cpu if base else None),
        ),
    ]
    if base is None:
        for r in rows:
            r.baseline = None
    return rows


def run(
    watchers: int = 1000,
    rate: float = 100.0,
    duration: float = 10.0,
    procs: int = 2,
    drain: float = 10.0,
    baseline: bool = True,
    server_args: tuple[str, ...] = (),
) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(f"Watch fan-out: {watchers:,} watchers, {rate:.0f} writes/s for {duration:.0f} s")
    with (
        scratch_dir("pinnace-bench-watch-") as root,
        pinnace_server(root, server_args, name="watch") as server,
    ):
        base_run: WatchRun | None = None
        if baseline:
            bare = BaselineServer(server.pki, pod_bytes("w-0"), root)
            bare.start()
            try:
                base_run = _watch_run(
                    bare.url,
                    server.pki,
                    bare.pid,
                    root,
                    watchers=watchers,
                    procs=procs,
                    rate=rate,
                    duration=duration,
                    drain=drain,
                )
            finally:
                bare.stop()
        ours = _watch_run(
            server.url,
            server.pki,
            server.pid,
            root,
            watchers=watchers,
            procs=procs,
            rate=rate,
            duration=duration,
            drain=drain,
        )
    result.rows += _rows(ours, "pinnace", watchers, rate, base_run)
    for name, r in (("pinnace", ours), ("bare", base_run)):
        if r is not None and (r.errors or r.write_failures):
            result.notes.append(f"{name}: write failures {r.write_failures}, watcher errors {r.errors}")
    result.notes.append(f"{procs} watcher processes on CPU1; drain window {drain:.0f} s after the last write")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, pki, start_rv, count, out, timeout = sys.argv[2:8]
        asyncio.run(_child(url, Path(pki), start_rv, int(count), Path(out), int(timeout)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="writes per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of writes")
    parser.add_argument("--procs", type=int, default=2, help="watcher processes (all on CPU1)")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print_result(run(args.watchers, args.rate, args.duration, args.procs, args.drain, not args.no_baseline))


if __name__ == "__main__":
    main()
