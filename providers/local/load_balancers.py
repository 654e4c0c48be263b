"""Load balancers of the local cloud (the `LoadBalancers` capability), modelled on an NLB.

A Service's load balancer is three kinds of resource, made in this order, one call each, so a
crash or a fault between two calls leaves something a retry converges and the garbage sweep can
find: a security group (the rules that let the source ranges reach the NodePorts), a target
group per Service port (the NodePort on every target node, with its health check), and the load
balancer (an address from `loadBalancerCIDR` and/or a hostname; a listener per Service port
forwarding to its target group). Names are deterministic, derived from the Service UID as
upstream's `DefaultLoadBalancerName`, so a retried create finds what an earlier attempt made.

With `externalTrafficPolicy: Local` the health check is HTTP `/healthz` on the Service's
`healthCheckNodePort` (served by kube-proxy), so only nodes with a ready endpoint get traffic;
otherwise it is TCP on the traffic NodePort.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.errors import InvalidConfiguration, NotFound
from providers.local.addresses import allocate_address
from providers.local.cloud import FIREWALL, LOAD_BALANCER, TARGET_GROUP, LocalCloud
from providers.local.nodes import find_instance
from providers.local.state import Record, Tx
from providers.model import (
    InstanceState,
    LoadBalancerIngress,
    LoadBalancerService,
    LoadBalancerStatus,
    NodeRef,
)
from providers.tags import default_load_balancer_name, is_owned, owner_tags, short_hash

__all__ = ["SOURCE_RANGES_ANNOTATION", "SUPPORTED_PROTOCOLS", "LocalLoadBalancers", "status_of"]

SUPPORTED_PROTOCOLS = ("TCP", "UDP")
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
_SESSION_AFFINITIES = ("None", "ClientIP")
_HEALTHZ_PATH = "/healthz"


@dataclass(frozen=True)
class _Plan:
    """What the Service asks for, validated before anything is made."""

    name: str
    listeners: tuple[tuple[str, int, int], ...]  # (protocol, port, node port)
    source_ranges: tuple[str, ...]
    health_check: Mapping[str, Any] | None  # None: TCP on each listener's own NodePort
    requested_ip: str


def status_of(record: Record, ingress_mode: str) -> LoadBalancerStatus:
    ingress = LoadBalancerIngress(
        ip=record.data["address"] if ingress_mode in ("ip", "both") else "",
        hostname=record.data["hostname"] if ingress_mode in ("hostname", "both") else "",
    )
    return LoadBalancerStatus(ingress=(ingress,))


class LocalLoadBalancers:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    def load_balancer_name(self, cluster_id: str, service: LoadBalancerService) -> str:
        if service.uid:
            return default_load_balancer_name(service.uid)
        return "a" + short_hash(cluster_id, service.namespace, service.name, length=31)

    # -- validation -----------------------------------------------------------------------

    def _plan(self, cluster_id: str, service: LoadBalancerService) -> _Plan:
        where = f"Service {service.namespace}/{service.name}"
        if not service.ports:
            raise InvalidConfiguration(f"{where}: requested load balancer with no ports")
        seen: set[tuple[str, int]] = set()
        listeners = []
        for port in service.ports:
            protocol = port.protocol.upper()
            if protocol not in SUPPORTED_PROTOCOLS:
                raise InvalidConfiguration(
                    f"{where}: protocol {port.protocol} (port {port.port}) is not supported by the local "
                    f"cloud's load balancers; supported: {', '.join(SUPPORTED_PROTOCOLS)}",
                    code="UnsupportedProtocol",
                )
            if not 0 < port.node_port < 65536:
                raise InvalidConfiguration(f"{where}: port {port.port}/{protocol} has no NodePort")
            if (protocol, port.port) in seen:
                raise InvalidConfiguration(f"{where}: port {port.port}/{protocol} is listed twice")
            seen.add((protocol, port.port))
            listeners.append((protocol, port.port, port.node_port))
        ranges = service.load_balancer_source_ranges
        if not ranges and (annotated := service.annotations.get(SOURCE_RANGES_ANNOTATION, "").strip()):
            ranges = tuple(r.strip() for r in annotated.split(",") if r.strip())
        source_ranges = []
        for value in ranges or ("0.0.0.0/0",):
            try:
                source_ranges.append(str(ipaddress.ip_network(value, strict=False)))
            except ValueError as exc:
                raise InvalidConfiguration(
                    f"{where}: loadBalancerSourceRanges entry {value!r} is not a CIDR"
                ) from exc
        if service.session_affinity not in _SESSION_AFFINITIES:
            raise InvalidConfiguration(
                f"{where}: sessionAffinity {service.session_affinity!r} is not supported"
            )
        health_check: dict[str, Any] | None = None
        if service.external_traffic_policy == "Local":
            if not 0 < service.health_check_node_port < 65536:
                raise InvalidConfiguration(
                    f"{where}: externalTrafficPolicy Local needs a healthCheckNodePort"
                )
            health_check = {"protocol": "HTTP", "port": service.health_check_node_port, "path": _HEALTHZ_PATH}
        requested = service.load_balancer_ip
        if requested:
            network = self._cloud.settings.load_balancer_cidr
            try:
                address = ipaddress.IPv4Address(requested)
            except ValueError as exc:
                raise InvalidConfiguration(
                    f"{where}: loadBalancerIP {requested!r} is not an IPv4 address"
                ) from exc
            if address not in network:
                raise InvalidConfiguration(
                    f"{where}: loadBalancerIP {requested} is outside the local cloud's load balancer range {network}"
                )
        return _Plan(
            name=self.load_balancer_name(cluster_id, service),
            listeners=tuple(sorted(listeners)),
            source_ranges=tuple(sorted(set(source_ranges))),
            health_check=health_check,
            requested_ip=requested,
        )

    # -- pieces -------------------------------------------------------------------------------

    def _tags(self, cluster_id: str, service: LoadBalancerService, name: str) -> dict[str, str]:
        return {**self._cloud.settings.tags, **owner_tags(cluster_id, service.owner), "Name": name}

    @staticmethod
    def _target_group_id(cluster_id: str, lb_name: str, protocol: str, port: int) -> str:
        return "tg-" + short_hash(cluster_id, lb_name, protocol, str(port), length=17)

    @staticmethod
    def _firewall_id(cluster_id: str, lb_name: str) -> str:
        return "sg-" + short_hash(cluster_id, lb_name, length=17)

    @staticmethod
    def _check_ours(record: Record | None, cluster_id: str) -> None:
        if record is not None and not is_owned(record.tags, cluster_id):
            # Retrying will not help: someone has to remove or rename it.
            raise InvalidConfiguration(
                f"{record.kind} {record.id} exists but is not owned by cluster {cluster_id!r}",
                code="DuplicateLoadBalancerName",
            )

    def _targets(self, tx: Tx, cluster_id: str, nodes: Sequence[NodeRef]) -> list[str]:
        """The instances behind the nodes; nodes without one are left out, as upstream does."""
        self._cloud.refresh(tx)
        ids = set()
        for node in nodes:
            record = find_instance(tx, node, cluster_id)
            if record is not None and record.data["state"] != InstanceState.TERMINATED:
                ids.add(record.id)
        return sorted(ids)

    def _pieces(self, tx: Tx, cluster_id: str, lb_name: str) -> list[Record]:
        """Everything made for one load balancer, found by its recorded name, not guessed."""
        return [
            r
            for kind in (TARGET_GROUP, FIREWALL)
            for r in tx.where(kind, "load_balancer", lb_name)
            if is_owned(r.tags, cluster_id)
        ]

    # -- the capability -------------------------------------------------------------------

    async def get_load_balancer(
        self, cluster_id: str, service: LoadBalancerService
    ) -> LoadBalancerStatus | None:
        name = self.load_balancer_name(cluster_id, service)

        def run(tx: Tx) -> LoadBalancerStatus | None:
            record = tx.get(LOAD_BALANCER, name)
            if record is None or not is_owned(record.tags, cluster_id):
                return None
            return status_of(record, self._cloud.settings.load_balancer_ingress)

        return await self._cloud.call("DescribeLoadBalancers", run)

    async def ensure_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> LoadBalancerStatus:
        plan = self._plan(cluster_id, service)
        tags = self._tags(cluster_id, service, plan.name)
        settings = self._cloud.settings
        firewall_id = self._firewall_id(cluster_id, plan.name)
        health_rule = (
            {("TCP", int(plan.health_check["port"]), "0.0.0.0/0")} if plan.health_check is not None else set()
        )
        rules = sorted(
            {(p, node_port, cidr) for p, _, node_port in plan.listeners for cidr in plan.source_ranges}
            | health_rule
        )
        firewall = {"load_balancer": plan.name, "rules": [list(r) for r in rules]}
        listeners: list[dict[str, Any]] = [
            {
                "protocol": protocol,
                "port": port,
                "node_port": node_port,
                "target_group": self._target_group_id(cluster_id, plan.name, protocol, port),
            }
            for protocol, port, node_port in plan.listeners
        ]

        def group(listener: Mapping[str, Any], targets: list[str]) -> dict[str, Any]:
            health = plan.health_check or {"protocol": "TCP", "port": listener["node_port"]}
            return {
                "load_balancer": plan.name,
                "protocol": listener["protocol"],
                "port": listener["node_port"],
                "health_check": dict(health),
                "targets": targets,
            }

        def balancer(address: str) -> dict[str, Any]:
            return {
                "address": address,
                "hostname": f"{plan.name}-{short_hash(cluster_id, plan.name)}.elb.{settings.region}.local.pinnace.dev",
                "scheme": "internet-facing",
                "listeners": listeners,
                "security_group": firewall_id,
                "session_affinity": service.session_affinity,
                "external_traffic_policy": service.external_traffic_policy,
            }

        def check(tx: Tx) -> tuple[list[str], LoadBalancerStatus | None]:
            """The targets, and the status when everything already is as asked (steady state:
            one read call, no writes)."""
            existing = tx.get(LOAD_BALANCER, plan.name)
            self._check_ours(existing, cluster_id)
            current = existing.data["address"] if existing else ""
            if plan.requested_ip and plan.requested_ip != current:
                users = [r.id for r in tx.where(LOAD_BALANCER, "address", plan.requested_ip)]
                if users:
                    raise InvalidConfiguration(
                        f"Service {service.namespace}/{service.name}: loadBalancerIP {plan.requested_ip} "
                        f"is already used by load balancer {users[0]}"
                    )
            targets = self._targets(tx, cluster_id, nodes)
            if existing is None or existing.data != balancer(current) or existing.tags != tags:
                return targets, None
            if plan.requested_ip and plan.requested_ip != current:
                return targets, None
            pieces = {(r.kind, r.id): r for r in self._pieces(tx, cluster_id, plan.name)}
            wanted = {(FIREWALL, firewall_id): firewall} | {
                (TARGET_GROUP, li["target_group"]): group(li, targets) for li in listeners
            }
            if pieces.keys() != wanted.keys() or any(
                pieces[key].data != doc or pieces[key].tags != tags for key, doc in wanted.items()
            ):
                return targets, None
            return targets, status_of(existing, settings.load_balancer_ingress)

        targets, converged = await self._cloud.call("DescribeLoadBalancers", check)
        if converged is not None:
            return converged

        def ensure_firewall(tx: Tx) -> None:
            existing = tx.get(FIREWALL, firewall_id)
            self._check_ours(existing, cluster_id)
            if existing is None or existing.data != firewall or existing.tags != tags:
                tx.put(
                    Record(
                        kind=FIREWALL, id=firewall_id, name=f"k8s-elb-{plan.name}", tags=tags, data=firewall
                    )
                )

        await self._cloud.call("AuthorizeSecurityGroupIngress", ensure_firewall)

        for listener in listeners:
            wanted_group = group(listener, targets)
            tg_id = listener["target_group"]

            def ensure_target_group(
                tx: Tx, tg_id: str = tg_id, wanted: dict[str, Any] = wanted_group
            ) -> None:
                existing = tx.get(TARGET_GROUP, tg_id)
                self._check_ours(existing, cluster_id)
                if existing is None or existing.data != wanted or existing.tags != tags:
                    tx.put(Record(kind=TARGET_GROUP, id=tg_id, name=tg_id, tags=tags, data=wanted))

            await self._cloud.call("CreateTargetGroup", ensure_target_group)

        def ensure_balancer(tx: Tx) -> LoadBalancerStatus:
            existing = tx.get(LOAD_BALANCER, plan.name)
            self._check_ours(existing, cluster_id)
            address = existing.data["address"] if existing else ""
            if plan.requested_ip:
                address = plan.requested_ip
            elif not address:
                used = tx.column(LOAD_BALANCER, "address")
                address = allocate_address(settings.load_balancer_cidr, used, "load balancer")
            record = Record(
                kind=LOAD_BALANCER, id=plan.name, name=plan.name, tags=tags, data=balancer(address)
            )
            if existing is None or existing.data != record.data or existing.tags != record.tags:
                tx.put(record)
            return status_of(record, settings.load_balancer_ingress)

        status = await self._cloud.call("CreateLoadBalancer", ensure_balancer)

        wanted_groups = {listener["target_group"] for listener in listeners}

        def stale_groups(tx: Tx) -> list[str]:
            return [
                r.id
                for r in self._pieces(tx, cluster_id, plan.name)
                if r.kind == TARGET_GROUP and r.id not in wanted_groups
            ]

        for tg_id in await self._cloud.call("DescribeTargetGroups", stale_groups):
            await self._cloud.call("DeleteTargetGroup", _deleter(TARGET_GROUP, tg_id))
        return status

    async def update_load_balancer(
        self, cluster_id: str, service: LoadBalancerService, nodes: Sequence[NodeRef]
    ) -> None:
        name = self.load_balancer_name(cluster_id, service)

        def find(tx: Tx) -> tuple[list[str], list[str]]:
            record = tx.get(LOAD_BALANCER, name)
            if record is None or not is_owned(record.tags, cluster_id):
                raise NotFound(f"load balancer {name} does not exist", code="LoadBalancerNotFound")
            groups = [listener["target_group"] for listener in record.data["listeners"]]
            return groups, self._targets(tx, cluster_id, nodes)

        groups, targets = await self._cloud.call("DescribeLoadBalancers", find)
        for tg_id in groups:

            def register(tx: Tx, tg_id: str = tg_id) -> None:
                record = tx.get(TARGET_GROUP, tg_id)
                if record is not None and record.data["targets"] != targets:
                    tx.put(record.with_data(targets=targets))

            await self._cloud.call("RegisterTargets", register)

    async def ensure_load_balancer_deleted(self, cluster_id: str, service: LoadBalancerService) -> None:
        name = self.load_balancer_name(cluster_id, service)

        def delete_balancer(tx: Tx) -> None:
            record = tx.get(LOAD_BALANCER, name)
            if record is not None and is_owned(record.tags, cluster_id):
                tx.delete(LOAD_BALANCER, name)

        await self._cloud.call("DeleteLoadBalancer", delete_balancer)
        pieces = await self._cloud.call("DescribeTargetGroups", lambda tx: self._pieces(tx, cluster_id, name))
        # Target groups before the security group, as AWS needs: nothing may still use what is deleted.
        for piece in sorted(pieces, key=lambda r: r.kind != TARGET_GROUP):
            operation = "DeleteTargetGroup" if piece.kind == TARGET_GROUP else "DeleteSecurityGroup"
            await self._cloud.call(operation, _deleter(piece.kind, piece.id))


def _deleter(kind: str, resource_id: str) -> Callable[[Tx], None]:
    def run(tx: Tx) -> None:
        tx.delete(kind, resource_id)

    return run
