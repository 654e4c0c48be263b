"""Service admission: cluster IPs and node ports, as upstream's service REST storage assigns them.

On create a Service of type ClusterIP/NodePort/LoadBalancer gets a cluster IP (unless `None`,
headless) and NodePort/LoadBalancer ports get node ports, as does `healthCheckNodePort` for
`externalTrafficPolicy: Local` load balancers. On update the cluster IP is immutable and ports
keep their node ports; what an update or delete stops using is released.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.apiserver.allocators import Allocation, NodePortAllocator, ServiceIPAllocator

__all__ = ["ServiceAllocation"]


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    if spec.get("type") == "NodePort":
        return True
    return spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def _node_ports(spec: dict[str, Any]) -> set[int]:
    used = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        used.add(int(spec["healthCheckNodePort"]))
    return used


class ServiceAllocation:
    def __init__(self, ips: ServiceIPAllocator, ports: NodePortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    async def on_create(self, svc: dict[str, Any], allocation: Allocation) -> None:
        meta = svc["metadata"]
        owner = f"{meta.get('namespace', '')}/{meta['name']}"
        spec = svc.setdefault("spec", {})
        try:
            if _needs_cluster_ip(spec):
                requested = spec.get("clusterIP") or ""
                ip = await self.ips.allocate(owner, allocation, requested)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            await self._allocate_ports(spec, owner, allocation, keep=set())
        except errors.Invalid as exc:
            raise errors.Invalid.for_object("Service", "", meta["name"], exc.causes) from exc

    async def on_update(self, svc: dict[str, Any], old: dict[str, Any], allocation: Allocation) -> list[int]:
        """Allocate what the update adds; return node ports to release once the update commits."""
        meta = svc["metadata"]
        owner = f"{meta.get('namespace', '')}/{meta['name']}"
        spec = svc.setdefault("spec", {})
        old_spec = old.get("spec", {})
        try:
            if _needs_cluster_ip(old_spec) and _needs_cluster_ip(spec):
                if spec.get("clusterIP") in (None, ""):
                    spec["clusterIP"] = old_spec.get("clusterIP")
                    spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec.get("clusterIP")])
                elif spec.get("clusterIP") != old_spec.get("clusterIP"):
                    raise errors.Invalid(
                        message="spec.clusterIPs[0]: Invalid value: field is immutable",
                        causes=[
                            errors.Cause(
                                errors.FIELD_VALUE_INVALID,
                                f'Invalid value: ["{spec.get("clusterIP")}"]: may not change once set',
                                "spec.clusterIPs[0]",
                            )
                        ],
                    )
            elif _needs_cluster_ip(spec) and not spec.get("clusterIP"):
                ip = await self.ips.allocate(owner, allocation)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            # Ports keep the node port they had (matched by port number and protocol).
            old_by_port = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or []
                if p.get("nodePort")
            }
            if _needs_node_ports(spec):
                for port in spec.get("ports") or []:
                    if not port.get("nodePort"):
                        previous = old_by_port.get((port.get("port"), port.get("protocol", "TCP")))
                        if previous:
                            port["nodePort"] = previous
                if (
                    spec.get("externalTrafficPolicy") == "Local"
                    and spec.get("type") == "LoadBalancer"
                    and not spec.get("healthCheckNodePort")
                    and old_spec.get("healthCheckNodePort")
                ):
                    spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
            else:
                for port in spec.get("ports") or []:
                    port.pop("nodePort", None)
                spec.pop("healthCheckNodePort", None)
            kept = _node_ports(old_spec)
            await self._allocate_ports(spec, owner, allocation, keep=kept)
        except errors.Invalid as exc:
            raise errors.Invalid.for_object("Service", "", meta["name"], exc.causes) from exc
        return sorted(_node_ports(old_spec) - _node_ports(spec))

    async def _allocate_ports(
        self, spec: dict[str, Any], owner: str, allocation: Allocation, *, keep: set[int]
    ) -> None:
        if not _needs_node_ports(spec):
            return
        for index, port in enumerate(spec.get("ports") or []):
            requested = int(port.get("nodePort") or 0)
            if requested and requested in keep:
                continue
            port["nodePort"] = await self.ports.allocate(
                owner, allocation, f"spec.ports[{index}].nodePort", requested
            )
        if spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            requested = int(spec.get("healthCheckNodePort") or 0)
            if not (requested and requested in keep):
                spec["healthCheckNodePort"] = await self.ports.allocate(
                    owner, allocation, "spec.healthCheckNodePort", requested
                )

    async def on_delete(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            await self.ips.release(ip)
        for port in _node_ports(spec):
            await self.ports.release(str(port))

    async def release_ports(self, ports: list[int]) -> None:
        for port in ports:
            await self.ports.release(str(port))

    async def repair(self, services: list[dict[str, Any]]) -> list[str]:
        """Release allocations no Service holds; returns what was released.

        A crash between allocating and storing a Service leaves an allocation behind. Run before
        the server accepts requests (nothing can be mid-create then), like upstream's repair
        controllers at start-up."""
        held_ips = {s.get("spec", {}).get("clusterIP") for s in services}
        held_ports = set().union(*(_node_ports(s.get("spec", {})) for s in services)) if services else set()
        released: list[str] = []
        for ip in sorted(await self.ips.in_use()):
            if ip not in held_ips:
                await self.ips.release(ip)
                released.append(ip)
        for port in sorted(await self.ports.in_use()):
            if int(port) not in held_ports:
                await self.ports.release(port)
                released.append(port)
        return released
