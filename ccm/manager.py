"""Assembling the cloud-controller-manager: the provider from its name and cloud config, the
controllers its capabilities allow, and a ControllerManager electing a leader through the Lease
`kube-system/cloud-controller-manager`, as upstream's CCM does.

`run_in_process` is what `pinnace server` runs beside its controller manager (the default
`--cloud-provider local` keeps its simulated cloud in a state file under the data directory):
the CCM then needs no Pod and no scheduling, so Nodes never wait on a CCM that cannot start
because every Node is still tainted (cloud-anchors (b)1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ccm.settings import EXTRA_KEY, CloudSettings
from controlplane.client import Client, load_kubeconfig
from controlplane.controllers.runtime import (
    Clock,
    Controller,
    ControllerConfig,
    ControllerManager,
    LeaderElectionConfig,
)
from providers import registry
from providers.capabilities import CloudProvider
from providers.config import CloudConfig, load_cloud_config, parse_cloud_config

__all__ = [
    "DEFAULT_CLUSTER_NAME",
    "LEASE_NAME",
    "NONE",
    "build_manager",
    "controllers_for",
    "open_provider",
    "run_in_process",
]

log = logging.getLogger("pinnace.ccm")

LEASE_NAME = "cloud-controller-manager"
DEFAULT_CLUSTER_NAME = "kubernetes"  # upstream --cluster-name
NONE = "none"
USER_AGENT = "pinnace-cloud-controller-manager/v1.33.0"


def open_provider(
    name: str,
    cloud_config: Path | None,
    *,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    data_dir: Path | None = None,
) -> tuple[CloudProvider, CloudConfig]:
    """The provider and its config; the cluster id defaults to --cluster-name. For `local`
    without a `stateFile`, the state lives under `data_dir` (so it survives restarts and other
    processes, such as the simulated node operator, can open the same cloud)."""
    if cloud_config is not None:
        config = load_cloud_config(cloud_config, default_cluster_id=cluster_name)
    else:
        config = parse_cloud_config({}, default_cluster_id=cluster_name)
    if name == "local" and data_dir is not None and not config.options("local").get("stateFile"):
        state = data_dir / "cloud" / "local.db"
        state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        options = {**config.provider_options, "local": {**config.options("local"), "stateFile": str(state)}}
        config = replace(config, provider_options=options)
    return registry.create(name, config), config


def controllers_for(settings: CloudSettings, selection: str = "*") -> list[type[Controller]]:
    """Upstream's CCM controllers the provider can serve (cloud-node, cloud-node-lifecycle,
    route, service) plus the garbage sweep, filtered by `--controllers`."""
    from ccm.node import CloudNodeController
    from ccm.nodelifecycle import CloudNodeLifecycleController
    from ccm.route import RouteController
    from ccm.service import ServiceController
    from ccm.sweep import GarbageSweep
    from controlplane.controllers import registry as controller_registry

    provider = settings.provider
    available: list[type[Controller]] = []
    if provider.instance_metadata is not None:
        available += [CloudNodeController, CloudNodeLifecycleController]
    if provider.routes is not None and settings.configure_cloud_routes and settings.cluster_cidr:
        available.append(RouteController)
    if provider.load_balancers is not None:
        available.append(ServiceController)
    if provider.inventory is not None:
        available.append(GarbageSweep)
    known = {cls.name: cls for cls in available}
    return [known[n] for n in controller_registry.select(selection, known)]


def build_manager(
    client: Client,
    settings: CloudSettings,
    *,
    leader_election: LeaderElectionConfig | None = None,
    clock: Clock | None = None,
    controllers: Sequence[type[Controller]] | None = None,
) -> ControllerManager:
    chosen = list(controllers) if controllers is not None else controllers_for(settings)
    return ControllerManager(
        client,
        chosen,
        config=ControllerConfig(cluster_cidr=settings.cluster_cidr, extra={EXTRA_KEY: settings}),
        leader_election=leader_election or LeaderElectionConfig(lease_name=LEASE_NAME),
        clock=clock,
        component="cloud-controller-manager",
    )


async def run_in_process(
    kubeconfig: Path,
    stop: asyncio.Event,
    *,
    cloud_provider: str,
    cloud_config: Path | None,
    cluster_cidr: str,
    data_dir: Path,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
) -> None:
    """The CCM of `pinnace server`, until `stop`; a candidate for the lease like any other copy."""
    if cloud_provider == NONE:
        return
    provider, config = open_provider(
        cloud_provider, cloud_config, cluster_name=cluster_name, data_dir=data_dir
    )
    settings = CloudSettings(provider=provider, cluster_id=config.cluster_id, cluster_cidr=cluster_cidr)
    log.info(
        "cloud-controller-manager: provider %s, cluster %s, capabilities %s",
        provider.name,
        config.cluster_id,
        ", ".join(sorted(provider.capabilities)),
    )
    async with Client(load_kubeconfig(kubeconfig), user_agent=USER_AGENT) as client:
        await build_manager(client, settings).run(stop)
