"""Instances: launch (RunInstances) and terminate machines for the cluster.

Like CAPA's instance service: IMDSv2 required with a hop limit of 1 (so pods cannot reach the
node's credentials through a second hop), the instance and its volumes tagged in the same call
(TagSpecifications, so nothing is ever untagged), and user-data gzip-compressed when it is over
EC2's 16 KiB limit (cloud-init reads gzip transparently). A retried create finds what an earlier
attempt launched, first by a tag-filtered lookup, then through EC2's own idempotency: the
ClientToken is derived from the cluster, the deterministic name and the owner's UID.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from providers.config import CloudConfig
from providers.errors import InvalidConfiguration, NotFound
from providers.model import Instance, InstanceSpec, InstanceState
from providers.tags import cluster_tag_key, is_owned, owner_tags

from .describe import BY_ID, InstanceLookup
from .session import AwsClients
from .shapes import instance_from_ec2, tag_list, tags_of

__all__ = ["USER_DATA_LIMIT", "AwsInstances", "client_token", "prepare_user_data"]

log = logging.getLogger(__name__)

USER_DATA_LIMIT = 16 * 1024  # EC2's limit on raw user-data, before base64
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def prepare_user_data(raw: bytes) -> bytes:
    """`raw` as is when it fits, gzip-compressed when it does not, InvalidConfiguration when even
    compressed it is too big (then it must be fetched at boot instead)."""
    if len(raw) <= USER_DATA_LIMIT:
        return raw
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise InvalidConfiguration(
            f"user-data is {len(raw)} bytes ({len(packed)} gzip-compressed); EC2 allows "
            f"{USER_DATA_LIMIT} bytes even compressed"
        )
    return packed


def client_token(cluster_id: str, spec: InstanceSpec, predecessors: Iterable[str] = ()) -> str:
    """At most 64 ASCII characters, stable for one (cluster, name, owner UID, predecessors).

    `predecessors` are the ids of terminated instances that had this name: EC2 answers a
    repeated token with the instance it first launched even after that one terminated, so a
    name reused after termination needs a new token, while a retry of an interrupted launch
    (same predecessors) keeps the old one.
    """
    parts = [cluster_id, spec.name, spec.owner.uid, *sorted(predecessors)]
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"pinnace-{digest[:48]}"


class AwsInstances:
    page_size = 1000  # DescribeInstances' largest page

    def __init__(self, clients: AwsClients, config: CloudConfig, lookup: InstanceLookup) -> None:
        self._c = clients
        self._config = config
        self._lookup = lookup
        # Configured subnet id -> its zone: a subnet never changes zone, so this is asked once
        # instead of on every launch (one DescribeSubnets per provisioned node otherwise).
        self._subnet_zones: dict[str, str] | None = None

    async def _describe_all(self, filters: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": filters, "MaxResults": self.page_size}
            if token:
                kwargs["NextToken"] = token
            page = await self._c.caller.call(self._c.ec2.describe_instances, **kwargs)
            for reservation in page.get("Reservations", []):
                out.extend(reservation.get("Instances", []))
            token = page.get("NextToken")
            if not token:
                return out

    def _cluster_filters(self, cluster_id: str) -> list[dict[str, Any]]:
        return [
            {"Name": f"tag:{cluster_tag_key(cluster_id)}", "Values": ["owned"]},
            {"Name": "instance-state-name", "Values": _LIVE_STATES},
        ]

    async def _subnet_for_zone(self, zone: str) -> str:
        if not self._config.subnet_ids:
            return ""
        if self._subnet_zones is None:
            page = await self._c.caller.call(
                self._c.ec2.describe_subnets, SubnetIds=list(self._config.subnet_ids)
            )
            self._subnet_zones = {
                str(subnet["SubnetId"]): str(subnet.get("AvailabilityZone") or "")
                for subnet in page.get("Subnets", [])
            }
        for subnet_id in self._config.subnet_ids:
            found = self._subnet_zones.get(subnet_id)
            if found is not None and (not zone or found == zone):
                return subnet_id
        raise InvalidConfiguration(
            f"none of the configured subnets {list(self._config.subnet_ids)} is in zone {zone}"
        )

    async def create_instance(self, cluster_id: str, spec: InstanceSpec) -> Instance:
        if not spec.name:
            raise InvalidConfiguration("an instance needs a name")
        user_data = prepare_user_data(spec.user_data)
        named = await self._describe_all(
            [
                {"Name": f"tag:{cluster_tag_key(cluster_id)}", "Values": ["owned"]},
                {"Name": "tag:Name", "Values": [spec.name]},
            ]
        )
        live = [i for i in named if (i.get("State") or {}).get("Name") in _LIVE_STATES]
        if live:
            inst = sorted(live, key=lambda i: str(i.get("LaunchTime", "")))[0]
            return instance_from_ec2(inst, self._c.region)
        dead = [str(i["InstanceId"]) for i in named if (i.get("State") or {}).get("Name") not in _LIVE_STATES]

        tags = {**self._config.tags, **spec.tags, **owner_tags(cluster_id, spec.owner), "Name": spec.name}
        subnet = spec.subnet or await self._subnet_for_zone(spec.zone or self._config.zone)
        groups = list(spec.security_groups or self._config.security_group_ids)
        request: dict[str, Any] = {
            "ImageId": spec.image,
            "InstanceType": spec.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token(cluster_id, spec, dead),
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(tags)},
                {"ResourceType": "volume", "Tags": tag_list(tags)},
            ],
        }
        if subnet:
            request["SubnetId"] = subnet
        zone = spec.zone or ("" if subnet else self._config.zone)
        if zone:
            request["Placement"] = {"AvailabilityZone": zone}
        if groups:
            request["SecurityGroupIds"] = groups
        if spec.instance_profile:
            key = "Arn" if spec.instance_profile.startswith("arn:") else "Name"
            request["IamInstanceProfile"] = {key: spec.instance_profile}
        if spec.key_name:
            request["KeyName"] = spec.key_name
        if user_data:
            request["UserData"] = user_data  # botocore base64-encodes it
        log.info("launching instance %s for %s", spec.name, spec.owner.key)
        reply = await self._c.caller.call(self._c.ec2.run_instances, **request)
        inst = reply["Instances"][0]
        self._lookup.remember(inst)
        return instance_from_ec2(inst, self._c.region)

    async def _owned(self, cluster_id: str, instance_id: str) -> dict[str, Any] | None:
        inst = await self._lookup.get(BY_ID, instance_id)
        if inst is None or not is_owned(tags_of(inst), cluster_id):
            return None
        return dict(inst)

    async def delete_instance(self, cluster_id: str, instance_id: str) -> None:
        self._lookup.invalidate(instance_id)
        inst = await self._owned(cluster_id, instance_id)
        if inst is None:
            return
        if (inst.get("State") or {}).get("Name") in {"terminated", "shutting-down"}:
            return
        with contextlib.suppress(NotFound):
            await self._c.caller.call(self._c.ec2.terminate_instances, InstanceIds=[instance_id])
        self._lookup.invalidate(instance_id)

    async def get_instance(self, cluster_id: str, instance_id: str) -> Instance:
        inst = await self._owned(cluster_id, instance_id)
        if inst is None:
            raise NotFound(f"instance {instance_id} not found in cluster {cluster_id}")
        return instance_from_ec2(inst, self._c.region)

    async def list_instances(self, cluster_id: str) -> list[Instance]:
        found = await self._describe_all(self._cluster_filters(cluster_id))
        out = []
        for inst in found:
            self._lookup.remember(inst)
            model = instance_from_ec2(inst, self._c.region)
            if model.state is not InstanceState.TERMINATED:
                out.append(model)
        return sorted(out, key=lambda i: (i.name, i.id))

    async def get_user_data(self, cluster_id: str, instance_id: str) -> bytes:
        if await self._owned(cluster_id, instance_id) is None:
            raise NotFound(f"instance {instance_id} not found in cluster {cluster_id}")
        reply = await self._c.caller.call(
            self._c.ec2.describe_instance_attribute, InstanceId=instance_id, Attribute="userData"
        )
        value = (reply.get("UserData") or {}).get("Value") or ""
        # EC2 answers base64 of the bytes as launched; botocore does not decode it here.
        return base64.b64decode(value)
