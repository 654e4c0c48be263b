"""`pinnace scheduler` flags."""

from __future__ import annotations

import argparse
from pathlib import Path

from controlplane.scheduler import cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pinnace")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_defaults_are_kube_schedulers() -> None:
    args = _parse("scheduler", "--kubeconfig", "/tmp/kc")
    assert args.command == "scheduler"
    assert args.kubeconfig == Path("/tmp/kc")
    assert args.leader_elect is True
    assert (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    ) == (
        15.0,
        10.0,
        2.0,
    )
    assert args.leader_elect_resource_name == "kube-scheduler"
    assert args.scheduler_name == "default-scheduler"
    assert args.percentage_of_nodes_to_score == 0


def test_overrides() -> None:
    args = _parse(
        "scheduler",
        "--kubeconfig",
        "kc",
        "--no-leader-elect",
        "--scheduler-name",
        "batch",
        "--percentage-of-nodes-to-score",
        "30",
        "--leader-elect-lease-duration",
        "2",
    )
    assert args.leader_elect is False
    assert args.scheduler_name == "batch"
    assert args.percentage_of_nodes_to_score == 30
    assert args.leader_elect_lease_duration == 2.0
