"""Which subnets a load balancer lives in: one per zone, as upstream's findELBSubnets.

The configured subnetIDs when there are any; otherwise the VPC's subnets tagged for the cluster,
preferring the ones tagged `kubernetes.io/role/internal-elb` (internal) or
`kubernetes.io/role/elb` (internet-facing). Cached for a few minutes: subnets rarely change and
every load-balancer sync needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration

from .session import AwsClients
from .shapes import tags_of

__all__ = ["ROLE_ELB", "ROLE_INTERNAL_ELB", "SubnetChoice", "Subnets"]

ROLE_ELB = "kubernetes.io/role/elb"
ROLE_INTERNAL_ELB = "kubernetes.io/role/internal-elb"


@dataclass(frozen=True)
class SubnetChoice:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    cidrs: tuple[str, ...]


class Subnets:
    def __init__(
        self,
        clients: AwsClients,
        config: CloudConfig,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._c = clients
        self._config = config
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, bool], tuple[float, SubnetChoice]] = {}

    async def _all(self, cluster_id: str) -> list[Mapping[str, Any]]:
        if self._config.subnet_ids:
            reply = await self._c.caller.call(
                self._c.ec2.describe_subnets, SubnetIds=list(self._config.subnet_ids)
            )
            return list(reply.get("Subnets", []))
        if not self._config.vpc_id:
            raise InvalidConfiguration("aws: load balancers need subnetIDs or vpcID in the cloud config")
        reply = await self._c.caller.call(
            self._c.ec2.describe_subnets,
            Filters=[
                {"Name": "vpc-id", "Values": [self._config.vpc_id]},
                {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{cluster_id}"]},
            ],
        )
        return list(reply.get("Subnets", []))

    async def for_load_balancer(self, cluster_id: str, internal: bool) -> SubnetChoice:
        key = (cluster_id, internal)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        subnets = await self._all(cluster_id)
        role = ROLE_INTERNAL_ELB if internal else ROLE_ELB
        by_zone: dict[str, Mapping[str, Any]] = {}
        for subnet in sorted(subnets, key=lambda s: (role not in tags_of(s), str(s["SubnetId"]))):
            by_zone.setdefault(str(subnet.get("AvailabilityZone", "")), subnet)
        if not by_zone:
            raise InvalidConfiguration(
                f"could not find any suitable subnets for creating the load balancer: tag subnets "
                f"kubernetes.io/cluster/{cluster_id} and {role}=1, or set subnetIDs in the cloud config"
            )
        chosen = [by_zone[z] for z in sorted(by_zone)]
        vpc = self._config.vpc_id or str(chosen[0].get("VpcId", ""))
        choice = SubnetChoice(
            vpc_id=vpc,
            subnet_ids=tuple(str(s["SubnetId"]) for s in chosen),
            cidrs=tuple(str(s.get("CidrBlock", "")) for s in chosen if s.get("CidrBlock")),
        )
        self._cache[key] = (self._clock() + self._ttl, choice)
        return choice
