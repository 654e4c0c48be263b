"""Network Load Balancers (elbv2), the default for a Service of type LoadBalancer.

As upstream's ensureLoadBalancerv2: one listener per Service port forwarding to a target group
on the port's NodePort, with the nodes' instances registered; health checks on the traffic
port, or on the health-check node port's /healthz with externalTrafficPolicy Local; the
nodes' security groups opened to the client CIDRs (rules described
`kubernetes.io/rule/nlb/client=<lb>`) and to the load balancer's subnets for health checks
(`kubernetes.io/rule/nlb/health=<lb>`). Target-group names are deterministic
(`k8s-<ns:8>-<name:8>-<hash:10>`, 32 characters at most) and include what cannot be changed on
an existing group (node port, protocol, health-check protocol and interval), so such a change
makes a new group and the listener is switched to it.

Doing better than upstream: a change of scheme (internal) recreates the load balancer instead
of being ignored; target groups left unattached by a crash between CreateTargetGroup and
CreateListener are found by name and reused, or deleted with the Service; the security-group
rules are removed on delete even when the load balancer is already gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound
from providers.model import LoadBalancerIngress, LoadBalancerService, LoadBalancerStatus, ServicePort
from providers.tags import OWNER_UID_TAG, is_owned

from .annotations import TRAFFIC_PORT, HealthCheck, LoadBalancerOptions
from .security_groups import CidrRule, Rule, SecurityGroups
from .session import AwsClients
from .shapes import chunks, tag_list, tags_of
from .subnets import Subnets

__all__ = [
    "CLIENT_RULE",
    "HEALTH_RULE",
    "NetworkLoadBalancers",
    "target_group_name",
    "target_group_prefix",
]

log = logging.getLogger(__name__)

CLIENT_RULE = "kubernetes.io/rule/nlb/client"
HEALTH_RULE = "kubernetes.io/rule/nlb/health"
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_TARGETS_PER_CALL = 100


def target_group_prefix(service: LoadBalancerService) -> str:
    ns = _NON_ALNUM.sub("", service.namespace)[:8]
    name = _NON_ALNUM.sub("", service.name)[:8]
    return f"k8s-{ns}-{name}-"


def target_group_name(
    cluster_id: str, service: LoadBalancerService, port: ServicePort, hc: HealthCheck
) -> str:
    """Upstream's buildTargetGroupName: k8s-{namespace:8}-{name:8}-{hash:10}."""
    hasher = hashlib.sha1(usedforsecurity=False)
    for part in (
        cluster_id,
        service.namespace,
        service.name,
        str(port.port),
        str(port.node_port),
        port.protocol.upper(),
        "instance",
        hc.protocol,
        str(hc.interval),
    ):
        hasher.update(part.encode())
    return target_group_prefix(service) + hasher.hexdigest()[:10]


