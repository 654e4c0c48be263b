"""Whatever sequence of shapes a Service goes through, the load balancer ends up exactly as the
last one asks, with nothing left over from the earlier ones."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import CloudConfig
from providers.local.cloud import FIREWALL, LOAD_BALANCER, TARGET_GROUP
from providers.local.instances import LocalInstances
from providers.local.inventory import LocalInventory
from providers.local.load_balancers import LocalLoadBalancers
from providers.model import InstanceSpec, Owner
from tests.unit.providers.contract.harness import node_for, service
from tests.unit.providers.contract.provider_local import LocalHelpers, local_cloud

UID = "3c1d5e2a-7777-4888-9999-aaaabbbbcccc"
_port = st.tuples(st.sampled_from(["TCP", "UDP"]), st.integers(1, 5), st.integers(30000, 30005))
_shape = st.tuples(
    st.lists(_port, min_size=1, max_size=4, unique_by=lambda p: (p[0], p[1])),
    st.sets(st.integers(0, 3)),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(_shape, min_size=1, max_size=4))
def test_any_sequence_of_shapes_converges_on_the_last(
    shapes: list[tuple[list[tuple[str, int, int]], set[int]]],
) -> None:
    async def run() -> None:
        cloud = local_cloud(CloudConfig(cluster_id="c"))
        try:
            instances = LocalInstances(cloud)
            owner = Owner(kind="Machine", name="m")
            nodes = [
                node_for(
                    await instances.create_instance(
                        "c", InstanceSpec(name=f"n{i}", owner=owner, instance_type="t", image="i")
                    )
                )
                for i in range(4)
            ]
            lbs = LocalLoadBalancers(cloud)
            for ports, chosen in shapes:
                svc = service("prop", ports, uid=UID)
                await lbs.ensure_load_balancer("c", svc, [nodes[i] for i in sorted(chosen)])
            ports, chosen = shapes[-1]
            view = await LocalHelpers(cloud).load_balancer_view("c", svc)
            assert view is not None
            assert view.listeners == set(ports)
            expected = {nodes[i].provider_id.rsplit("/", 1)[-1] for i in chosen}
            assert all(targets == expected for targets in view.targets.values())
            kinds = sorted(
                r.kind for r in await LocalInventory(cloud).list_owned("c") if r.kind != "instance"
            )
            assert kinds == sorted([LOAD_BALANCER, FIREWALL] + [TARGET_GROUP] * len(ports))
            await lbs.ensure_load_balancer_deleted("c", svc)
            assert [r.kind for r in await LocalInventory(cloud).list_owned("c") if r.kind != "instance"] == []
        finally:
            cloud.close()

    asyncio.run(run())
