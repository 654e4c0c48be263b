"""Instances.get_user_data: what an instance was launched with, as the simulated nodes boot from it."""

from __future__ import annotations

import dataclasses
import gzip
import os

import pytest

from providers.capabilities import Instances
from providers.errors import NotFound
from tests.unit.providers.contract.harness import ContractCloud, machine_owner

SMALL = b"#cloud-config\nwrite_files:\n- path: /etc/motd\n  content: hello\n"


def _instances(cloud: ContractCloud) -> Instances:
    return cloud.provider.require(cloud.provider.instances, "instances")


async def test_user_data_comes_back_as_launched(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    spec = dataclasses.replace(cloud.helpers.instance_spec("ud", machine_owner("ud")), user_data=SMALL)
    instance = await instances.create_instance(cluster, spec)
    assert await instances.get_user_data(cluster, instance.id) == SMALL
    bare = await instances.create_instance(
        cluster, cloud.helpers.instance_spec("bare", machine_owner("bare"))
    )
    assert await instances.get_user_data(cluster, bare.id) == b""


async def test_large_user_data_is_returned_compressed_or_whole(cloud: ContractCloud) -> None:
    """Over EC2's 16 KiB a provider may launch it gzip-compressed; cloud-init (and the reader)
    gunzip it, so either form must decode to what was asked for."""
    instances = _instances(cloud)
    cluster = cloud.config.cluster_id
    big = SMALL + b"# " + os.urandom(6000).hex().encode() + b"\n" + b"# padding\n" * 500
    assert len(big) > 16 * 1024
    spec = dataclasses.replace(cloud.helpers.instance_spec("big", machine_owner("big")), user_data=big)
    instance = await instances.create_instance(cluster, spec)
    got = await instances.get_user_data(cluster, instance.id)
    assert got == big or gzip.decompress(got) == big


async def test_user_data_of_other_clusters_and_unknown_ids_is_not_found(cloud: ContractCloud) -> None:
    instances = _instances(cloud)
    spec = dataclasses.replace(cloud.helpers.instance_spec("t", machine_owner("t")), user_data=SMALL)
    theirs = await instances.create_instance("another-cluster", spec)
    with pytest.raises(NotFound):
        await instances.get_user_data(cloud.config.cluster_id, theirs.id)
    with pytest.raises(NotFound):
        await instances.get_user_data(cloud.config.cluster_id, cloud.helpers.unknown_instance_id())
