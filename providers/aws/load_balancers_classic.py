"""Classic ELBs, when `service.beta.kubernetes.io/aws-load-balancer-type: classic` asks for one.

As upstream's ensureLoadBalancer: TCP listeners from each Service port to its NodePort, the
nodes' instances registered, one health check (TCP on the first NodePort, or HTTP /healthz on
the health-check node port with externalTrafficPolicy Local), and the ELB's own security group
`k8s-elb-<lb>` open to the client CIDRs (plus ICMP "fragmentation needed" for path-MTU
discovery), which the nodes' security group trusts. With the `-security-groups` annotation the
given groups replace ours and the nodes' groups are left alone (they are the user's).

Doing better than upstream: the rule in the nodes' group and our own group are removed on
delete even when the ELB is already gone, and the security group is tagged like everything else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from providers.config import CloudConfig
from providers.errors import NotFound
from providers.model import LoadBalancerIngress, LoadBalancerService, LoadBalancerStatus
from providers.tags import is_owned

from .annotations import HealthCheck, LoadBalancerOptions
from .security_groups import CidrRule, GroupRule, Rule, SecurityGroups
from .session import AwsClients
from .shapes import chunks, tag_list, tags_of
from .subnets import Subnets

__all__ = ["ELB_RULE", "ClassicLoadBalancers", "health_check_target", "security_group_name"]

log = logging.getLogger(__name__)

ELB_RULE = "kubernetes.io/rule/elb"


def security_group_name(lb_name: str) -> str:
    return f"k8s-elb-{lb_name}"


def health_check_target(hc: HealthCheck) -> str:
    """ELB's Target: `TCP:30080` or `HTTP:31000/healthz`."""
    if hc.protocol in {"HTTP", "HTTPS"}:
        return f"{hc.protocol}:{hc.port}{hc.path}"
    return f"{hc.protocol}:{hc.port}"


