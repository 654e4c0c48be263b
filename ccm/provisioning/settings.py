"""What the provisioning operator is given: the cloud, how nodes reach the API server, how
user-data is rendered, the clock and the periods of its loops."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controlplane.controllers.runtime import Clock, RealClock
from providers.capabilities import CloudProvider

if TYPE_CHECKING:
    from node_bootstrap.cloudinit.spec import BootstrapSpec

__all__ = ["LEASE_NAME", "ProvisionerSettings", "UserDataFn"]

LEASE_NAME = "pinnace-provisioner"

UserDataFn = Callable[["BootstrapSpec"], bytes]


@dataclass(frozen=True)
class ProvisionerSettings:
    """`provider` must have the `instances` capability. `server_url` and `ca_pem` are what nodes
    are told to join (the URL as reachable from the instances). `user_data` renders a node's
    user-data (default: `node_bootstrap.cloudinit.render.user_data`).

    `join_timeout` / `not_ready_timeout`, when set, override every pool's own values (tests, and
    the benchmark, shorten them); the intervals are how often unfinished work is looked at again
    even when no watch event arrives."""

    provider: CloudProvider
    cluster_id: str
    server_url: str
    ca_pem: bytes
    cluster_cidr: str = "10.244.0.0/16"
    cluster_dns: str = ""  # the cluster DNS Service's IP; "" keeps node_bootstrap's default
    user_data: UserDataFn | None = None
    clock: Clock = field(default_factory=RealClock)
    join_timeout: float | None = None
    not_ready_timeout: float | None = None
    machine_poll_interval: float = 5.0
    running_resync_interval: float = 60.0
    drain_poll_interval: float = 2.0
    instance_poll_interval: float = 2.0
    orphan_sweep_interval: float = 120.0
    # How often autoscaling pools are compared with the pods waiting for room.
    autoscale_interval: float = 10.0
    workers: int = 8
    lease_name: str = LEASE_NAME
    lease_namespace: str = "kube-system"
    # Leader election timings (`--leader-elect-*` of `pinnace provisioner`; upstream's defaults).
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4()}")
    component: str = "pinnace-provisioner"

    def render(self, spec: BootstrapSpec) -> bytes:
        if self.user_data is not None:
            return self.user_data(spec)
        from node_bootstrap.cloudinit.render import user_data

        return user_data(spec)
