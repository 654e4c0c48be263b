"""Kubelet-style watch fan-out: what 1,000 per-node pod watches cost the server.

Every kubelet watches its own pods (`fieldSelector=spec.nodeName=<node>`). Without indexed
triggers each pod event reaches every one of those watches, which each decode-check and drop it:
the cost of a pod grows with the number of nodes. This benchmark creates pods and binds each to
one of `nodes` node names (64 requests in flight), twice on one server:

- baseline: no watches open;
- measured: one watch per node name open (the kubelets of the cluster).

and reports the server's CPU per pod (create + binding) for both, and their ratio. Every watch
must receive exactly the pods bound to its node (checked by name).

    .venv/bin/python bench/bench_node_watches.py                   # 1,000 watches, 2,000 pods, ~1 min
    .venv/bin/python bench/bench_node_watches.py --nodes 5000 --pods 5000

Processes: the server on CPU 0; this process (writers and every watch stream) on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict

import aiohttp
import orjson
from bench_scheduler import CONCURRENCY, pod_default, post_all
from common import (
    BenchResult,
    PinnaceServer,
    Row,
    bare_server_args,
    pin_self_to_client_cpu,
    pinnace_server,
    print_result,
    proc_cpu_seconds,
    scratch_dir,
)

# Goal: per-node watches add at most as much as the pods cost without them.
RATIO_TARGET = 2.0


def _binding(name: str, namespace: str, node: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"kind": "Node", "name": node},
        }
    )


async def _create_and_bind(
    http: aiohttp.ClientSession, base: str, namespace: str, prefix: str, pods: int, nodes: int
) -> int:
    """Create `pods` pods, then bind pod i to node i % nodes; returns failed requests."""
    url = f"{base}/api/v1/namespaces/{namespace}/pods"
    _, failed_creates = await post_all(
        http, [(url, orjson.dumps(pod_default(f"{prefix}-{i}", namespace))) for i in range(pods)]
    )
    _, failed_binds = await post_all(
        http,
        [
            (f"{url}/{prefix}-{i}/binding", _binding(f"{prefix}-{i}", namespace, f"node-{i % nodes}"))
            for i in range(pods)
        ],
    )
    return failed_creates + failed_binds


async def _measure(server: PinnaceServer, nodes: int, pods: int) -> tuple[float, float, int, str]:
    """(baseline CPU/pod, with-watches CPU/pod, failures, delivery problem or "")."""
    base = server.url
    connector = aiohttp.TCPConnector(ssl=server.client_ssl(), limit=CONCURRENCY + 4)
    watch_connector = aiohttp.TCPConnector(ssl=server.client_ssl(), limit=nodes + 4)
    received: defaultdict[int, set[str]] = defaultdict(set)
    opened = 0
    all_open = asyncio.Event()
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as http,
        aiohttp.ClientSession(
            connector=watch_connector, timeout=aiohttp.ClientTimeout(total=None)
        ) as watches,
    ):
        namespace = "node-watches"
        await post_all(
            http,
            [
                (
                    f"{base}/api/v1/namespaces",
                    orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
                )
            ],
        )
        before = proc_cpu_seconds(server.pid)
        failures = await _create_and_bind(http, base, namespace, "plain", pods, nodes)
        baseline = (proc_cpu_seconds(server.pid) - before) / pods

        async with http.get(f"{base}/api/v1/namespaces/{namespace}/pods", params={"limit": "1"}) as resp:
            start_rv = (await resp.json())["metadata"]["resourceVersion"]

        async def watch(node: int) -> None:
            nonlocal opened
            params = {
                "watch": "true",
                "fieldSelector": f"spec.nodeName=node-{node}",
                "resourceVersion": start_rv,
            }
            async with watches.get(f"{base}/api/v1/pods", params=params) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"watch of node-{node}: HTTP {resp.status}: {await resp.text()}")
                opened += 1
                if opened == nodes:
                    all_open.set()
                async for line in resp.content:
                    if line.strip():
                        event = orjson.loads(line)
                        if event["type"] != "BOOKMARK":
                            received[node].add(event["object"]["metadata"]["name"])

        tasks = [asyncio.create_task(watch(i)) for i in range(nodes)]
        try:
            await asyncio.wait_for(all_open.wait(), 120)
        except TimeoutError:
            failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
            raise RuntimeError(f"only {opened} of {nodes} watches opened: {failed[:1]}") from None
        await asyncio.sleep(1.0)  # every stream past its (empty) history
        before = proc_cpu_seconds(server.pid)
        failures += await _create_and_bind(http, base, namespace, "watched", pods, nodes)
        expected = {node: {f"watched-{i}" for i in range(node, pods, nodes)} for node in range(nodes)}
        for _ in range(100):
            if all(received[node] >= want for node, want in expected.items()):
                break
            await asyncio.sleep(0.1)
        measured = (proc_cpu_seconds(server.pid) - before) / pods
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    problems = [node for node, want in expected.items() if received[node] != want]
    problem = ""
    if problems:
        node = problems[0]
        problem = (
            f"{len(problems)} watches got the wrong pods; node-{node}: "
            f"missing {sorted(expected[node] - received[node])[:3]}, extra {sorted(received[node] - expected[node])[:3]}"
        )
    return baseline, measured, failures, problem


def run(nodes: int = 1000, pods: int = 2000, server_args: tuple[str, ...] = ()) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(
        f"Kubelet-style watches: {nodes:,} per-node pod watches, {pods:,} pods created and bound"
    )
    with (
        scratch_dir("pinnace-bench-node-watches-") as root,
        pinnace_server(root, [*bare_server_args(), *server_args], name="node-watches") as server,
    ):
        baseline, measured, failures, problem = asyncio.run(_measure(server, nodes, pods))
    ratio = measured / baseline if baseline else float("inf")
    result.rows.append(
        Row(
            f"server CPU per pod (create + binding) with {nodes:,} per-node watches open",
            measured * 1e3,
            "ms",
            baseline=baseline * 1e3,
            baseline_label="no watches, same server",
            target=f"<= {RATIO_TARGET:g}x the baseline",
            passed=ratio <= RATIO_TARGET,
        )
    )
    result.rows.append(
        Row(
            "every watch received exactly the pods bound to its node",
            0 if problem else 1,
            "",
            target="yes",
            passed=not problem and failures == 0,
        )
    )
    if problem:
        result.notes.append(problem)
    if failures:
        result.notes.append(f"{failures} requests failed")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000, help="per-node watches (node names)")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--server-arg", action="append", default=[], help="extra `pinnace server` argument")
    args = parser.parse_args()
    result = run(args.nodes, args.pods, tuple(args.server_arg))
    print_result(result)
    return 0 if all(r.passed is not False for r in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
