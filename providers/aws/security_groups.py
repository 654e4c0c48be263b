"""Security-group rules for load balancers, reconciled as sets.

Rules the cloud controller adds to a security group it does not own (the nodes') carry a
description naming the load balancer (upstream's `kubernetes.io/rule/nlb/client=<lb>` and
`kubernetes.io/rule/nlb/health=<lb>`), so they can be found and removed with it and no other
rule is ever touched. Only groups tagged for the cluster or listed in the cloud config are
candidates, so a delete can find every group a rule was put in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound

from .session import AwsClients

__all__ = [
    "CidrRule",
    "GroupRule",
    "SecurityGroups",
    "cidr_rules",
    "group_rules",
]

log = logging.getLogger(__name__)

SecurityGroup = Mapping[str, Any]


class CidrRule(NamedTuple):
    protocol: str  # "tcp", "udp", "icmp", "-1"
    from_port: int
    to_port: int
    cidr: str
    description: str = ""

    def key(self) -> tuple[str, int, int, str]:
        # AWS treats rules differing only in description as the same rule.
        return (self.protocol, self.from_port, self.to_port, self.cidr)

    def permission(self, *, with_description: bool = True) -> dict[str, Any]:
        perm: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != "-1":
            perm["FromPort"] = self.from_port
            perm["ToPort"] = self.to_port
        is_v6 = ipaddress.ip_network(self.cidr, strict=False).version == 6
        entry: dict[str, str] = {"CidrIpv6" if is_v6 else "CidrIp": self.cidr}
        if with_description and self.description:
            entry["Description"] = self.description
        perm["Ipv6Ranges" if is_v6 else "IpRanges"] = [entry]
        return perm


class GroupRule(NamedTuple):
    protocol: str
    from_port: int
    to_port: int
    source_group: str
    description: str = ""

    def key(self) -> tuple[str, int, int, str]:
        return (self.protocol, self.from_port, self.to_port, self.source_group)

    def permission(self, *, with_description: bool = True) -> dict[str, Any]:
        perm: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != "-1":
            perm["FromPort"] = self.from_port
            perm["ToPort"] = self.to_port
        pair: dict[str, str] = {"GroupId": self.source_group}
        if with_description and self.description:
            pair["Description"] = self.description
        perm["UserIdGroupPairs"] = [pair]
        return perm


def _ports(perm: Mapping[str, Any]) -> tuple[str, int, int]:
    protocol = str(perm.get("IpProtocol", "-1"))
    if protocol == "-1":
        return protocol, -1, -1
    return protocol, int(perm.get("FromPort", -1)), int(perm.get("ToPort", -1))


def cidr_rules(group: SecurityGroup) -> list[CidrRule]:
    out = []
    for perm in group.get("IpPermissions", []) or []:
        protocol, low, high = _ports(perm)
        for r in perm.get("IpRanges", []) or []:
            out.append(CidrRule(protocol, low, high, str(r["CidrIp"]), str(r.get("Description", ""))))
        for r in perm.get("Ipv6Ranges", []) or []:
            out.append(CidrRule(protocol, low, high, str(r["CidrIpv6"]), str(r.get("Description", ""))))
    return out


def group_rules(group: SecurityGroup) -> list[GroupRule]:
    out = []
    for perm in group.get("IpPermissions", []) or []:
        protocol, low, high = _ports(perm)
        for pair in perm.get("UserIdGroupPairs", []) or []:
            out.append(GroupRule(protocol, low, high, str(pair["GroupId"]), str(pair.get("Description", ""))))
    return out


Rule = CidrRule | GroupRule


class SecurityGroups:
    def __init__(
        self,
        clients: AwsClients,
        config: CloudConfig,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._c = clients
        self._config = config
        self._ttl = ttl
        self._clock = clock
        self._tagged: dict[str, tuple[float, set[str]]] = {}

    async def describe(self, group_ids: Iterable[str]) -> dict[str, SecurityGroup]:
        ids = sorted(set(group_ids))
        if not ids:
            return {}
        reply = await self._c.caller.call(
            self._c.ec2.describe_security_groups, Filters=[{"Name": "group-id", "Values": ids}]
        )
        return {str(g["GroupId"]): g for g in reply.get("SecurityGroups", [])}

    async def find(self, filters: list[dict[str, Any]]) -> list[SecurityGroup]:
        out: list[SecurityGroup] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters}
            if token:
                kwargs["NextToken"] = token
            reply = await self._c.caller.call(self._c.ec2.describe_security_groups, **kwargs)
            out.extend(reply.get("SecurityGroups", []))
            token = reply.get("NextToken")
            if not token:
                return out

    async def cluster_group_ids(self, cluster_id: str) -> set[str]:
        """Groups tagged for the cluster (owned or shared) plus the configured ones; cached briefly."""
        cached = self._tagged.get(cluster_id)
        if cached is not None and cached[0] > self._clock():
            return set(cached[1])
        groups = await self.find([{"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{cluster_id}"]}])
        ids = {str(g["GroupId"]) for g in groups} | set(self._config.security_group_ids)
        self._tagged[cluster_id] = (self._clock() + self._ttl, ids)
        return set(ids)

    async def node_groups(self, cluster_id: str, instances: Sequence[Mapping[str, Any]]) -> set[str]:
        """The group of each target instance that load-balancer traffic must be let into."""
        if not instances:
            return set()
        candidates = await self.cluster_group_ids(cluster_id)
        chosen: set[str] = set()
        for inst in instances:
            mine = sorted({str(g["GroupId"]) for g in inst.get("SecurityGroups", []) or []} & candidates)
            if mine:
                chosen.add(mine[0])
            else:
                log.warning(
                    "instance %s has no security group tagged for the cluster", inst.get("InstanceId")
                )
        if not chosen:
            raise InvalidConfiguration(
                f"none of the nodes has a security group tagged kubernetes.io/cluster/{cluster_id} or listed "
                "in securityGroupIDs; load-balancer traffic could not reach them"
            )
        return chosen

    async def apply(
        self,
        group: SecurityGroup,
        desired: Iterable[Rule],
        ours: Callable[[Rule], bool],
    ) -> bool:
        """Make the rules of `group` that `ours` selects equal `desired`; True when anything changed."""
        group_id = str(group["GroupId"])
        current: list[Rule] = [*cidr_rules(group), *group_rules(group)]
        want = {r.key(): r for r in desired}
        have_mine = {r.key(): r for r in current if ours(r)}
        have_any = {r.key() for r in current}
        revoke = [r for k, r in have_mine.items() if k not in want]
        grant = [r for k, r in want.items() if k not in have_any]
        if revoke:
            await self.revoke(group_id, revoke)
        if grant:
            await self.authorize(group_id, grant)
        return bool(revoke or grant)

    async def authorize(self, group_id: str, rules: Sequence[Rule]) -> None:
        # One call for all; the call is atomic, so when one rule already exists (a concurrent
        # sync added it) fall back to one call per rule and skip the duplicates.
        try:
            await self._call(self._c.ec2.authorize_security_group_ingress, group_id, rules, True)
        except InvalidConfiguration as exc:
            if exc.code != "InvalidPermission.Duplicate" or len(rules) == 1:
                if exc.code == "InvalidPermission.Duplicate":
                    return
                raise
            for rule in rules:
                try:
                    await self._call(self._c.ec2.authorize_security_group_ingress, group_id, [rule], True)
                except InvalidConfiguration as one:
                    if one.code != "InvalidPermission.Duplicate":
                        raise

    async def revoke(self, group_id: str, rules: Sequence[Rule]) -> None:
        # With the descriptions as read: AWS ignores them when matching, moto needs them.
        try:
            await self._call(self._c.ec2.revoke_security_group_ingress, group_id, rules, True)
        except NotFound:
            if len(rules) == 1:
                return
            for rule in rules:
                with contextlib.suppress(NotFound):
                    await self._call(self._c.ec2.revoke_security_group_ingress, group_id, [rule], True)

    async def _call(
        self, fn: Callable[..., Any], group_id: str, rules: Sequence[Rule], describe: bool
    ) -> None:
        await self._c.caller.call(
            fn, GroupId=group_id, IpPermissions=[r.permission(with_description=describe) for r in rules]
        )
