"""`pinnace provisioner`: the NodePool/Machine operator alone, against an API server given by
--kubeconfig (as `pinnace ccm` runs the cloud controllers), electing a leader on the Lease
`kube-system/pinnace-provisioner`.

Nodes are told to join the kubeconfig's server and trust its CA unless --server-url / --ca-file
say otherwise (an API server behind a load balancer the instances reach by another name).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ccm.provisioning.settings import LEASE_NAME, ProvisionerSettings
from controlplane.controllers.runtime.leaderflags import add_leader_election_flags

__all__ = ["ConfigError", "add_parser", "build_settings", "run"]

log = logging.getLogger("pinnace.provisioner")


class ConfigError(Exception):
    """The flags, kubeconfig or cloud config cannot make a provisioner; the message says why."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provisioner",
        help="run the NodePool/Machine operator alone, against an API server given by --kubeconfig",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--cloud-provider", required=True, help="the cloud that launches instances: aws or local"
    )
    parser.add_argument(
        "--cloud-config",
        type=Path,
        default=None,
        help="the cloud config file (YAML); the local cloud needs its stateFile there",
    )
    parser.add_argument(
        "--cluster-name", default="kubernetes", help="the cluster id when the cloud config has none"
    )
    parser.add_argument(
        "--server-url", default="", help="the API server URL nodes join (default: the kubeconfig's server)"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="the CA nodes trust the API server with (default: the kubeconfig's)",
    )
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--cluster-dns", default="", help="the cluster DNS Service's IP given to kubelets")
    parser.add_argument(
        "--install-crds",
        action="store_true",
        help="create or update the NodePool and Machine CRDs first (the credential must be allowed to); "
        "without it the operator waits until they are served",
    )
    add_leader_election_flags(parser, resource_name=LEASE_NAME)
    # Loop periods: tests shorten them; an operator has no reason to.
    for flag, default in (
        ("--machine-poll-interval", 5.0),
        ("--running-resync-interval", 60.0),
        ("--drain-poll-interval", 2.0),
        ("--instance-poll-interval", 2.0),
        ("--orphan-sweep-interval", 120.0),
    ):
        parser.add_argument(flag, type=float, default=default, help=argparse.SUPPRESS)
    return parser


@dataclass(frozen=True)
class _Endpoint:
    server: str
    ca_pem: bytes | None


def _kubeconfig_endpoint(path: Path) -> _Endpoint:
    """The server and CA of the kubeconfig's current context."""
    try:
        doc = yaml.safe_load(path.read_text())
        ctx_name = doc.get("current-context", "")
        context = next(c["context"] for c in doc.get("contexts") or [] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc.get("clusters") or [] if c["name"] == context["cluster"])
        server = str(cluster["server"]).rstrip("/")
        ca_pem: bytes | None = None
        if cluster.get("certificate-authority-data"):
            ca_pem = base64.b64decode(cluster["certificate-authority-data"], validate=True)
        elif cluster.get("certificate-authority"):
            ca_pem = Path(cluster["certificate-authority"]).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, AttributeError, KeyError, StopIteration, TypeError, binascii.Error) as exc:
        raise ConfigError(f"kubeconfig {path} has no usable current context, cluster and server") from exc
    return _Endpoint(server, ca_pem)


def build_settings(args: argparse.Namespace) -> ProvisionerSettings:
    """The operator's settings from the flags; raises ConfigError with the reason."""
    from ccm.manager import open_provider
    from controlplane.client import load_kubeconfig
    from providers import registry
    from providers.errors import CloudError

    endpoint = _kubeconfig_endpoint(args.kubeconfig)
    try:
        load_kubeconfig(args.kubeconfig)  # the credential itself must load too
    except Exception as exc:  # any failure here is a bad kubeconfig, said in one line
        raise ConfigError(f"kubeconfig {args.kubeconfig}: cannot load its credential: {exc}") from exc
    if args.cloud_provider not in registry.names():
        raise ConfigError(
            f"unknown cloud provider {args.cloud_provider!r}; known: {', '.join(registry.names())}"
        )
    try:
        provider, config = open_provider(
            args.cloud_provider, args.cloud_config, cluster_name=args.cluster_name
        )
    except CloudError as exc:
        raise ConfigError(str(exc)) from exc
    if provider.instances is None:
        raise ConfigError(f"cloud provider {provider.name!r} cannot launch instances")
    if args.cloud_provider == "local" and config.options("local").get("stateFile") in (None, "", ":memory:"):
        # An in-memory cloud is this process's alone: no CCM, node or later run would see its instances.
        raise ConfigError("the local cloud needs a stateFile under `local:` in --cloud-config")
    if args.ca_file is not None:
        try:
            ca_pem = args.ca_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read --ca-file {args.ca_file}: {exc.strerror or exc}") from exc
    elif endpoint.ca_pem is not None:
        ca_pem = endpoint.ca_pem
    else:
        raise ConfigError(f"kubeconfig {args.kubeconfig} names no certificate authority: pass --ca-file")
    if args.leader_elect and args.leader_elect_renew_deadline >= args.leader_elect_lease_duration:
        raise ConfigError("--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration")
    return ProvisionerSettings(
        provider=provider,
        cluster_id=config.cluster_id,
        server_url=args.server_url or endpoint.server,
        ca_pem=ca_pem,
        cluster_cidr=args.cluster_cidr,
        cluster_dns=args.cluster_dns,
        machine_poll_interval=args.machine_poll_interval,
        running_resync_interval=args.running_resync_interval,
        drain_poll_interval=args.drain_poll_interval,
        instance_poll_interval=args.instance_poll_interval,
        orphan_sweep_interval=args.orphan_sweep_interval,
        lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = build_settings(args)
    except ConfigError as exc:
        print(f"pinnace provisioner: error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_main(args, settings))
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace, settings: ProvisionerSettings) -> int:
    from ccm.provisioning.operator import USER_AGENT

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "provisioner: provider %s, cluster %s, nodes join %s",
        settings.provider.name,
        settings.cluster_id,
        settings.server_url,
    )
    if args.install_crds and not await _install_crds(args.kubeconfig, stop, USER_AGENT):
        return 0 if stop.is_set() else 1
    from ccm.provisioning.operator import run_provisioner

    await run_provisioner(args.kubeconfig, stop, settings, leader_election=args.leader_elect)
    return 0


async def _install_crds(kubeconfig: Path, stop: asyncio.Event, user_agent: str) -> bool:
    """ensure_crds, given up on at `stop` (False) or on a refusal (False, reported)."""
    import aiohttp

    from ccm.provisioning.crds import ensure_crds_unless_stopped
    from controlplane.api import errors
    from controlplane.client import Client, load_kubeconfig

    async with Client(load_kubeconfig(kubeconfig), user_agent=user_agent) as client:
        try:
            return await ensure_crds_unless_stopped(client, stop)
        except (errors.StatusError, TimeoutError, OSError, aiohttp.ClientError) as exc:
            print(f"pinnace provisioner: error: installing the CRDs: {exc}", file=sys.stderr)
            return False
