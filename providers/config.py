"""The cloud config file: where the cluster lives in the cloud and how to reach the cloud's API.

YAML, read once at start (`pinnace server --cloud-config FILE`); upstream's providers each read
their own INI file, ours keeps the common part common and gives each provider its own section:

    clusterID: prod-eu            # required: the value of kubernetes.io/cluster/<id>
    region: eu-west-1
    zone: eu-west-1a              # default zone for instances
    vpcID: vpc-0123
    subnetIDs: [subnet-1, subnet-2]
    routeTableIDs: []             # empty: every route table tagged for the cluster
    securityGroupIDs: [sg-1]      # given to instances and trusted by load balancers
    endpointURL: http://127.0.0.1:5000   # an AWS-compatible API such as moto's server
    tags: {team: infra}           # added to every resource
    qps: 10                       # client-side rate limit for cloud calls
    burst: 20
    aws: {elbType: nlb}           # provider-specific settings, by provider name
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from providers.errors import InvalidConfiguration

__all__ = ["CloudConfig", "load_cloud_config", "parse_cloud_config"]


@dataclass(frozen=True)
class CloudConfig:
    cluster_id: str
    region: str = ""
    zone: str = ""
    vpc_id: str = ""
    subnet_ids: tuple[str, ...] = ()
    route_table_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    endpoint_url: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    qps: float = 10.0
    burst: int = 20
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def options(self, provider: str) -> Mapping[str, Any]:
        return self.provider_options.get(provider, {})


_KNOWN = {
    "clusterID",
    "region",
    "zone",
    "vpcID",
    "subnetIDs",
    "routeTableIDs",
    "securityGroupIDs",
    "endpointURL",
    "tags",
    "qps",
    "burst",
}


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidConfiguration(f"cloud config: {key} must be a list of strings")
    return tuple(value)


def _string(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise InvalidConfiguration(f"cloud config: {key} must be a string")
    return value


def parse_cloud_config(doc: Any, *, default_cluster_id: str = "") -> CloudConfig:
    """Validate a decoded document; unknown top-level keys that are not provider sections are errors."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidConfiguration("cloud config: the document must be a mapping")
    provider_options: dict[str, Mapping[str, Any]] = {}
    for key, value in doc.items():
        if key in _KNOWN:
            continue
        if not isinstance(value, dict):
            raise InvalidConfiguration(f"cloud config: unknown field {key!r}")
        provider_options[key] = value
    cluster_id = _string(doc, "clusterID") or default_cluster_id
    if not cluster_id:
        raise InvalidConfiguration("cloud config: clusterID is required")
    tags = doc.get("tags", {})
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidConfiguration("cloud config: tags must map strings to strings")
    qps = doc.get("qps", 10.0)
    burst = doc.get("burst", 20)
    if (
        isinstance(qps, bool)
        or not isinstance(qps, int | float)
        or qps <= 0
        or isinstance(burst, bool)
        or not isinstance(burst, int)
        or burst < 1
    ):
        raise InvalidConfiguration("cloud config: qps must be > 0 and burst >= 1")
    return CloudConfig(
        cluster_id=cluster_id,
        region=_string(doc, "region"),
        zone=_string(doc, "zone"),
        vpc_id=_string(doc, "vpcID"),
        subnet_ids=_strings(doc, "subnetIDs"),
        route_table_ids=_strings(doc, "routeTableIDs"),
        security_group_ids=_strings(doc, "securityGroupIDs"),
        endpoint_url=_string(doc, "endpointURL"),
        tags=dict(tags),
        qps=float(qps),
        burst=burst,
        provider_options=provider_options,
    )


def load_cloud_config(path: Path, *, default_cluster_id: str = "") -> CloudConfig:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfiguration(f"cloud config {path}: {exc}") from exc
    return parse_cloud_config(doc, default_cluster_id=default_cluster_id)