class NetworkLoadBalancers:
    def __init__(
        self, clients: AwsClients, config: CloudConfig, subnets: Subnets, groups: SecurityGroups
    ) -> None:
        self._c = clients
        self._config = config
        self._subnets = subnets
        self._groups = groups

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            reply = await self._c.caller.call(self._c.elbv2.describe_load_balancers, Names=[name])
        except NotFound:
            return None
        found = reply.get("LoadBalancers", [])
        return dict(found[0]) if found else None

    @staticmethod
    def status(lb: Mapping[str, Any]) -> LoadBalancerStatus:
        return LoadBalancerStatus(ingress=(LoadBalancerIngress(hostname=str(lb.get("DNSName", ""))),))

    async def _tags(self, arns: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for chunk in chunks(arns, 20):
            reply = await self._c.caller.call(self._c.elbv2.describe_tags, ResourceArns=chunk)
            for desc in reply.get("TagDescriptions", []):
                out[str(desc["ResourceArn"])] = tags_of(desc)
        return out

    async def _attached_target_groups(self, lb_arn: str) -> list[dict[str, Any]]:
        try:
            reply = await self._c.caller.call(self._c.elbv2.describe_target_groups, LoadBalancerArn=lb_arn)
        except NotFound:  # moto answers TargetGroupNotFound where AWS answers an empty list
            return []
        return [dict(tg) for tg in reply.get("TargetGroups", [])]

    async def _listeners(self, lb_arn: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {"LoadBalancerArn": lb_arn}
            if marker:
                kwargs["Marker"] = marker
            try:
                reply = await self._c.caller.call(self._c.elbv2.describe_listeners, **kwargs)
            except NotFound:
                return out
            out.extend(dict(li) for li in reply.get("Listeners", []))
            marker = reply.get("NextMarker")
            if not marker:
                return out

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
        scheme: Literal["internal", "internet-facing"] = "internal" if options.internal else "internet-facing"
        lb = await self.get(name)
        if lb is not None and lb.get("Scheme") != scheme:
            log.info("load balancer %s: scheme %s -> %s, recreating", name, lb.get("Scheme"), scheme)
            await self._delete_load_balancer(lb)
            lb = None
        created = lb is None
        if lb is None:
            log.info("creating NLB %s for %s/%s", name, service.namespace, service.name)
            reply = await self._c.caller.call(
                self._c.elbv2.create_load_balancer,
                Name=name,
                Type="network",
                Scheme=scheme,
                Subnets=list(subnets.subnet_ids),
                Tags=tag_list(tags),
            )
            lb = dict(reply["LoadBalancers"][0])
        else:
            await self._ensure_tags(str(lb["LoadBalancerArn"]), tags)
        lb_arn = str(lb["LoadBalancerArn"])
        vpc_id = str(lb.get("VpcId") or subnets.vpc_id)

        ids = sorted({str(i["InstanceId"]) for i in instances})
        listeners = {(int(li["Port"]), str(li["Protocol"])): li for li in await self._listeners(lb_arn)}
        attached = {str(tg["TargetGroupName"]): tg for tg in await self._attached_target_groups(lb_arn)}
        wanted_names: set[str] = set()
        hc = options.health_check
        # Listeners for ports the Service no longer has go first: a port that changed protocol
        # (TCP 53 -> UDP 53) cannot have its new listener while the old one holds the port.
        wanted = {(p.port, p.protocol.upper()) for p in options.ports}
        for key in [k for k in listeners if k not in wanted]:
            await self._delete_listener(str(listeners.pop(key)["ListenerArn"]))
        for port in options.ports:
            tg_name = target_group_name(cluster_id, service, port, hc)
            wanted_names.add(tg_name)
            tg = attached.get(tg_name) or await self._create_target_group(tg_name, port, hc, vpc_id, tags)
            tg_arn = str(tg["TargetGroupArn"])
            await self._ensure_health_check(tg, hc)
            await self._ensure_targets(tg_arn, ids, port.node_port)
            key = (port.port, port.protocol.upper())
            listener = listeners.pop(key, None)
            action: list[Any] = [{"Type": "forward", "TargetGroupArn": tg_arn}]
            if listener is None:
                await self._c.caller.call(
                    self._c.elbv2.create_listener,
                    LoadBalancerArn=lb_arn,
                    Port=port.port,
                    Protocol=cast(Any, port.protocol.upper()),
                    DefaultActions=action,
                    Tags=tag_list(tags),
                )
            elif _forwards_to(listener) != tg_arn:
                await self._c.caller.call(
                    self._c.elbv2.modify_listener,
                    ListenerArn=str(listener["ListenerArn"]),
                    DefaultActions=action,
                )
        for tg_name, tg in attached.items():
            if tg_name not in wanted_names:
                await self._delete_target_group(str(tg["TargetGroupArn"]))

        await self._ensure_rules(cluster_id, name, options, instances, subnets.cidrs)
        return self.status(lb), created

    async def _ensure_tags(self, arn: str, tags: Mapping[str, str]) -> None:
        current = (await self._tags([arn])).get(arn, {})
        missing = {k: v for k, v in tags.items() if current.get(k) != v}
        if missing:
            await self._c.caller.call(self._c.elbv2.add_tags, ResourceArns=[arn], Tags=tag_list(missing))

    async def _create_target_group(
        self, name: str, port: ServicePort, hc: HealthCheck, vpc_id: str, tags: Mapping[str, str]
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "Name": name,
            "Protocol": port.protocol.upper(),
            "Port": port.node_port,
            "VpcId": vpc_id,
            "TargetType": "instance",
            "HealthCheckProtocol": hc.protocol,
            "HealthCheckPort": hc.port,
            "HealthCheckIntervalSeconds": hc.interval,
            "HealthCheckTimeoutSeconds": hc.timeout,
            "HealthyThresholdCount": hc.healthy_threshold,
            "UnhealthyThresholdCount": hc.unhealthy_threshold,
            "Tags": tag_list(tags),
        }
        if hc.protocol != "TCP":
            request["HealthCheckPath"] = hc.path
        try:
            reply = await self._c.caller.call(self._c.elbv2.create_target_group, **request)
        except InvalidConfiguration as exc:
            if exc.code != "DuplicateTargetGroupName":
                raise
            # Left unattached by an interrupted earlier sync (AWS returns it from the create when
            # nothing differs; moto and a changed health check answer with this error).
            reply = await self._c.caller.call(self._c.elbv2.describe_target_groups, Names=[name])
        return dict(reply["TargetGroups"][0])

    async def _ensure_health_check(self, tg: Mapping[str, Any], hc: HealthCheck) -> None:
        changes: dict[str, Any] = {}
        if str(tg.get("HealthCheckPort", "")) != hc.port:
            changes["HealthCheckPort"] = hc.port
        if hc.protocol != "TCP" and str(tg.get("HealthCheckPath", "")) != hc.path:
            changes["HealthCheckPath"] = hc.path
        if int(tg.get("HealthyThresholdCount", 0)) != hc.healthy_threshold:
            changes["HealthyThresholdCount"] = hc.healthy_threshold
        if int(tg.get("UnhealthyThresholdCount", 0)) != hc.unhealthy_threshold:
            changes["UnhealthyThresholdCount"] = hc.unhealthy_threshold
        if int(tg.get("HealthCheckTimeoutSeconds", 0)) != hc.timeout:
            changes["HealthCheckTimeoutSeconds"] = hc.timeout
        if changes:
            await self._c.caller.call(
                self._c.elbv2.modify_target_group, TargetGroupArn=str(tg["TargetGroupArn"]), **changes
            )

    async def _ensure_targets(self, tg_arn: str, instance_ids: Sequence[str], port: int) -> None:
        reply = await self._c.caller.call(self._c.elbv2.describe_target_health, TargetGroupArn=tg_arn)
        actual: set[tuple[str, int]] = set()
        for desc in reply.get("TargetHealthDescriptions", []):
            if (desc.get("TargetHealth") or {}).get("Reason") == "Target.DeregistrationInProgress":
                continue
            target = desc["Target"]
            actual.add((str(target["Id"]), int(target.get("Port", port))))
        desired = {(iid, port) for iid in instance_ids}
        register = sorted(desired - actual)
        deregister = sorted(actual - desired)
        for i in range(0, len(register), _TARGETS_PER_CALL):
            batch: list[Any] = [{"Id": iid, "Port": p} for iid, p in register[i : i + _TARGETS_PER_CALL]]
            await self._c.caller.call(self._c.elbv2.register_targets, TargetGroupArn=tg_arn, Targets=batch)
        for i in range(0, len(deregister), _TARGETS_PER_CALL):
            gone: list[Any] = [{"Id": iid, "Port": p} for iid, p in deregister[i : i + _TARGETS_PER_CALL]]
            with contextlib.suppress(NotFound):
                await self._c.caller.call(
                    self._c.elbv2.deregister_targets, TargetGroupArn=tg_arn, Targets=gone
                )

    async def _ensure_rules(
        self,
        cluster_id: str,
        name: str,
        options: LoadBalancerOptions | None,
        instances: Sequence[Mapping[str, Any]],
        subnet_cidrs: Sequence[str],
    ) -> None:
        client_desc, health_desc = f"{CLIENT_RULE}={name}", f"{HEALTH_RULE}={name}"
        candidates = await self._groups.cluster_group_ids(cluster_id)
        targets: set[str] = set()
        desired: list[Rule] = []
        if options is not None and instances:
            targets = await self._groups.node_groups(cluster_id, instances)
            desired = _nlb_rules(options, subnet_cidrs, client_desc, health_desc)
        groups = await self._groups.describe(candidates | targets)

        def ours(rule: Rule) -> bool:
            return rule.description in {client_desc, health_desc}

        for group_id, group in sorted(groups.items()):
            await self._groups.apply(group, desired if group_id in targets else [], ours)

    async def _delete_listener(self, arn: str) -> None:
        with contextlib.suppress(NotFound):
            await self._c.caller.call(self._c.elbv2.delete_listener, ListenerArn=arn)

    async def _delete_target_group(self, arn: str) -> None:
        with contextlib.suppress(NotFound):
            await self._c.caller.call(self._c.elbv2.delete_target_group, TargetGroupArn=arn)

    async def _delete_load_balancer(self, lb: Mapping[str, Any]) -> None:
        arn = str(lb["LoadBalancerArn"])
        groups = await self._attached_target_groups(arn)
        for listener in await self._listeners(arn):
            await self._delete_listener(str(listener["ListenerArn"]))
        with contextlib.suppress(NotFound):
            await self._c.caller.call(self._c.elbv2.delete_load_balancer, LoadBalancerArn=arn)
        for tg in groups:
            await self._delete_target_group(str(tg["TargetGroupArn"]))

    async def _orphan_target_groups(self, cluster_id: str, service: LoadBalancerService) -> list[str]:
        """Target groups made for this Service but attached to nothing (an interrupted sync)."""
        prefix = target_group_prefix(service)
        candidates: list[str] = []
        marker: str | None = None
        while True:
            kwargs: dict[str, Any] = {}
            if marker:
                kwargs["Marker"] = marker
            try:
                reply = await self._c.caller.call(self._c.elbv2.describe_target_groups, **kwargs)
            except NotFound:
                break
            candidates += [
                str(tg["TargetGroupArn"])
                for tg in reply.get("TargetGroups", [])
                if str(tg["TargetGroupName"]).startswith(prefix)
            ]
            marker = reply.get("NextMarker")
            if not marker:
                break
        tags = await self._tags(candidates)
        return [
            arn
            for arn in candidates
            if is_owned(tags.get(arn, {}), cluster_id) and tags.get(arn, {}).get(OWNER_UID_TAG) == service.uid
        ]

    async def delete(self, cluster_id: str, name: str, service: LoadBalancerService) -> None:
        lb = await self.get(name)
        if lb is not None:
            tags = (await self._tags([str(lb["LoadBalancerArn"])])).get(str(lb["LoadBalancerArn"]), {})
            if is_owned(tags, cluster_id):
                log.info("deleting NLB %s of %s/%s", name, service.namespace, service.name)
                await self._delete_load_balancer(lb)
            else:
                log.warning("load balancer %s is not owned by cluster %s; leaving it", name, cluster_id)
        for arn in await self._orphan_target_groups(cluster_id, service):
            await self._delete_target_group(arn)
        await self._ensure_rules(cluster_id, name, None, [], [])


def _forwards_to(listener: Mapping[str, Any]) -> str:
    for action in listener.get("DefaultActions", []) or []:
        if action.get("Type") == "forward" and action.get("TargetGroupArn"):
            return str(action["TargetGroupArn"])
    return ""


def _nlb_rules(
    options: LoadBalancerOptions, subnet_cidrs: Sequence[str], client_desc: str, health_desc: str
) -> list[Rule]:
    rules: dict[tuple[str, int, int, str], Rule] = {}
    client_ports: set[tuple[str, int]] = set()
    for port in options.ports:
        proto = port.protocol.lower()
        client_ports.add((proto, port.node_port))
        for cidr in options.source_ranges:
            rule = CidrRule(proto, port.node_port, port.node_port, cidr, client_desc)
            rules.setdefault(rule.key(), rule)
    hc = options.health_check
    health_ports = {p.node_port for p in options.ports} if hc.port == TRAFFIC_PORT else {int(hc.port)}
    # Upstream: when clients may come from anywhere over TCP on the same ports, the health
    # rules would be a subset of the client rules.
    covered = options.source_ranges == ("0.0.0.0/0",) and client_ports == {("tcp", p) for p in health_ports}
    if not covered:
        for hp in sorted(health_ports):
            for cidr in subnet_cidrs:
                rule = CidrRule("tcp", hp, hp, cidr, health_desc)
                rules.setdefault(rule.key(), rule)
    return list(rules.values())
