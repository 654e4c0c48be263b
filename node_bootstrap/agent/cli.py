"""`pinnace node-agent`: flags (named after the kubelet's where one exists) and the entry point."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from node_bootstrap.agent.bootstrap import BootstrapError, parse_token
from node_bootstrap.agent.config import (
    DEFAULT_CAPACITY,
    AgentConfig,
    node_names,
    parse_duration,
    parse_labels,
    parse_taints,
)
from node_bootstrap.agent.discovery import parse_pins

__all__ = ["add_parser", "config_from_args", "run"]


def _duration(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"negative duration {value!r}")
    return seconds


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "node-agent",
        help="run simulated nodes (a kubelet stand-in) against an API server",
        description="Register one or many simulated nodes, keep their Leases and status current, "
        "run the pods bound to them with simulated containers and serve their logs.",
    )
    env_kubeconfig = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path(env_kubeconfig) if env_kubeconfig else None,
        help="credentials for the API server (default: $KUBECONFIG)",
    )
    boot = p.add_argument_group(
        "TLS bootstrap (instead of --kubeconfig)",
        "Each node asks for its own system:node:<name> client certificate with a bootstrap token, "
        "keeps it under --cert-dir and renews it before it expires.",
    )
    boot.add_argument(
        "--bootstrap-kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig with the server, CA and bootstrap token",
    )
    boot.add_argument("--server", default="", help="API server URL (with --token and a CA hash)")
    boot.add_argument("--token", default="", help="bootstrap token <id>.<secret>")
    boot.add_argument(
        "--discovery-token-ca-cert-hash",
        action="append",
        default=[],
        dest="discovery_token_ca_cert_hash",
        help="sha256:<hex> of the cluster CA's public key (SubjectPublicKeyInfo); repeatable",
    )
    boot.add_argument(
        "--discovery-timeout",
        type=_duration,
        default=300.0,
        help="how long to wait for cluster-info signed for the token (kubeadm's discovery.timeout)",
    )
    boot.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="where client certificates are kept (default: DATA_DIR/pki)",
    )
    boot.add_argument(
        "--rotate-certificates",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="renew client certificates at 70-90%% of their lifetime",
    )
    boot.add_argument(
        "--certificate-expiration-seconds",
        type=int,
        default=None,
        help="spec.expirationSeconds of the node's CSRs (default: the signer's duration)",
    )
    names = p.add_argument_group("nodes")
    names.add_argument(
        "--node-name",
        "--hostname-override",
        dest="node_name",
        default="",
        help="name of the single node (default: this host's name)",
    )
    names.add_argument("--nodes", type=int, default=1, help="how many nodes this process plays")
    names.add_argument(
        "--node-name-prefix",
        default="",
        help="with --nodes: nodes are PREFIX-0 .. PREFIX-(N-1) (default sim-node)",
    )
    names.add_argument(
        "--node-ip",
        default="127.0.0.1",
        help="InternalIP of the first node; further nodes take the next addresses",
    )
    names.add_argument("--provider-id", default="", help="spec.providerID; may contain {name} and {index}")
    names.add_argument("--instance-type", default="", help="node.kubernetes.io/instance-type label")
    names.add_argument("--zone", default="", help="topology.kubernetes.io/zone label")
    names.add_argument("--region", default="", help="topology.kubernetes.io/region label")
    names.add_argument("--node-labels", default="", help="extra labels: key=value,...")
    names.add_argument(
        "--register-with-taints", default="", help="taints at registration: key=value:Effect,..."
    )
    names.add_argument(
        "--cloud-provider",
        choices=("", "external"),
        default="",
        help="external: register with the node.cloudprovider.kubernetes.io/uninitialized taint",
    )
    user_data = p.add_argument_group(
        "booting from user-data (instead of the flags above)",
        "Play the instance's cloud-init user-data as Pinnace renders it: check the CA against its "
        "pinned hash, run the bootstrap steps (packages simulated) reporting each to the Machine, "
        "then join with the bootstrap token. The node is named after --instance-id.",
    )
    user_data.add_argument(
        "--user-data", type=Path, default=None, help="the instance's user-data (may be gzip)"
    )
    user_data.add_argument(
        "--instance-id", default="", help="what the metadata service would say (default: host name)"
    )
    user_data.add_argument(
        "--fail-step", default="", help="simulate a failure of this bootstrap step (its log is the command's)"
    )
    capacity = p.add_argument_group("capacity (also allocatable)")
    capacity.add_argument("--cpu", default=DEFAULT_CAPACITY["cpu"])
    capacity.add_argument("--memory", default=DEFAULT_CAPACITY["memory"])
    capacity.add_argument("--pods", default=DEFAULT_CAPACITY["pods"])
    capacity.add_argument("--ephemeral-storage", default=DEFAULT_CAPACITY["ephemeral-storage"])
    timing = p.add_argument_group("timing")
    timing.add_argument("--node-status-update-frequency", type=_duration, default=10.0)
    timing.add_argument(
        "--node-status-report-frequency",
        type=_duration,
        default=60.0,
        help="report status at least this often when nothing changed",
    )
    timing.add_argument("--node-lease-duration-seconds", type=int, default=40)
    timing.add_argument(
        "--pod-cidr-wait", type=_duration, default=5.0, help="how long pods wait for the node's spec.podCIDR"
    )
    timing.add_argument(
        "--fallback-pod-cidr", default="100.64.0.0/10", help="node i uses its i-th /24 when it has no podCIDR"
    )
    timing.add_argument("--container-restart-backoff", type=_duration, default=10.0)
    timing.add_argument("--container-restart-backoff-max", type=_duration, default=300.0)
    serving = p.add_argument_group("kubelet endpoint (container logs)")
    serving.add_argument("--address", default="0.0.0.0", help="address the HTTPS server binds")
    serving.add_argument("--port", type=int, default=10250, help="HTTPS port (0: pick a free one)")
    serving.add_argument("--data-dir", type=Path, default=None, help="keeps the serving certificate (pki/)")
    serving.add_argument(
        "--client-ca-file",
        type=Path,
        default=None,
        help="CA for client certificates (default: the kubeconfig's CA)",
    )
    serving.add_argument("--tls-cert-file", type=Path, default=None)
    serving.add_argument("--tls-private-key-file", type=Path, default=None)


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    """Raises ValueError with a message fit for the user."""
    bootstraps = args.bootstrap_kubeconfig is not None or bool(args.server)
    if args.bootstrap_kubeconfig is not None and args.server:
        raise ValueError("--bootstrap-kubeconfig and --server exclude each other")
    if not bootstraps and args.kubeconfig is None:
        raise ValueError(
            "--kubeconfig is required (or set KUBECONFIG), or bootstrap with --bootstrap-kubeconfig "
            "or --server/--token/--discovery-token-ca-cert-hash"
        )
    if args.server and not args.token:
        raise ValueError("--server needs --token")
    if args.server and not args.discovery_token_ca_cert_hash:
        raise ValueError("--server needs --discovery-token-ca-cert-hash")
    token = parse_token(args.token) if args.server else ""
    pins = parse_pins(args.discovery_token_ca_cert_hash)
    cert_dir = args.cert_dir
    if cert_dir is None and args.data_dir is not None:
        cert_dir = args.data_dir / "pki"
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        raise ValueError("--tls-cert-file and --tls-private-key-file go together")
    name = args.node_name
    if not name and args.nodes == 1 and not args.node_name_prefix:
        name = socket.gethostname().lower()
    capacity = {
        "cpu": args.cpu,
        "memory": args.memory,
        "pods": args.pods,
        "ephemeral-storage": args.ephemeral_storage,
    }
    return AgentConfig(
        node_names=node_names(count=args.nodes, prefix=args.node_name_prefix, name=name),
        kubeconfig=None if bootstraps else args.kubeconfig,
        bootstrap_kubeconfig=args.bootstrap_kubeconfig,
        bootstrap_server=args.server,
        bootstrap_token=token,
        discovery_ca_cert_hashes=pins,
        discovery_timeout=args.discovery_timeout,
        cert_dir=cert_dir,
        rotate_certificates=args.rotate_certificates,
        certificate_expiration_seconds=args.certificate_expiration_seconds,
        node_ip=args.node_ip,
        bind_address=args.address,
        port=args.port,
        capacity=capacity,
        labels=parse_labels(args.node_labels),
        taints=tuple(parse_taints(args.register_with_taints)),
        provider_id=args.provider_id,
        instance_type=args.instance_type,
        zone=args.zone,
        region=args.region,
        cloud_provider=args.cloud_provider,
        node_status_update_frequency=args.node_status_update_frequency,
        node_status_report_frequency=args.node_status_report_frequency,
        node_lease_duration_seconds=args.node_lease_duration_seconds,
        data_dir=args.data_dir,
        client_ca_file=args.client_ca_file,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        pod_cidr_wait=args.pod_cidr_wait,
        fallback_pod_cidr=args.fallback_pod_cidr,
        container_restart_backoff=args.container_restart_backoff,
        container_restart_backoff_max=args.container_restart_backoff_max,
    )


async def _main(config: AgentConfig) -> None:
    from node_bootstrap.agent.agent import NodeAgent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agent = NodeAgent(config)
    await agent.run(stop)


def _user_data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given away from their defaults win over the user-data's kubelet configuration."""
    overrides: dict[str, Any] = {}
    for name, default in (
        ("node_status_update_frequency", 10.0),
        ("node_status_report_frequency", 60.0),
        ("node_lease_duration_seconds", 40),
    ):
        if getattr(args, name) != default:
            overrides[name] = getattr(args, name)
    if args.cert_dir is not None:
        overrides["cert_dir"] = args.cert_dir
    return overrides


