"""What every cloud controller shares: the provider, the cluster id and upstream's periods.

The controller runtime hands controllers a `ControllerConfig`; the CCM's settings ride in its
`extra` mapping under one key, so the runtime needs no knowledge of clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.controllers.runtime import ControllerContext
from providers.capabilities import CloudProvider

__all__ = ["EXTRA_KEY", "LOAD_BALANCER_CLASS", "CloudSettings", "cloud_settings"]

EXTRA_KEY = "cloud"
# spec.loadBalancerClass that names us; Services with any other class belong to someone else.
LOAD_BALANCER_CLASS = "pinnace.dev/cloud"


@dataclass(frozen=True)
class CloudSettings:
    provider: CloudProvider
    cluster_id: str
    # --cluster-cidr (comma separated for dual-stack); routes outside it are never touched.
    cluster_cidr: str = ""
    configure_cloud_routes: bool = True
    # Upstream defaults: NodeStatusUpdateFrequency, NodeMonitorPeriod, RouteReconciliationPeriod,
    # the service controller's nodeSyncPeriod and its retry backoff.
    node_status_update_frequency: float = 300.0
    node_monitor_period: float = 5.0
    route_reconciliation_period: float = 10.0
    node_sync_period: float = 100.0
    service_min_retry_delay: float = 5.0
    service_max_retry_delay: float = 300.0
    sweep_period: float = 300.0
    load_balancer_class: str = LOAD_BALANCER_CLASS

    def owns_provider_id(self, provider_id: str) -> bool:
        """A providerID of this cloud (`aws:///...`, `local://...`): only such Nodes are ours to
        route to, refresh or delete; `sim://` agents and other clouds' nodes are left alone."""
        return bool(provider_id) and provider_id.startswith(f"{self.provider.name}://")


def cloud_settings(ctx: ControllerContext) -> CloudSettings:
    settings = ctx.config.extra.get(EXTRA_KEY)
    if not isinstance(settings, CloudSettings):
        raise TypeError("the cloud controllers need CloudSettings in ControllerConfig.extra['cloud']")
    return settings
