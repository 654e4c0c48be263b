"""G2b, LIST of 3,000 pods in one namespace, and server memory per stored pod.

Stores `pods` ~2 KiB Pods (64 concurrent creates), then LISTs the namespace `repeats` times, one
request at a time; latency is request sent to last byte received (the client parses the body
afterwards, outside the timing, to check the item count). Target: p99 <= 0.5 s.
Memory: the server's VmRSS (/proc/<pid>/status) just before the creates and after them, the
difference scaled to 10,000 pods; reported, not judged. RSS after the LISTs is shown as well,
since serving a LIST allocates the whole response.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time

import loadgen
import orjson
from common import (
    BenchResult,
    Row,
    namespace_body,
    percentile,
    pin_self_to_client_cpu,
    pinnace_server,
    pod_bytes,
    pods_path,
    print_result,
    proc_rss_kib,
    scratch_dir,
)


async def _store(url: str, ssl_ctx: ssl.SSLContext, pods: int, concurrency: int) -> float:
    """Create `pods` pods; returns creates/s."""
    headers = {"Content-Type": "application/json"}
    async with loadgen.session(ssl_ctx, concurrency) as sess:
        async with sess.post(url + "/api/v1/namespaces", data=namespace_body(), headers=headers) as resp:
            assert resp.status in (201, 409), await resp.text()
        names = iter(range(pods))
        path = url + pods_path()

        async def worker() -> None:
            for i in names:
                for _attempt in range(5):
                    async with sess.post(
                        path, data=pod_bytes(f"checkout-7d9c5b8f6d-{i:07d}"), headers=headers
                    ) as resp:
                        await resp.read()
                        if resp.status in (201, 409):
                            break
                else:
                    raise RuntimeError(f"could not create pod {i}: {resp.status}")

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return pods / (time.monotonic() - start)


async def _lists(url: str, ssl_ctx: ssl.SSLContext, repeats: int, expect: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    size = 0
    async with loadgen.session(ssl_ctx, 1) as sess:
        for _ in range(repeats):
            t0 = time.monotonic()
            async with sess.get(url + pods_path()) as resp:
                body = await resp.read()
            latencies.append(time.monotonic() - t0)
            assert resp.status == 200, body[:300]
            items = len(orjson.loads(body)["items"])
            if items != expect:
                raise RuntimeError(f"LIST returned {items} pods, expected {expect}")
            size = len(body)
    return latencies, size


def run(
    pods: int = 3000, repeats: int = 30, concurrency: int = 64, server_args: tuple[str, ...] = ()
) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(f"LIST of {pods:,} pods in one namespace; server RSS")
    with scratch_dir("pinnace-bench-list-") as root, pinnace_server(root, server_args, name="list") as server:
        ssl_ctx = server.client_ssl()
        time.sleep(1.0)  # let start-up allocations settle
        rss_before = proc_rss_kib(server.pid)
        create_rate = asyncio.run(_store(server.url, ssl_ctx, pods, concurrency))
        time.sleep(1.0)
        rss_after = proc_rss_kib(server.pid)
        latencies, size = asyncio.run(_lists(server.url, ssl_ctx, repeats, pods))
        rss_after_lists = proc_rss_kib(server.pid)
    per_10k_mib = (rss_after - rss_before) / pods * 10_000 / 1024
    p99 = percentile(latencies, 99)
    result.rows += [
        Row(f"LIST {pods:,} pods p99 ({repeats} LISTs)", p99 * 1000, "ms", None, "", "<= 500 ms", p99 <= 0.5),
        Row("LIST p50", percentile(latencies, 50) * 1000, "ms"),
        Row("LIST response size", size / 1024 / 1024, "MiB"),
        Row("server RSS growth per 10k stored pods", per_10k_mib, "MiB"),
        Row("server RSS before creates", rss_before / 1024, "MiB"),
        Row(f"server RSS after {pods:,} creates", rss_after / 1024, "MiB"),
        Row("server RSS after the LISTs", rss_after_lists / 1024, "MiB"),
        Row("create rate while storing (info)", create_rate, "/s"),
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print_result(run(args.pods, args.repeats))


if __name__ == "__main__":
    main()
