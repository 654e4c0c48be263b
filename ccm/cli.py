"""`pinnace ccm`: the cloud-controller-manager alone, against an API server given by --kubeconfig,
with upstream's flags (--cloud-provider, --cloud-config, --cluster-name, --cluster-cidr,
--configure-cloud-routes, --controllers) and leader election on the Lease
`kube-system/cloud-controller-manager`."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from controlplane.controllers.runtime.leaderflags import add_leader_election_flags

__all__ = ["add_parser", "add_server_flags", "run"]


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `pinnace server` takes for its in-process CCM."""
    parser.add_argument(
        "--cloud-provider",
        default="local",
        choices=("aws", "local", "none"),
        help="the cloud the in-process cloud-controller-manager drives: aws, local or none (default local)",
    )
    parser.add_argument("--cloud-config", type=Path, default=None, help="the cloud config file (YAML)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ccm", help="run the cloud-controller-manager alone, against an API server given by --kubeconfig"
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--cloud-provider", required=True, choices=("aws", "local"))
    parser.add_argument("--cloud-config", type=Path, default=None, help="the cloud config file (YAML)")
    parser.add_argument(
        "--cluster-name", default="kubernetes", help="the cluster id when the cloud config has none"
    )
    parser.add_argument("--cluster-cidr", default="", help="the pod CIDR range; needed for cloud routes")
    parser.add_argument(
        "--configure-cloud-routes",
        default=True,
        action=argparse.BooleanOptionalAction,
        help="create pod-CIDR routes in the cloud (default on)",
    )
    parser.add_argument(
        "--controllers",
        default="*",
        help="cloud-node, cloud-node-lifecycle, route, service, cloud-garbage-sweep; '*' for all, '-name' to disable",
    )
    parser.add_argument("--node-status-update-frequency", type=float, default=300.0)
    parser.add_argument("--node-monitor-period", type=float, default=5.0)
    parser.add_argument("--route-reconciliation-period", type=float, default=10.0)
    parser.add_argument("--sweep-period", type=float, default=300.0)
    add_leader_election_flags(parser, resource_name="cloud-controller-manager")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130
    return 0


async def _main(args: argparse.Namespace) -> None:
    from ccm.manager import USER_AGENT, build_manager, controllers_for, open_provider
    from ccm.settings import CloudSettings
    from controlplane.client import Client, load_kubeconfig
    from controlplane.controllers.runtime import LeaderElectionConfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    provider, config = open_provider(args.cloud_provider, args.cloud_config, cluster_name=args.cluster_name)
    settings = CloudSettings(
        provider=provider,
        cluster_id=config.cluster_id,
        cluster_cidr=args.cluster_cidr,
        configure_cloud_routes=args.configure_cloud_routes,
        node_status_update_frequency=args.node_status_update_frequency,
        node_monitor_period=args.node_monitor_period,
        route_reconciliation_period=args.route_reconciliation_period,
        sweep_period=args.sweep_period,
    )
    leader = LeaderElectionConfig(
        enabled=args.leader_elect,
        lease_name=args.leader_elect_resource_name,
        namespace=args.leader_elect_resource_namespace,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    async with Client(load_kubeconfig(args.kubeconfig), user_agent=USER_AGENT) as client:
        manager = build_manager(
            client, settings, leader_election=leader, controllers=controllers_for(settings, args.controllers)
        )
        await manager.run(stop)