async def _boot_main(args: argparse.Namespace) -> int:
    from node_bootstrap.agent.bootsteps import StepFault, boot_instance
    from node_bootstrap.agent.userdata import InstanceFacts

    if args.data_dir is None:
        raise ValueError("--user-data needs --data-dir (the instance's disk: certificates, markers)")
    instance = InstanceFacts(
        instance_id=args.instance_id or socket.gethostname().lower(),
        zone=args.zone,
        region=args.region,
        private_ip=args.node_ip,
        instance_type=args.instance_type,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    result = await boot_instance(
        args.user_data.read_bytes(),
        instance,
        data_dir=args.data_dir,
        stop=stop,
        fault=StepFault(args.fail_step) if args.fail_step else None,
        port=args.port,
        bind_address=args.address,
        overrides=_user_data_overrides(args),
    )
    if not result.succeeded:
        print(f"pinnace node-agent: bootstrap step {result.failed_step} failed", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean stop, 2 for bad flags."""
    if getattr(args, "user_data", None) is not None:
        try:
            return asyncio.run(_boot_main(args))
        except KeyboardInterrupt:
            return 130
        except BootstrapError as exc:
            print(f"pinnace node-agent: error: {exc}", file=sys.stderr)
            return 1
        except (ValueError, OSError) as exc:
            print(f"pinnace node-agent: {exc}", file=sys.stderr)
            return 1
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"pinnace node-agent: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_main(config))
    except KeyboardInterrupt:
        return 130
    except BootstrapError as exc:
        print(f"pinnace node-agent: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"pinnace node-agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - `python -m node_bootstrap.agent.cli`
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _parser = argparse.ArgumentParser(prog="pinnace")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    sys.exit(run(_parser.parse_args(["node-agent", *sys.argv[1:]])))
