"""G2a, single-object GET: pinnace against a bare aiohttp + orjson handler returning the same bytes.

Both servers run on CPU 0 with the same TLS setup (pinnace's serving certificate, client
certificates required); the same aiohttp client (one session, keep-alive, `concurrency`
connections) on CPU 1 measures both, in the order baseline, pinnace, baseline.
Target: pinnace req/s >= 0.7x the mean of the two baseline runs.

The client is one Python process; when its CPU column nears 100 % the client, not the server,
set the pace, and the ratio overstates pinnace (both runs hit the same client ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics

import aiohttp
import loadgen
import orjson
from common import (
    BaselineServer,
    BenchResult,
    CpuMeter,
    Row,
    make_pod,
    namespace_body,
    pin_self_to_client_cpu,
    pinnace_server,
    pods_path,
    print_result,
    scratch_dir,
)

POD_NAME = "checkout-7d9c5b8f6d-x2x4q"
# No scheduler serves this name, so nothing writes the pod after it is created. Under the
# default scheduler the pod (there are no nodes) gets a PodScheduled=False condition a moment
# after its create, and the bytes read first would no longer be the bytes served.
UNSERVED_SCHEDULER = "bench-get-no-scheduler"


def _pod() -> bytes:
    pod = make_pod(POD_NAME)
    pod["spec"]["schedulerName"] = UNSERVED_SCHEDULER
    return orjson.dumps(pod)


async def _prepare(url: str, ssl_ctx: ssl.SSLContext) -> bytes:
    """Create the pod in pinnace and return the exact bytes pinnace serves for it."""
    async with loadgen.session(ssl_ctx, 2) as sess:
        headers = {"Content-Type": "application/json"}
        async with sess.post(url + "/api/v1/namespaces", data=namespace_body(), headers=headers) as resp:
            assert resp.status in (201, 409), await resp.text()
        async with sess.post(url + pods_path(), data=_pod(), headers=headers) as resp:
            assert resp.status == 201, await resp.text()
        async with sess.get(url + pods_path() + "/" + POD_NAME) as resp:
            assert resp.status == 200
            return await resp.read()


async def _measure(
    url: str, ssl_ctx: ssl.SSLContext, server_pid: int, concurrency: int, duration: float, size: int
) -> tuple[loadgen.LoadStats, float]:
    path = url + pods_path() + "/" + POD_NAME
    wrong_size: list[int] = []

    async def get(s: aiohttp.ClientSession, _: int) -> bool:
        async with s.get(path) as resp:
            body = await resp.read()
            if len(body) != size:
                wrong_size.append(len(body))
            return resp.status == 200

    async with loadgen.session(ssl_ctx, concurrency) as sess:
        meter = CpuMeter([server_pid])
        asyncio.get_running_loop().call_later(1.0, meter.start)
        stats = await loadgen.closed_loop(sess, get, concurrency=concurrency, duration=duration)
        cpu = meter.percent()
    if wrong_size:
        raise RuntimeError(f"the servers returned different bodies: {size} vs {wrong_size[:3]}")
    return stats, cpu


def run(duration: float = 8.0, concurrency: int = 64, server_args: tuple[str, ...] = ()) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(f"Single-object GET, {concurrency} concurrent TLS connections")
    with scratch_dir("pinnace-bench-get-") as root, pinnace_server(root, server_args, name="get") as server:
        ssl_ctx = server.client_ssl()
        body = asyncio.run(_prepare(server.url, ssl_ctx))
        baseline = BaselineServer(server.pki, body, root)
        baseline.start()
        try:
            b1, b1_cpu = asyncio.run(
                _measure(baseline.url, ssl_ctx, baseline.pid, concurrency, duration, len(body))
            )
            ours, ours_cpu = asyncio.run(
                _measure(server.url, ssl_ctx, server.pid, concurrency, duration, len(body))
            )
            b2, b2_cpu = asyncio.run(
                _measure(baseline.url, ssl_ctx, baseline.pid, concurrency, duration, len(body))
            )
        finally:
            baseline.stop()
    base_rate = statistics.mean([b1.rate, b2.rate])
    label = f"bare aiohttp+orjson; runs {b1.rate:,.0f} and {b2.rate:,.0f}/s"
    result.rows += [
        Row("GET req/s", ours.rate, "/s", base_rate, label, ">= 0.7x", ours.rate >= 0.7 * base_rate),
        Row("GET latency p50", ours.p(50) * 1000, "ms", statistics.mean([b1.p(50), b2.p(50)]) * 1000, "bare"),
        Row("GET latency p99", ours.p(99) * 1000, "ms", statistics.mean([b1.p(99), b2.p(99)]) * 1000, "bare"),
        Row("failed GETs", float(ours.failed), "", float(b1.failed + b2.failed), "bare"),
        Row("server CPU (CPU0)", ours_cpu, "% of a core", statistics.mean([b1_cpu, b2_cpu]), "bare"),
        Row(
            "client CPU (CPU1)",
            ours.client_cpu_percent,
            "% of a core",
            statistics.mean([b1.client_cpu_percent, b2.client_cpu_percent]),
            "bare",
        ),
    ]
    result.notes.append(f"response body: {len(body)} bytes (the pod as pinnace stores and returns it)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run (3 runs)")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print_result(run(args.duration, args.concurrency))


if __name__ == "__main__":
    main()
