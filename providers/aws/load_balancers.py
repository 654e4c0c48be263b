"""LoadBalancers for AWS: an NLB by default (or as `elbType` in the cloud config's `aws`
section says), a classic ELB when the Service's `aws-load-balancer-type` annotation asks.

The name is upstream's `"a" + UID without dashes`, 32 characters at most, so it is the same
after any restart. Annotations are parsed and the Service's shape checked before any cloud
call. When the type changes, the load balancer of the other type is deleted once the new one
exists; deleting removes both kinds, so a Service whose annotation changed while it was being
deleted leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound
from providers.model import LoadBalancerService, LoadBalancerStatus, NodeRef
from providers.tags import default_load_balancer_name, owner_tags

from .annotations import Kind, LoadBalancerOptions, parse_options
from .describe import BY_ID, InstanceLookup
from .load_balancers_classic import ClassicLoadBalancers
from .load_balancers_nlb import NetworkLoadBalancers
from .security_groups import SecurityGroups
from .session import AwsClients
from .shapes import parse_provider_id
from .subnets import Subnets

__all__ = ["AwsLoadBalancers"]


class AwsLoadBalancers:
    def __init__(
        self,
        clients: AwsClients,
        config: CloudConfig,
        lookup: InstanceLookup,
        *,
        subnets: Subnets | None = None,
        groups: SecurityGroups | None = None,
    ) -> None:
        self._c = clients
        self._config = config
        self._lookup = lookup
        self._subnets = subnets or Subnets(clients, config)
        self._groups = groups or SecurityGroups(clients, config)
        self.nlb = NetworkLoadBalancers(clients, config, self._subnets, self._groups)
        self.classic = ClassicLoadBalancers(clients, config, self._subnets, self._groups)
        kind = str(config.options("aws").get("elbType", "nlb"))
        if kind not in {"nlb", "classic"}:
            raise InvalidConfiguration(f"cloud config aws.elbType={kind!r}: expected nlb or classic")
        self._default_kind = cast(Kind, kind)

    def load_balancer_name(self, cluster_id: str, service: LoadBalancerService) -> str:
        return default_load_balancer_name(service.uid)

    def options(self, service: LoadBalancerService) -> LoadBalancerOptions:
        return parse_options(service, default_kind=self._default_kind)

    async def get_load_balancer(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerStatus | None:
        name = self.load_balancer_name(cluster_id, service)
        try:
            kind = self.options(service).kind
        except InvalidConfiguration:
            kind = self._default_kind
        first, second = (self.nlb, self.classic) if kind == "nlb" else (self.classic, self.nlb)
        lb = await first.get(name)
        if lb is not None:
            return first.status(lb)
        lb = await second.get(name)
        return second.status(lb) if lb is not None else None

    async def _targets(
        self, nodes: Sequence[NodeRef], options: LoadBalancerOptions
    ) -> list[Mapping[str, Any]]:
        ids: set[str] = set()
        for node in nodes:
            if not node.provider_id:
                continue
            if any(node.labels.get(k) != v for k, v in options.target_node_labels.items()):
                continue
            ids.add(parse_provider_id(node.provider_id)[1])
        found = await self._lookup.get_many(BY_ID, ids)
        live = [
            inst
            for inst in found.values()
            if inst is not None
            and (inst.get("State") or {}).get("Name") not in {"terminated", "shutting-down"}
        ]
        return sorted(live, key=lambda i: str(i["InstanceId"]))

    async def ensure_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> LoadBalancerStatus:
        options = self.options(service)
        name = self.load_balancer_name(cluster_id, service)
        tags = {**self._config.tags, **options.additional_tags, **owner_tags(cluster_id, service.owner)}
        instances = await self._targets(nodes, options)
        if instances and not (options.kind == "classic" and options.security_groups):
            # Fails (InvalidConfiguration) before anything is made when traffic could not reach the nodes.
            await self._groups.node_groups(cluster_id, instances)
        if options.kind == "nlb":
            status, created = await self.nlb.ensure(cluster_id, name, service, options, instances, tags)
            if created:
                await self.classic.delete(cluster_id, name, service)
        else:
            status, created = await self.classic.ensure(cluster_id, name, service, options, instances, tags)
            if created:
                await self.nlb.delete(cluster_id, name, service)
        return status

    async def update_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> None:
        # As upstream: the node set is converged by the same code that converges the rest; but a
        # load balancer that is gone is not silently recreated by an update.
        if await self.get_load_balancer(cluster_id, service) is None:
            raise NotFound(f"load balancer {self.load_balancer_name(cluster_id, service)} not found")
        await self.ensure_load_balancer(cluster_id, service, nodes)

    async def ensure_load_balancer_deleted(self, cluster_id: str, service: LoadBalancerService) -> None:
        name = self.load_balancer_name(cluster_id, service)
        await self.nlb.delete(cluster_id, name, service)
        await self.classic.delete(cluster_id, name, service)
