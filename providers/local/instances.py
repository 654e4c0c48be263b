"""Launching and terminating local instances (the `Instances` capability)."""

from __future__ import annotations

import base64

from providers.errors import InvalidConfiguration, NotFound
from providers.local.addresses import allocate_address, private_dns_name
from providers.local.cloud import INSTANCE, LocalCloud, instance_from_record
from providers.local.state import Record, Tx
from providers.model import Instance, InstanceSpec, InstanceState
from providers.tags import is_owned, owner_tags

__all__ = ["DEFAULT_INSTANCE_TYPE", "LocalInstances"]

DEFAULT_INSTANCE_TYPE = "local.medium"
NAME_TAG = "Name"


class LocalInstances:
    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    @property
    def cloud(self) -> LocalCloud:
        return self._cloud

    async def create_instance(self, cluster_id: str, spec: InstanceSpec) -> Instance:
        settings = self._cloud.settings
        if not spec.name:
            raise InvalidConfiguration("local cloud: an instance needs a name")
        zone = spec.zone or settings.default_zone
        if zone not in settings.zones:
            raise InvalidConfiguration(
                f"local cloud: zone {zone!r} does not exist; zones are {', '.join(settings.zones)}",
                code="InvalidParameterValue",
            )

        def run(tx: Tx) -> Instance:
            self._cloud.refresh(tx)
            # The name is deterministic: a create retried after a lost response or a crash finds
            # the instance the first attempt launched instead of launching another.
            for record in tx.by_name(INSTANCE, spec.name):
                if is_owned(record.tags, cluster_id) and record.data["state"] != InstanceState.TERMINATED:
                    return instance_from_record(record)
            terminated = InstanceState.TERMINATED.value
            private_ip = allocate_address(
                settings.instance_cidr, tx.column(INSTANCE, "private_ip", unless_state=terminated), "instance"
            )
            public_ip = ""
            if settings.public_ips:
                used = tx.column(INSTANCE, "public_ip", unless_state=terminated)
                public_ip = allocate_address(settings.public_cidr, used, "public")
            now = self._cloud.clock()
            tags = {**settings.tags, **spec.tags, **owner_tags(cluster_id, spec.owner), NAME_TAG: spec.name}
            record = Record(
                kind=INSTANCE,
                id=self._cloud.new_instance_id(),
                name=spec.name,
                tags=tags,
                data={
                    "state": InstanceState.PENDING.value,
                    "instance_type": spec.instance_type or DEFAULT_INSTANCE_TYPE,
                    "image": spec.image,
                    "zone": zone,
                    "region": settings.region,
                    "subnet": spec.subnet,
                    "security_groups": list(spec.security_groups),
                    "instance_profile": spec.instance_profile,
                    "key_name": spec.key_name,
                    "private_ip": private_ip,
                    "private_dns": private_dns_name(private_ip, settings.region),
                    "public_ip": public_ip,
                    "user_data": base64.b64encode(spec.user_data).decode(),
                    "launched_at": now,
                },
            )
            # Without a boot time it runs at once, as the contract tests and most users expect.
            state = InstanceState.PENDING if settings.boot_seconds > 0 else InstanceState.RUNNING
            record = self._cloud.transition(record, state)
            tx.put(record)
            return instance_from_record(record)

        return await self._cloud.call("RunInstances", run)

    async def delete_instance(self, cluster_id: str, instance_id: str) -> None:
        def run(tx: Tx) -> None:
            record = tx.get(INSTANCE, instance_id)
            # An instance not tagged for the cluster is not the cluster's to delete: as gone.
            if record is None or not is_owned(record.tags, cluster_id):
                return
            if record.data["state"] == InstanceState.TERMINATED:
                return
            tx.put(self._cloud.transition(record, InstanceState.TERMINATED))

        await self._cloud.call("TerminateInstances", run)

    async def get_instance(self, cluster_id: str, instance_id: str) -> Instance:
        def run(tx: Tx) -> Instance:
            self._cloud.refresh(tx)
            record = tx.get(INSTANCE, instance_id)
            if record is None or not is_owned(record.tags, cluster_id):
                raise NotFound(
                    f"the instance ID {instance_id!r} does not exist", code="InvalidInstanceID.NotFound"
                )
            return instance_from_record(record)

        return await self._cloud.call("DescribeInstances", run)

    async def list_instances(self, cluster_id: str) -> list[Instance]:
        def run(tx: Tx) -> list[Instance]:
            self._cloud.refresh(tx)
            return [instance_from_record(r) for r in self._cloud.live_instances(tx, cluster_id)]

        return await self._cloud.call("DescribeInstances", run)

    async def get_user_data(self, cluster_id: str, instance_id: str) -> bytes:
        def run(tx: Tx) -> bytes:
            record = tx.get(INSTANCE, instance_id)
            if record is None or not is_owned(record.tags, cluster_id):
                raise NotFound(
                    f"the instance ID {instance_id!r} does not exist", code="InvalidInstanceID.NotFound"
                )
            return base64.b64decode(record.data.get("user_data", ""))

        return await self._cloud.call("DescribeInstanceAttribute", run)
