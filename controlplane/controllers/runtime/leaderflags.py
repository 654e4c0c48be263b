"""The `--leader-elect*` flags every component that elects a leader takes, named and defaulted as
upstream's component-base LeaderElectionConfiguration flags (15 s / 10 s / 2 s)."""

from __future__ import annotations

import argparse

__all__ = ["add_leader_election_flags"]


def add_leader_election_flags(parser: argparse.ArgumentParser, *, resource_name: str | None) -> None:
    """With `resource_name`, also --leader-elect-resource-name/-namespace (the Lease to hold)."""
    parser.add_argument(
        "--leader-elect",
        default=True,
        action=argparse.BooleanOptionalAction,
        help="elect a leader (default on)",
    )
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    if resource_name is not None:
        parser.add_argument("--leader-elect-resource-name", default=resource_name)
        parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
