"""G1, durable writes: POST of ~2 KiB Pods from 64 concurrent TLS clients against the raw SQLite
commit rate of the same disk.

Baseline: a Python sqlite3 loop committing one kine-shaped row (~2 KiB value) per transaction,
WAL + synchronous=FULL, in a temp dir on the same filesystem as the server's data dir. It runs
before and after the server run; the mean of the two is the baseline.
Targets: creates/s >= 1.0x the baseline; p99 create latency <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import statistics
import time
from pathlib import Path

import aiohttp
import loadgen
from common import (
    BaselineServer,
    BenchResult,
    CpuMeter,
    Row,
    namespace_body,
    pin_self_to_client_cpu,
    pinnace_server,
    pod_bytes,
    pods_path,
    print_result,
    scratch_dir,
)

KINE_SCHEMA = """
CREATE TABLE kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name INTEGER, created INTEGER, deleted INTEGER,
    create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB
);
CREATE INDEX kine_name_index ON kine (name);
CREATE INDEX kine_name_id_index ON kine (name, id);
CREATE INDEX kine_id_deleted_index ON kine (id, deleted);
CREATE INDEX kine_prev_revision_index ON kine (prev_revision);
CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision);
"""


def sqlite_commit_rate(directory: Path, duration: float) -> float:
    """Single-row WAL+FULL commits per second, one kine-shaped row per transaction."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"baseline-{time.monotonic_ns()}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(KINE_SCHEMA)
        value = pod_bytes("checkout-7d9c5b8f6d-00000")
        n = 0
        start = time.perf_counter()
        stop_at = start + duration
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            n += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value,"
                " old_value) VALUES (?, 1, 0, 0, 0, 0, ?, NULL)",
                (f"/registry/pods/bench/p-{n}", value),
            )
            conn.execute("COMMIT")
        return n / (time.perf_counter() - start)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


async def _metric_average(sess: aiohttp.ClientSession, url: str, name: str) -> float:
    """sum/count of a Prometheus histogram on the server's /metrics."""
    async with sess.get(url + "/metrics") as resp:
        text = await resp.text()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_sum"):
            total = float(line.split()[-1])
        elif line.startswith(name + "_count"):
            count = float(line.split()[-1])
    return total / count if count else float("nan")


async def _load(
    url: str, ssl_ctx: object, concurrency: int, duration: float, server_pid: int, *, bare: bool = False
) -> tuple[loadgen.LoadStats, float, float]:
    assert hasattr(ssl_ctx, "wrap_socket")
    async with loadgen.session(ssl_ctx, concurrency) as sess:  # type: ignore[arg-type]
        if not bare:
            async with sess.post(
                url + "/api/v1/namespaces",
                data=namespace_body(),
                headers={"Content-Type": "application/json"},
            ) as resp:
                if resp.status not in (201, 409):
                    raise RuntimeError(f"namespace create: {resp.status} {await resp.text()}")
        path = url + pods_path()
        headers = {"Content-Type": "application/json"}

        async def create(s: aiohttp.ClientSession, i: int) -> bool:
            async with s.post(path, data=pod_bytes(f"checkout-7d9c5b8f6d-{i:07d}"), headers=headers) as resp:
                await resp.read()
                return resp.status == 201

        meter = CpuMeter([server_pid])
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, meter.start)  # after the warm-up
        stats = await loadgen.closed_loop(
            sess, create, concurrency=concurrency, duration=duration, counter=itertools.count()
        )
        server_cpu = meter.percent()
        batch = (
            float("nan")
            if bare
            else await _metric_average(sess, url, "pinnace_storage_group_commit_batch_size")
        )
    return stats, server_cpu, batch


def run(duration: float = 10.0, concurrency: int = 64, server_args: tuple[str, ...] = ()) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(f"Durable creates: ~2 KiB Pods, {concurrency} concurrent TLS clients")
    with scratch_dir("pinnace-bench-writes-") as root:
        base_before = sqlite_commit_rate(root / "sqlite-baseline", duration / 2)
        with pinnace_server(root, server_args, name="writes") as server:
            stats, server_cpu, batch = asyncio.run(
                _load(server.url, server.client_ssl(), concurrency, duration, server.pid)
            )
            # A ceiling for any aiohttp server here: the bare handler parses each POST and answers
            # 201 with no storage, validation or bookkeeping, through the same TLS and load generator.
            bare_server = BaselineServer(server.pki, pod_bytes("bare"), root)
            bare_server.start()
            try:
                bare, _, _ = asyncio.run(
                    _load(
                        bare_server.url,
                        server.client_ssl(),
                        concurrency,
                        duration,
                        bare_server.pid,
                        bare=True,
                    )
                )
            finally:
                bare_server.stop()
        base_after = sqlite_commit_rate(root / "sqlite-baseline", duration / 2)
    baseline = statistics.mean([base_before, base_after])
    label = f"SQLite WAL+FULL 1 row/commit; before {base_before:,.0f}/s, after {base_after:,.0f}/s"
    result.rows += [
        Row("durable creates/s", stats.rate, "/s", baseline, label, ">= 1.0x", stats.rate >= baseline),
        Row("create latency p99", stats.p(99) * 1000, "ms", None, "", "<= 100 ms", stats.p(99) <= 0.1),
        Row("bare aiohttp POST, no storage (ceiling)", bare.rate, "/s", baseline, label),
        Row("create latency p50", stats.p(50) * 1000, "ms"),
        Row("failed creates", float(stats.failed), ""),
        Row("avg group-commit batch (whole run)", batch, "writes"),
        Row("server CPU (CPU0)", server_cpu, "% of a core"),
        Row("client CPU (CPU1)", stats.client_cpu_percent, "% of a core"),
    ]
    if stats.errors:
        result.notes.append(f"errors: {stats.errors}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load (default 10)")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print_result(run(args.duration, args.concurrency))


if __name__ == "__main__":
    main()
