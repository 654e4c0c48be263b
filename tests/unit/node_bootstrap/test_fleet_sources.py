"""ProviderInstanceSource: the clouds' instances as the fleet boots them (moto and local in process)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ccm.provisioning.instance_source import ProviderInstanceSource
from node_bootstrap.agent.userdata import agent_config_for
from node_bootstrap.cloudinit.read import read_user_data
from node_bootstrap.cloudinit.render import user_data
from node_bootstrap.cloudinit.spec import BootstrapSpec
from providers.config import CloudConfig
from providers.local import provider_for
from providers.model import InstanceSpec, Owner
from tests.unit.node_bootstrap.userdata_kit import TOKEN, make_ca
from tests.unit.providers.aws.moto_env import aws_env
from tests.unit.providers.contract.provider_local import local_cloud


def rendered_user_data(metadata: str) -> bytes:
    spec = BootstrapSpec(
        os="debian-12",
        kubernetes_version="1.33",
        server="https://10.0.0.10:6443",
        ca_pem=make_ca(),
        token=TOKEN,
        metadata=metadata,
    )
    return user_data(spec)


async def test_moto_instances_boot_as_aws_nodes(tmp_path: Path) -> None:
    data = rendered_user_data("aws")
    with aws_env() as env:
        provider = env.provider()
        assert provider.instances is not None
        spec = InstanceSpec(
            name="workers-0", owner=Owner("Machine", "workers-0"), instance_type="t3.micro", image=env.image
        )
        instance = await provider.instances.create_instance(
            env.config.cluster_id, dataclasses.replace(spec, user_data=data)
        )
        source = ProviderInstanceSource(provider, env.config.cluster_id)
        [target] = await source.list_instances()
        assert (target.instance_id, target.name, target.state) == (instance.id, "workers-0", "running")
        assert target.private_ip and target.zone == instance.zone
        config = agent_config_for(
            read_user_data(await source.user_data(instance.id)), target.facts, data_dir=tmp_path
        )
    assert config.node_names == (instance.id,)
    assert config.provider_id == f"aws:///{instance.zone}/{instance.id}"
    assert config.node_ip == target.private_ip


async def test_local_instances_boot_as_local_nodes(tmp_path: Path) -> None:
    cloud = local_cloud(CloudConfig(cluster_id="c1"))
    try:
        provider = provider_for(cloud)
        assert provider.instances is not None
        spec = InstanceSpec(
            name="pool-0",
            owner=Owner("Machine", "pool-0"),
            instance_type="local.small",
            image="img",
            user_data=rendered_user_data("local"),
        )
        instance = await provider.instances.create_instance("c1", spec)
        stopped = await provider.instances.create_instance("c1", dataclasses.replace(spec, name="pool-1"))
        await cloud.stop_instance(stopped.id)
        source = ProviderInstanceSource(provider, "c1")
        targets = {t.instance_id: t for t in await source.list_instances()}
        assert targets[stopped.id].state == "stopped"
        target = targets[instance.id]
        config = agent_config_for(
            read_user_data(await source.user_data(instance.id)), target.facts, data_dir=tmp_path
        )
        assert config.provider_id == instance.provider_id
        assert config.node_ip == target.private_ip
    finally:
        cloud.close()
