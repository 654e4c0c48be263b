"""A/B of the server's CPU per pod create and per pods/binding: this tree against a git ref.

Both servers run at once on CPU 0 (`--controllers= --disable-scheduler`), one from this tree and
one from `git archive <ref>` of it, with the same virtualenv. The load (from CPU 1) alternates
between them in rounds: `batch` creates of the scheduler_perf pod, then `batch` bindings of those
pods, on one server, then the same on the other (the order swaps every round). Each batch's
server CPU is read from /proc, so each round compares the two trees a few seconds apart, under
the same spell of a shared, noisy machine; the figure to read is the paired median of the
per-round ratios (this tree / ref), with its quartiles. Run it once with `--ref HEAD` and an
unchanged tree to see the noise floor (an A/A).

    .venv/bin/python bench/ab_create_bind.py --ref HEAD~1 [--rounds 12] [--batch 500]

Creates and bindings are what scheduler_perf through the API costs the server per pod
(bench_scheduler.py): the server's core is its limit there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import common
import orjson
from bench_scheduler import CONCURRENCY, pod_default, post_all
from common import PinnaceServer, pin_self_to_client_cpu, pinnace_server, scratch_dir

NAMESPACE = "ab"
WARMUP = 500


@contextlib.contextmanager
def tree_at(ref: str) -> Iterator[Path]:
    """`git archive ref` of this repository, unpacked in a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="pinnace-ab-") as scratch:
        archive = Path(scratch) / "tree.tar"
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(common.REPO), "archive", ref], stdout=out, check=True)
        root = Path(scratch) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        yield root


@contextlib.contextmanager
def server_from(tree: Path, data: Path) -> Iterator[PinnaceServer]:
    """A server whose `python -m controlplane` imports `tree` (its working directory)."""
    saved = common.REPO
    common.REPO = tree
    try:
        with pinnace_server(data, common.bare_server_args(tree), name=tree.name) as server:
            common.REPO = saved
            yield server
    finally:
        common.REPO = saved


def _pods_url(server: PinnaceServer) -> str:
    return f"{server.url}/api/v1/namespaces/{NAMESPACE}/pods"


def _binding(name: str, node: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "target": {"kind": "Node", "name": node},
        }
    )


async def _prepare(http: aiohttp.ClientSession, server: PinnaceServer) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    await post_all(http, [(f"{server.url}/api/v1/namespaces", orjson.dumps(namespace))])
    await post_all(
        http, [(_pods_url(server), orjson.dumps(pod_default(f"warm-{i}", NAMESPACE))) for i in range(WARMUP)]
    )


async def _round(
    http: aiohttp.ClientSession, server: PinnaceServer, round_no: int, batch: int
) -> tuple[float, float]:
    """Server CPU (ms) per create and per binding over one batch of each."""
    names = [f"r{round_no}-{i}" for i in range(batch)]
    meter = common.CpuMeter([server.pid])
    meter.start()
    _, failed = await post_all(
        http, [(_pods_url(server), orjson.dumps(pod_default(n, NAMESPACE))) for n in names]
    )
    created = meter.total() - meter.start_cpu
    meter.start()
    _, failed_binds = await post_all(
        http,
        [(f"{_pods_url(server)}/{n}/binding", _binding(n, f"node-{i % 100}")) for i, n in enumerate(names)],
    )
    bound = meter.total() - meter.start_cpu
    if failed or failed_binds:
        raise RuntimeError(f"{failed} creates and {failed_binds} bindings failed")
    return created / batch * 1e3, bound / batch * 1e3


def _paired(label: str, ref: list[float], this: list[float]) -> str:
    ratios = sorted(b / a for a, b in zip(ref, this, strict=True))
    q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    return (
        f"| {label} | {statistics.median(ref):.3f} | {statistics.median(this):.3f} | "
        f"{statistics.median(ratios):.3f} ({q1:.3f}-{q3:.3f}) |"
    )


async def _run(ref_server: PinnaceServer, this_server: PinnaceServer, rounds: int, batch: int) -> list[str]:
    def session(server: PinnaceServer) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=server.client_ssl(), limit=CONCURRENCY + 4)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))

    async with session(ref_server) as ref_http, session(this_server) as this_http:
        await _prepare(ref_http, ref_server)
        await _prepare(this_http, this_server)
        ref: list[tuple[float, float]] = []
        this: list[tuple[float, float]] = []
        for n in range(rounds):
            sides = [(ref_http, ref_server, ref), (this_http, this_server, this)]
            for http, server, out in sides if n % 2 == 0 else reversed(sides):
                out.append(await _round(http, server, n, batch))
    return [
        "| server CPU per | ref, median ms | this tree, median ms | this / ref, paired median (quartiles) |",
        "|---|---|---|---|",
        _paired("create", [c for c, _ in ref], [c for c, _ in this]),
        _paired("pods/binding", [b for _, b in ref], [b for _, b in this]),
        _paired("create + binding", [c + b for c, b in ref], [c + b for c, b in this]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", default="HEAD", help="git ref to compare this tree with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    pin_self_to_client_cpu()
    with (
        tree_at(args.ref) as ref_tree,
        scratch_dir("ab-") as scratch,
        server_from(ref_tree, scratch / "ref") as ref_server,
        server_from(common.REPO, scratch / "this") as this_server,
    ):
        lines = asyncio.run(_run(ref_server, this_server, args.rounds, args.batch))
    print(f"### Server CPU per create and binding: this tree against {args.ref}\n")
    print("\n".join(lines))
    print(
        f"\n- {args.rounds} rounds of {args.batch} creates then {args.batch} bindings per server, alternated"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
