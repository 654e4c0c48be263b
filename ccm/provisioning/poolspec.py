"""A NodePool's spec read into typed values, with the CRD's defaults for anything missing (an
object written before a default was added, or a unit test's bare dict)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PoolSpec", "parse_duration", "pool_selector"]

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None, default: float) -> float:
    """Go's time.ParseDuration (seconds); `default` for empty or malformed text (the CRD's
    pattern keeps malformed values out of the API, so that is a fallback, not a silent error)."""
    value = (text or "").strip()
    if not value:
        return default
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            return default
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    return total


def pool_selector(pool_name: str) -> str:
    from ccm.provisioning.api import LABEL_NODE_POOL

    return f"{LABEL_NODE_POOL}={pool_name}"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    uid: str = ""
    generation: int = 0
    replicas: int = 1
    provider: str = ""
    instance_type: str = ""
    image: str = ""
    os: str = "ubuntu-24.04"
    zones: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    kubernetes_version: str = "1.33"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    package_source: Mapping[str, str] = field(default_factory=dict)
    join_timeout: float = 600.0
    token_ttl: float = 1800.0
    max_unhealthy: int | str = 1
    not_ready_timeout: float = 300.0

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> PoolSpec:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        bootstrap = spec.get("bootstrap") or {}
        remediation = spec.get("remediation") or {}
        max_unhealthy = remediation.get("maxUnhealthy", 1)
        return cls(
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            replicas=max(0, int(spec.get("replicas", 1) or 0)),
            provider=str(spec.get("provider") or ""),
            instance_type=str(spec.get("instanceType") or ""),
            image=str(spec.get("image") or ""),
            os=str(spec.get("os") or "ubuntu-24.04"),
            zones=tuple(str(z) for z in spec.get("zones") or ()),
            subnets=tuple(str(s) for s in spec.get("subnets") or ()),
            kubernetes_version=str(spec.get("kubernetesVersion") or "1.33"),
            labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
            taints=tuple(
                {k: str(v) for k, v in t.items() if k in ("key", "value", "effect")}
                for t in spec.get("taints") or ()
            ),
            package_source={str(k): str(v) for k, v in (bootstrap.get("packageSource") or {}).items()},
            join_timeout=parse_duration(bootstrap.get("joinTimeout"), 600.0),
            token_ttl=parse_duration(bootstrap.get("tokenTTL"), 1800.0),
            max_unhealthy=max_unhealthy if isinstance(max_unhealthy, int | str) else 1,
            not_ready_timeout=parse_duration(remediation.get("notReadyTimeout"), 300.0),
        )

    def subnet_for(self, zone: str) -> str:
        """Subnets pair with zones by position (zones[i] <-> subnets[i]); one subnet serves all."""
        if not self.subnets:
            return ""
        if zone in self.zones:
            index = self.zones.index(zone)
            if index < len(self.subnets):
                return self.subnets[index]
        return self.subnets[0]
