"""`pinnace scheduler`: the scheduler alone, against an API server given by --kubeconfig, with
kube-scheduler's leader election flags."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from controlplane.controllers.runtime.leaderflags import add_leader_election_flags

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scheduler", help="run the scheduler alone, against an API server given by --kubeconfig"
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    add_leader_election_flags(parser, resource_name="kube-scheduler")
    parser.add_argument(
        "--scheduler-name",
        default="default-scheduler",
        help="schedule the pods whose spec.schedulerName is this",
    )
    parser.add_argument(
        "--percentage-of-nodes-to-score",
        type=int,
        default=0,
        help="feasible nodes to find, as a percentage of all nodes, before scoring (0: adaptive, as upstream)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130
    return 0


async def _main(args: argparse.Namespace) -> None:
    from controlplane.client import Client, load_kubeconfig
    from controlplane.scheduler.scheduler import run_scheduler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Client(load_kubeconfig(args.kubeconfig), user_agent="pinnace-scheduler/v1.33.0") as client:
        await run_scheduler(
            client,
            stop,
            leader_election=args.leader_elect,
            name=args.scheduler_name,
            lease_name=args.leader_elect_resource_name,
            lease_namespace=args.leader_elect_resource_namespace,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
            percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m controlplane.scheduler.cli scheduler ...`: the same command without the rest of
    the `pinnace` CLI (tests start scheduler processes this way)."""
    parser = argparse.ArgumentParser(prog="pinnace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