class ClassicLoadBalancers:
    def __init__(
        self, clients: AwsClients, config: CloudConfig, subnets: Subnets, groups: SecurityGroups
    ) -> None:
        self._c = clients
        self._config = config
        self._subnets = subnets
        self._groups = groups

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            reply = await self._c.caller.call(self._c.elb.describe_load_balancers, LoadBalancerNames=[name])
        except NotFound:
            return None
        found = reply.get("LoadBalancerDescriptions", [])
        return dict(found[0]) if found else None

    @staticmethod
    def status(lb: Mapping[str, Any]) -> LoadBalancerStatus:
        return LoadBalancerStatus(ingress=(LoadBalancerIngress(hostname=str(lb.get("DNSName", ""))),))

    async def _own_group(self, name: str, vpc_id: str) -> Mapping[str, Any] | None:
        found = await self._groups.find(
            [
                {"Name": "group-name", "Values": [security_group_name(name)]},
                {"Name": "vpc-id", "Values": [vpc_id]},
            ]
        )
        return found[0] if found else None

    async def _ensure_own_group(
        self, name: str, service: LoadBalancerService, vpc_id: str, tags: Mapping[str, str]
    ) -> Mapping[str, Any]:
        group = await self._own_group(name, vpc_id)
        if group is None:
            await self._c.caller.call(
                self._c.ec2.create_security_group,
                GroupName=security_group_name(name),
                Description=f"Security group for Kubernetes ELB {name} ({service.namespace}/{service.name})",
                VpcId=vpc_id,
                TagSpecifications=cast(Any, [{"ResourceType": "security-group", "Tags": tag_list(tags)}]),
            )
            group = await self._own_group(name, vpc_id)
            if group is None:
                raise NotFound(f"security group {security_group_name(name)} vanished after its creation")
        return group

    async def ensure(
        self,
        cluster_id: str,
        name: str,
        service: LoadBalancerService,
        options: LoadBalancerOptions,
        instances: Sequence[Mapping[str, Any]],
        tags: Mapping[str, str],
    ) -> tuple[LoadBalancerStatus, bool]:
        """The status, and whether the load balancer had to be created."""
        subnets = await self._subnets.for_load_balancer(cluster_id, options.internal)
        scheme = "internal" if options.internal else "internet-facing"
        own: Mapping[str, Any] | None = None
        if options.security_groups:
            group_ids = [*options.security_groups]
        else:
            own = await self._ensure_own_group(name, service, subnets.vpc_id, tags)
            group_ids = [str(own["GroupId"])]
            rules: list[Rule] = []
            for cidr in options.source_ranges:
                for port in options.ports:
                    rules.append(CidrRule("tcp", port.port, port.port, cidr))
                rules.append(CidrRule("icmp", 3, 4, cidr))  # path-MTU discovery
            await self._groups.apply(own, rules, lambda _rule: True)
        group_ids += [g for g in options.extra_security_groups if g not in group_ids]

        listeners = [
            {
                "Protocol": "TCP",
                "LoadBalancerPort": p.port,
                "InstanceProtocol": "TCP",
                "InstancePort": p.node_port,
            }
            for p in options.ports
        ]
        lb = await self.get(name)
        if lb is not None and lb.get("Scheme") != scheme:
            log.info("classic ELB %s: scheme %s -> %s, recreating", name, lb.get("Scheme"), scheme)
            await self._delete_elb(name)
            lb = None
        created = lb is None
        if lb is None:
            log.info("creating classic ELB %s for %s/%s", name, service.namespace, service.name)
            request: dict[str, Any] = {
                "LoadBalancerName": name,
                "Listeners": listeners,
                "Subnets": list(subnets.subnet_ids),
                "SecurityGroups": group_ids,
                "Tags": tag_list(tags),
            }
            if options.internal:
                request["Scheme"] = "internal"
            await self._c.caller.call(self._c.elb.create_load_balancer, **request)
            lb = await self.get(name)
            if lb is None:
                raise NotFound(f"classic ELB {name} vanished after its creation")
        else:
            await self._sync(name, lb, listeners, subnets.subnet_ids, group_ids, tags)

        await self._ensure_health_check(name, lb, options.health_check)
        await self._ensure_instances(name, lb, [str(i["InstanceId"]) for i in instances])
        if own is not None:
            await self._ensure_node_rule(cluster_id, name, str(own["GroupId"]), instances)
        return self.status(lb), created

    async def _sync(
        self,
        name: str,
        lb: Mapping[str, Any],
        listeners: Sequence[Mapping[str, Any]],
        subnet_ids: Sequence[str],
        group_ids: Sequence[str],
        tags: Mapping[str, str],
    ) -> None:
        elb = self._c.elb
        call = self._c.caller.call
        actual_subnets = set(lb.get("Subnets", []) or [])
        if remove := sorted(actual_subnets - set(subnet_ids)):
            await call(elb.detach_load_balancer_from_subnets, LoadBalancerName=name, Subnets=remove)
        if add := sorted(set(subnet_ids) - actual_subnets):
            await call(elb.attach_load_balancer_to_subnets, LoadBalancerName=name, Subnets=add)
        if set(lb.get("SecurityGroups", []) or []) != set(group_ids):
            await call(
                elb.apply_security_groups_to_load_balancer,
                LoadBalancerName=name,
                SecurityGroups=list(group_ids),
            )
        want = {(int(li["LoadBalancerPort"]), int(li["InstancePort"])): li for li in listeners}
        have: dict[int, tuple[int, int]] = {}
        for desc in lb.get("ListenerDescriptions", []) or []:
            li = desc["Listener"]
            have[int(li["LoadBalancerPort"])] = (int(li["LoadBalancerPort"]), int(li["InstancePort"]))
        stale = sorted(port for port, key in have.items() if key not in want)
        if stale:
            await call(elb.delete_load_balancer_listeners, LoadBalancerName=name, LoadBalancerPorts=stale)
        fresh = [li for key, li in want.items() if have.get(key[0]) != key]
        if fresh:
            await call(elb.create_load_balancer_listeners, LoadBalancerName=name, Listeners=cast(Any, fresh))
        reply = await call(elb.describe_tags, LoadBalancerNames=[name])
        current = tags_of(reply["TagDescriptions"][0]) if reply.get("TagDescriptions") else {}
        missing = {k: v for k, v in tags.items() if current.get(k) != v}
        if missing:
            await call(elb.add_tags, LoadBalancerNames=[name], Tags=tag_list(missing))

    async def _ensure_health_check(self, name: str, lb: Mapping[str, Any], hc: HealthCheck) -> None:
        want: dict[str, Any] = {
            "Target": health_check_target(hc),
            "Interval": hc.interval,
            "Timeout": hc.timeout,
            "UnhealthyThreshold": hc.unhealthy_threshold,
            "HealthyThreshold": hc.healthy_threshold,
        }
        have = lb.get("HealthCheck") or {}
        if any(have.get(k) != v for k, v in want.items()):
            await self._c.caller.call(
                self._c.elb.configure_health_check, LoadBalancerName=name, HealthCheck=cast(Any, want)
            )

    async def _ensure_instances(self, name: str, lb: Mapping[str, Any], instance_ids: Sequence[str]) -> None:
        actual = {str(i["InstanceId"]) for i in lb.get("Instances", []) or []}
        desired = set(instance_ids)
        for chunk in chunks(sorted(desired - actual), 100):
            await self._c.caller.call(
                self._c.elb.register_instances_with_load_balancer,
                LoadBalancerName=name,
                Instances=[{"InstanceId": i} for i in chunk],
            )
        for chunk in chunks(sorted(actual - desired), 100):
            await self._c.caller.call(
                self._c.elb.deregister_instances_from_load_balancer,
                LoadBalancerName=name,
                Instances=[{"InstanceId": i} for i in chunk],
            )

    async def _ensure_node_rule(
        self, cluster_id: str, name: str, elb_group: str, instances: Sequence[Mapping[str, Any]]
    ) -> None:
        """Let everything from the ELB's group into the nodes' group (upstream's
        updateInstanceSecurityGroupsForLoadBalancer), and nothing into groups no longer used."""
        candidates = await self._groups.cluster_group_ids(cluster_id)
        targets = await self._groups.node_groups(cluster_id, instances) if instances else set()
        groups = await self._groups.describe(candidates | targets)
        desired: list[Rule] = [GroupRule("-1", -1, -1, elb_group, f"{ELB_RULE}={name}")]

        def ours(rule: Rule) -> bool:
            return isinstance(rule, GroupRule) and rule.source_group == elb_group

        for group_id, group in sorted(groups.items()):
            if group_id != elb_group:
                await self._groups.apply(group, desired if group_id in targets else [], ours)

    async def _delete_elb(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._c.caller.call(self._c.elb.delete_load_balancer, LoadBalancerName=name)

    async def delete(self, cluster_id: str, name: str, service: LoadBalancerService) -> None:
        lb = await self.get(name)
        if lb is not None:
            reply = await self._c.caller.call(self._c.elb.describe_tags, LoadBalancerNames=[name])
            tags = tags_of(reply["TagDescriptions"][0]) if reply.get("TagDescriptions") else {}
            if is_owned(tags, cluster_id):
                log.info("deleting classic ELB %s of %s/%s", name, service.namespace, service.name)
                await self._delete_elb(name)
            else:
                log.warning("classic ELB %s is not owned by cluster %s; leaving it", name, cluster_id)
                return
        owned = await self._groups.find(
            [
                {"Name": "group-name", "Values": [security_group_name(name)]},
                {"Name": f"tag:kubernetes.io/cluster/{cluster_id}", "Values": ["owned"]},
            ]
        )
        for group in owned:
            group_id = str(group["GroupId"])
            await self._ensure_node_rule(cluster_id, name, group_id, [])
            with contextlib.suppress(NotFound):
                await self._c.caller.call(self._c.ec2.delete_security_group, GroupId=group_id)
