"""Run every API server benchmark and print one Markdown report (and optionally JSON).

    .venv/bin/python bench/run.py                      # everything, ~3-5 minutes
    .venv/bin/python bench/run.py --only writes,get    # a subset
    .venv/bin/python bench/run.py --scale 0.5          # shorter runs, fewer watchers/pods
    .venv/bin/python bench/run.py --profile /tmp/prof  # servers under cProfile -> /tmp/prof/<bench>.prof
    .venv/bin/python bench/run.py --only density --density-nodes 100 --density-pods 3000
                                                       # opt-in (long): 1000 nodes, 30,000 pods by default
    .venv/bin/python bench/run.py --only ccm           # opt-in: the CCM against moto, 1000 nodes, 100 LB Services
    .venv/bin/python bench/run.py --only tls-backends  # opt-in (~3 min): pyOpenSSL listener against stdlib ssl

Each benchmark starts its own `pinnace server` in a temp data dir pinned to CPU 0, drives it from
CPU 1, compares with a baseline measured in the same run, and stops the server with SIGTERM.
Set PINNACE_BENCH_TMP to put the temp dirs (and so the SQLite baseline) on another filesystem.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import bench_ccm
import bench_density
import bench_get
import bench_list
import bench_provisioning
import bench_scheduler
import bench_tls_backends
import bench_tls_ceiling
import bench_watch
import bench_writes
import common
import orjson
from common import BenchResult, cpus_available, machine_description, print_result

BENCHES = (
    "writes",
    "get",
    "list",
    "watch",
    "tls",
    "tls-backends",
    "scheduler",
    "density",
    "ccm",
    "provisioning",
)
# density runs only when asked for (--only density): at full size it takes the better part of an hour;
# ccm (the cloud-controller-manager against moto, 1000 nodes) likewise (~15-20 minutes).
DEFAULT_BENCHES = tuple(b for b in BENCHES if b not in ("density", "ccm", "provisioning", "tls-backends"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_BENCHES),
        help=f"comma-separated subset of {', '.join(BENCHES)} (default: all but density, ccm, provisioning, tls-backends)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies durations, pod count and watcher count"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of measured load per run (x scale)"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--list-pods", type=int, default=3000)
    parser.add_argument("--list-repeats", type=int, default=30)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--watch-rate", type=float, default=100.0)
    parser.add_argument("--watch-procs", type=int, default=2)
    parser.add_argument("--density-nodes", type=int, default=1000, help="density: simulated nodes (x scale)")
    parser.add_argument("--density-pods", type=int, default=30_000, help="density: pods (x scale)")
    parser.add_argument(
        "--density-deployments", type=int, default=300, help="density: Deployments sharing the pods (x scale)"
    )
    parser.add_argument("--density-rate", type=float, default=20.0, help="density: offered pods/s")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra `pinnace server` argument (repeatable)"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="run servers under cProfile, writing DIR/<bench>.prof"
    )
    parser.add_argument(
        "--provisioning-scale-to",
        type=int,
        default=0,
        help="provisioning: also scale the moto NodePool to this many nodes (0: skip)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    selected = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(selected) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        common.PROFILE_DIR = args.profile.resolve()
    scale = args.scale
    duration = args.duration * scale
    server_args = tuple(args.server_arg)

    machine = machine_description()
    print("# Pinnace API server benchmarks\n")
    print(f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"- machine: nproc={machine['nproc']}, CPU {machine['cpu_model']}, Python {machine['python']}")
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}\n", flush=True)
    if cpus_available() < 2:
        print("WARNING: fewer than 2 CPUs: server and client share a core; ratios are still comparable\n")

    results: list[BenchResult] = []
    started = time.monotonic()
    for name in selected:
        t0 = time.monotonic()
        if name == "writes":
            result = bench_writes.run(duration, args.concurrency, server_args)
        elif name == "get":
            result = bench_get.run(duration * 0.8, args.concurrency, server_args)
        elif name == "list":
            result = bench_list.run(
                max(1, int(args.list_pods * scale)),
                max(3, int(args.list_repeats * scale)),
                args.concurrency,
                server_args,
            )
        elif name == "density":
            result = bench_density.run(
                nodes=max(1, int(args.density_nodes * scale)),
                pods=max(1, int(args.density_pods * scale)),
                deployments=max(1, int(args.density_deployments * scale)),
                rate=args.density_rate,
                server_args=server_args,
            )
        elif name == "ccm":
            result = bench_ccm.run(
                nodes=max(1, int(1000 * scale)), services=max(1, int(100 * scale)), server_args=server_args
            )
        elif name == "provisioning":
            result = bench_provisioning.run(nodes=(3, 20), scale_to=args.provisioning_scale_to)
        elif name == "tls":
            result = bench_tls_ceiling.run(
                max(1, int(args.watchers * scale)), rate=args.watch_rate, duration=duration / 2
            )
            coalesced = bench_tls_ceiling.run(
                max(1, int(args.watchers * scale)), rate=args.watch_rate, duration=duration / 2, coalesce=5
            )
            result.name += " (and 5 events per write)"
            result.rows += [replace(r, metric=f"5 per write: {r.metric}") for r in coalesced.rows]
        elif name == "tls-backends":
            result = bench_tls_backends.run(duration, args.concurrency, server_args=server_args)
        elif name == "scheduler":
            result = bench_scheduler.run(
                init_pods=max(100, int(1000 * scale)),
                measure_pods=max(500, int(5000 * scale)),
                server_args=server_args,
            )
        else:
            result = bench_watch.run(
                max(1, int(args.watchers * scale)),
                args.watch_rate,
                duration,
                args.watch_procs,
                drain=duration,
                server_args=server_args,
            )
        result.notes.append(f"wall time {time.monotonic() - t0:.0f} s")
        print_result(result)
        results.append(result)

    verdicts = [(res.name, row) for res in results for row in res.rows if row.passed is not None]
    print("## Summary\n")
    print("| benchmark | target | verdict |")
    print("|---|---|---|")
    for bench_name, row in verdicts:
        print(f"| {bench_name}: {row.metric} | {row.target} | {'PASS' if row.passed else 'FAIL'} |")
    print(
        f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.monotonic() - started:.0f} s"
    )
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(
                {"machine": machine, "results": [r.to_json() for r in results]}, option=orjson.OPT_INDENT_2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
