"""The local simulated cloud, in memory, for the cloud controllers' unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from providers.capabilities import CloudProvider
from providers.config import parse_cloud_config
from providers.local import LocalCloud, open_cloud, provider_for
from providers.model import Instance, InstanceSpec, Owner

CLUSTER = "test"


def local_cloud(**options: Any) -> LocalCloud:
    return open_cloud(
        parse_cloud_config({"clusterID": CLUSTER, "qps": 1000, "burst": 1000, "local": options})
    )


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    c = local_cloud()
    yield c
    c.close()


@pytest.fixture
def provider(cloud: LocalCloud) -> CloudProvider:
    return provider_for(cloud)


async def launch(provider: CloudProvider, name: str) -> Instance:
    assert provider.instances is not None
    spec = InstanceSpec(
        name=name, owner=Owner(kind="Machine", name=name), instance_type="local.small", image="img"
    )
    return await provider.instances.create_instance(CLUSTER, spec)
