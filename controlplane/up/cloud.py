"""The cloud config `pinnace up` runs the cluster with, kept at data_dir/cloud/config.yaml: the
user's --cloud-config (or the one kept from the last run) with the cluster id, region and
endpoint filled in, and for AWS without a configured network the account's default VPC, its
default subnets and main route table. Cloud errors met on the way become `PreflightError`s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.up.preflight import PreflightError, check_region, explain_cloud_error
from controlplane.up.record import ClusterRecord, cloud_config_path
from providers.config import parse_cloud_config
from providers.errors import CloudError

__all__ = ["MAX_DEFAULT_ZONES", "PreparedCloud", "prepare_cloud_config", "read_doc"]

# The default NodePool spreads over this many of the default VPC's zones (one per node of 3).
MAX_DEFAULT_ZONES = 3


def read_doc(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PreflightError(f"cannot read the cloud config {path}: {exc}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise PreflightError(f"the cloud config {path} must be a YAML mapping")
    return doc


def _region(record: ClusterRecord, doc: dict[str, Any]) -> str:
    return (
        record.region
        or str(doc.get("region", "") or "")
        or os.environ.get("AWS_REGION", "")
        or os.environ.get("AWS_DEFAULT_REGION", "")
    )


@dataclass(frozen=True)
class PreparedCloud:
    config_path: Path
    # The zones a new default NodePool spreads over: the default VPC's first few (empty: the
    # provider's default zone, as when the cloud config names the subnets).
    zones: tuple[str, ...] = ()


async def prepare_cloud_config(
    record: ClusterRecord, data_dir: Path, user_config: Path | None
) -> PreparedCloud:
    """Write the cluster's cloud config; for AWS, check access to the account first.

    What `up` adds (the default network, the node security group) is derived again on every
    run from the user's part, kept apart in `cloud/base.yaml`, so a group `pinnace down`
    deleted is made again rather than referenced."""
    path = cloud_config_path(data_dir)
    base = path.parent / "base.yaml"
    if user_config is not None:
        doc = read_doc(user_config)
    elif base.exists():
        doc = read_doc(base)
    else:
        doc = {}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    base.write_text(yaml.safe_dump(doc, sort_keys=True))
    base.chmod(0o600)
    given = str(doc.get("clusterID", "") or "")
    if given and given != record.cluster_name:
        raise PreflightError(
            f"the cloud config names cluster {given!r} but this cluster is {record.cluster_name!r}: "
            f"pass --cluster-name {given} (on a new data directory) or drop clusterID from the file"
        )
    doc["clusterID"] = record.cluster_name
    zones: list[str] = []
    if record.provider == "aws":
        region = _region(record, doc)
        if region:
            doc["region"] = region
        if record.aws_endpoint_url:
            doc["endpointURL"] = record.aws_endpoint_url
        try:
            zones = await _aws_network(doc, region, probe_region=not doc.get("endpointURL"))
        except CloudError as exc:
            raise PreflightError(explain_cloud_error(exc, provider="aws", region=region)) from exc
    try:
        parse_cloud_config(doc)
    except CloudError as exc:
        raise PreflightError(str(exc)) from exc
    path.write_text(yaml.safe_dump(doc, sort_keys=True))
    path.chmod(0o600)
    return PreparedCloud(path, tuple(zones))


async def _aws_network(doc: dict[str, Any], region: str, *, probe_region: bool) -> list[str]:
    """Fills in the network; returns the default VPC's zones when it used them."""
    from providers.aws.network import (
        check_access,
        discover_default_network,
        ensure_node_security_group,
        known_regions,
    )

    if not region:
        raise PreflightError("no AWS region: pass --region (or set AWS_REGION), e.g. --region us-east-1")
    if probe_region:
        check_region(region, known_regions())
    config = parse_cloud_config(doc)
    await check_access(config)
    zones: list[str] = []
    if not doc.get("vpcID") and not doc.get("subnetIDs"):
        network = await discover_default_network(config)
        zones = network.zones[:MAX_DEFAULT_ZONES]
        doc["vpcID"] = network.vpc_id
        doc["subnetIDs"] = [network.subnets[z] for z in zones]
        if network.route_table_id and not doc.get("routeTableIDs"):
            doc["routeTableIDs"] = [network.route_table_id]
        if not doc.get("zone"):
            doc["zone"] = zones[0]
    if not doc.get("securityGroupIDs") and doc.get("vpcID"):
        group = await ensure_node_security_group(config, str(doc["clusterID"]), str(doc["vpcID"]))
        doc["securityGroupIDs"] = [group]
    return zones
